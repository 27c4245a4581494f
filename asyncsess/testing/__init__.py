"""The store contract kit: prove that a :class:`~asyncsess.stores.base.Store` keeps the
rules every asyncsess store keeps (they are listed in :mod:`asyncsess.stores.base`).

Without pytest::

    from asyncsess.testing import check_store

    await check_store(lambda: MyStore(...))   # AssertionError naming the broken rule

With pytest: subclass :class:`StoreContract` (see its docstring) and provide a
``store`` fixture; it runs one test per rule.

``StoreContract`` is imported on first use, so :func:`check_store` needs no pytest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._rules import RULES as RULES
from ._rules import Rule as Rule
from ._rules import check_store as check_store

if TYPE_CHECKING:
    from ._pytest import StoreContract as StoreContract

__all__ = ["RULES", "Rule", "StoreContract", "check_store"]


def __getattr__(name: str) -> Any:
    if name == "StoreContract":
        from ._pytest import StoreContract  # imports pytest: only when asked for

        return StoreContract
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
