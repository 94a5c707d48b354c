"""Core contracts of EWS: frame schemas, the vocabulary (levels, statuses, roles, domains),
the clock, settings and errors.

This package imports nothing else of ours; every other package may import it.
"""
