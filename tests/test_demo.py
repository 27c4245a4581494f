"""``nox -s demo`` runs examples/demo.py on the embedded default store: it must keep working."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

DEMO = Path(__file__).resolve().parents[1] / "examples" / "demo.py"


def test_demo_runs_on_sqlite() -> None:
    out = subprocess.run(
        [sys.executable, str(DEMO)], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert out.startswith("store:     sqlite+aiosqlite:///")
    assert "validate:  user=user-123 data={'role': 'admin'} v1" in out
    assert "rotate:    old token -> None, new token valid: True" in out
    assert "malformed: None" in out and "revoke_all -> 2" in out
