"""Ingestion: files and network sources into the warehouse.

- :mod:`ingest.sources`: parsers, one per file format (file in, validated long frames out);
- :mod:`ingest.connectors`: network sources (HTTP with deadlines and retries, watermarks);
- :mod:`ingest.rules`: quarantine rules a parsed batch must pass;
- :mod:`ingest.batches`: landing copy, ledger row and one write transaction per batch.

Imports ``core`` and ``warehouse`` only; running the scoring cycle after new data is wiring,
in :mod:`pipelines.ingest_job`.
"""
