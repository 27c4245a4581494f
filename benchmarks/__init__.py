"""Validate-path benchmarks: ``nox -s bench`` (``-- --quick`` for a short run)."""
