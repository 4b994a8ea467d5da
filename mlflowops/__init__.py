"""Operational tools for the MLflow platform: the code behind ``scripts/*.py`` and the batching
metric logger that training code imports (``from mlflowops.batching import BatchingMetricLogger``).

Each tool module exposes ``main(argv) -> int`` so CI can call ``python scripts/<tool>.py`` and
tests can call the same function in-process. Shared behaviour (one-line errors, ``--json``,
exit codes) lives in :mod:`mlflowops.cli`, timezone-aware timestamps in :mod:`mlflowops.timeutil`.
Nothing is imported here, so the S3 probe does not pay for importing MLflow.
"""
