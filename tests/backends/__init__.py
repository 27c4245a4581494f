"""Per-backend pytest plugins: each module defines a function-scoped ``<name>_store_spec``
fixture yielding a :class:`tests.backends.StoreSpec` isolated for one test."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import pytest

CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@dataclass(frozen=True)
class StoreSpec:
    """How to build one test's store: ``open_store(url, **options)``."""

    url: str
    options: dict[str, Any] = field(default_factory=dict)


def unavailable(what: str, how: str) -> None:
    """Skip a test whose service is missing, but fail under CI=true (nothing may be skipped)."""
    message = f"{what} is not available: {how}"
    if CI:
        pytest.fail(f"CI=true and {message}", pytrace=False)
    pytest.skip(message)
