"""The ``ews`` command line: one module per command group, the root commands in :mod:`.main`."""

from pipelines.cli.main import main

__all__ = ["main"]
