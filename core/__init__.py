"""Core contracts of EWS: frame schemas, settings and errors.

This package imports nothing else of ours; every other package may import it.
"""
