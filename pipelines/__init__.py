"""Pipelines: the only package that wires sources, warehouse, models and schedule (and holds the CLI)."""
