"""Building a :class:`~asyncsess.SessionManager`'s parts from its arguments.

The store (a URL, opened here, or an app's store object), the codec with the
secrets it seals under (or the file store's own key file, loaded when the
store opens), the batcher for stores that read many keys at once, and the
argument checks the public API shares. Misconfiguration raises
:class:`~asyncsess.ConfigurationError` saying what to fix.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from ._batching import Batcher
from ._codec import Codec
from .config import check_size
from .exceptions import ConfigurationError, fail_closed
from .sealing import Keyring, normalize_secrets
from .stores._registry import open_store
from .stores.base import Store

__all__ = ["KeyFile", "batcher_for", "check_user", "codec_for", "open_parts", "store_from"]

#: The file store's own key file: read when the store opens, the secret when none is given.
KeyFile = Callable[[], Awaitable[bytes]]
_IN_FLIGHT = 4  # lookups let through at once; the next ones queue for one get_many


def check_user(user_id: object) -> str:
    """``user_id`` if it is a non-empty ``str`` (``TypeError``, ``ValueError`` otherwise)."""
    if not isinstance(user_id, str):
        raise TypeError(f"user_id must be a str, not {type(user_id).__name__}")
    if not user_id:
        raise ValueError("user_id must be a non-empty str")
    return user_id


def store_from(store: object, options: Mapping[str, Any] | None) -> tuple[Store, bool]:
    """The store named by a URL (with ``options``) or passed in, and whether the manager owns it."""
    if isinstance(store, Store) and not options:
        return store, False
    if isinstance(store, str):
        return open_store(store, **(options or {})), True
    raise ConfigurationError(
        f"store must be a URL or an asyncsess Store (store_options only apply to a URL), "
        f"not {type(store).__name__}" + (" with store_options" if options else "")
    )


def _key_file(store: Store) -> KeyFile | None:
    try:
        from .stores.file import FileStore
    except ImportError:  # its driver is missing: this is no file store
        return None
    return store.key if isinstance(store, FileStore) else None


def codec_for(
    store: Store,
    secrets: Sequence[bytes],
    *,
    privacy_mode: bool,
    max_data_bytes: int | None,
) -> tuple[Codec, KeyFile | None]:
    """The codec of a manager on ``store``, and the store's key file when it must supply the key.

    Sealing applies in privacy mode to a store that keeps sessions at rest;
    it needs ``secrets`` or the file store's key file.
    """
    check_size("max_data_bytes", max_data_bytes, optional=True)
    in_process = not type(store).persistent
    sealed = privacy_mode and not in_process
    keyring = Keyring(secrets) if sealed and secrets else None
    key_file = _key_file(store) if sealed and keyring is None else None
    if sealed and keyring is None and key_file is None:
        raise ConfigurationError(
            f"{type(store).__name__} keeps sessions at rest, so privacy mode needs a "
            'secret: pass secret=... (python -c "import secrets; '
            'print(secrets.token_urlsafe(32))") or set ASYNCSESS_SECRET; '
            "or pass privacy_mode=False to store data in the clear"
        )
    return Codec(keyring, in_process=in_process, max_data_bytes=max_data_bytes), key_file


async def open_parts(store: Store, codec: Codec, key_file: KeyFile | None) -> None:
    """Open ``store``, then give ``codec`` the store's key when it seals under it."""
    with fail_closed:
        await store.open()
        if key_file is not None and codec.keyring is None:
            codec.keyring = Keyring(normalize_secrets([await key_file()]))


def batcher_for(store: Store) -> Batcher | None:
    """A batcher when ``store`` reads many keys in one round trip (its own ``get_many``)."""
    return Batcher(store, limit=_IN_FLIGHT) if type(store).get_many is not Store.get_many else None
