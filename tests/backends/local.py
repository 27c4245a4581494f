"""Stores that need no server: memory and file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from . import StoreSpec


@pytest.fixture
def memory_store_spec() -> Iterator[StoreSpec]:
    yield StoreSpec("memory://")


@pytest.fixture
def file_store_spec(tmp_path: Path) -> Iterator[StoreSpec]:
    yield StoreSpec((tmp_path / "sessions").as_uri())
