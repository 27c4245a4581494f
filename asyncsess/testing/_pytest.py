"""``StoreContract``: the store contract as a pytest class (imports pytest)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from ..stores.base import Store
from ._rules import RULES, Rule, run_rule

__all__ = ["StoreContract"]


@pytest.mark.anyio
class StoreContract:
    """Subclass it in a test module and provide a ``store`` fixture; one test per rule.

    The fixture yields a store that is empty or shared with nothing the rules
    could disturb (a key prefix or table of its own), not yet opened, and
    closes it afterwards::

        class TestMyStore(StoreContract):
            @pytest.fixture
            async def store(self):
                store = MyStore(...)
                yield store
                await store.aclose()

    The tests run under anyio's pytest plugin (installed with anyio), on asyncio
    unless the ``anyio_backend`` fixture says otherwise.
    """


def _test(rule: Rule) -> Callable[[StoreContract, Store], Awaitable[None]]:
    async def test(self: StoreContract, store: Store) -> None:
        await run_rule(rule, store)

    test.__name__ = test.__qualname__ = f"test_{rule.name}"
    test.__doc__ = rule.doc
    return test


for _rule in RULES:
    setattr(StoreContract, f"test_{_rule.name}", _test(_rule))
