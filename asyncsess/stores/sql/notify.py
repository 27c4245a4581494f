"""PostgreSQL: the trigger that tells listeners which session changed, for the near cache.

After every ``UPDATE`` or ``DELETE`` of a row of the sessions table, the
trigger runs ``pg_notify(<channel>, <the row's key>)`` (a ``TRUNCATE`` sends an
empty payload: every session); the channel is the table's name. Whatever
changes the row (asyncsess in any process, a migration, an operator in
``psql``) is heard by every manager with the near cache on. Inserts notify
nothing: no process can hold a session that did not exist.

The store creates it on first use with ``near_cache`` on (``create_table=True``,
the default). An application that owns the schema runs
:func:`notify_trigger_sql` in a migration (Alembic: ``op.execute(...)``), and
:func:`drop_notify_trigger_sql` to take it out.
"""

from __future__ import annotations

import hashlib
from typing import Final

from .schema import DEFAULT_TABLE

__all__ = [
    "NOTIFY_FUNCTION",
    "drop_notify_trigger_sql",
    "notify_channel",
    "notify_trigger_name",
    "notify_trigger_sql",
]

#: The trigger function every sessions table shares (its channel is its argument).
NOTIFY_FUNCTION: Final = "asyncsess_notify_key"
_NAME_MAX: Final = 63  # PostgreSQL truncates longer identifiers


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def notify_channel(table: str = DEFAULT_TABLE) -> str:
    """The ``LISTEN`` channel of ``table``'s changes: the table's name."""
    return table


def notify_trigger_name(table: str = DEFAULT_TABLE, suffix: str = "_notify") -> str:
    """The name of ``table``'s trigger, kept within PostgreSQL's 63 bytes."""
    name = table + suffix
    if len(name.encode()) <= _NAME_MAX:
        return name
    digest = hashlib.sha256(table.encode()).hexdigest()[:8]
    head = table.encode()[: _NAME_MAX - len(suffix) - 9].decode(errors="ignore")
    return f"{head}_{digest}{suffix}"


def notify_trigger_sql(table: str = DEFAULT_TABLE) -> str:
    """The SQL script that (re)creates the function and ``table``'s two triggers; idempotent.

    PostgreSQL 11 or later. Run it in one transaction (a migration does).
    """
    function, channel = _quoted(NOTIFY_FUNCTION), _literal(notify_channel(table))
    rows, truncate = notify_trigger_name(table), notify_trigger_name(table, "_notify_all")
    on = _quoted(table)
    return f"""\
CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        PERFORM pg_notify(TG_ARGV[0], '');
    ELSE
        PERFORM pg_notify(TG_ARGV[0], OLD."key");
    END IF;
    RETURN NULL;
END
$$;
DROP TRIGGER IF EXISTS {_quoted(rows)} ON {on};
CREATE TRIGGER {_quoted(rows)} AFTER UPDATE OR DELETE ON {on}
    FOR EACH ROW EXECUTE FUNCTION {function}({channel});
DROP TRIGGER IF EXISTS {_quoted(truncate)} ON {on};
CREATE TRIGGER {_quoted(truncate)} AFTER TRUNCATE ON {on}
    FOR EACH STATEMENT EXECUTE FUNCTION {function}({channel});
"""


def drop_notify_trigger_sql(table: str = DEFAULT_TABLE) -> str:
    """The SQL script that drops ``table``'s triggers (the shared function stays)."""
    on = _quoted(table)
    return "".join(
        f"DROP TRIGGER IF EXISTS {_quoted(notify_trigger_name(table, s))} ON {on};\n"
        for s in ("_notify", "_notify_all")
    )
