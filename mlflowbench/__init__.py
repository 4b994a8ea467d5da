"""Benchmarks of the platform's tracking server, run against local platforms (not part of ``make test``)."""
