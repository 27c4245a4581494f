"""The Redis record format, the Lua scripts that keep it, and their runner (WAIT included).

A record is one string value::

    struct ">dddiH" (created_at, expires_at, absolute_at, version, len(user_ref)),
    then user_ref (UTF-8), then the payload

stored under ``{prefix}s:{<key>}`` with ``PXAT expires_at``; a user's index is a
sorted set ``{prefix}u:{<user_ref>}`` of keys scored by ``expires_at``.
:func:`pack` and :func:`unpack` are the format; the known-answer test pins it.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

from ...exceptions import StoreError, StoreUnavailable
from ..base import Record

__all__ = [
    "DELETE",
    "DELETE_USER",
    "INDEX",
    "PACKED",
    "PUT",
    "RENEW",
    "SWEEP",
    "Runner",
    "ms",
    "pack",
    "unpack",
]

PACKED = struct.Struct(">dddiH")


def pack(record: Record) -> bytes:
    """The value stored for ``record``."""
    user_ref = record.user_ref.encode()
    times = (record.created_at, record.expires_at, record.absolute_at)
    return PACKED.pack(*times, record.version, len(user_ref)) + user_ref + record.payload


def unpack(key: str, row: bytes | None) -> Record | None:
    """The record stored under ``key`` (``None`` for no value); a malformed one is a StoreError."""
    if row is None:
        return None
    try:
        c, e, a, v, n = PACKED.unpack_from(row)
        end = PACKED.size + n
        return Record(key, row[PACKED.size : end].decode(), row[end:], v, c, e, a)
    except (struct.error, TypeError, UnicodeDecodeError) as exc:
        raise StoreError(f"Redis session record {key[:8]}… is malformed: {exc}") from exc


def ms(t: float) -> str:
    """Seconds since the epoch as whole milliseconds, rounded up (for PXAT/PEXPIREAT)."""
    return str(math.ceil(t * 1000))


MS = "local function ms(t) return string.format('%.0f', math.ceil(tonumber(t) * 1000)) end\n"
# A record is one string: struct ">dddiH" (created, expires, absolute, version,
# len(user_ref)), then user_ref and payload. Byte offsets (Lua's are 1-based): expires
# at 8, version at 24, user_ref from 30.
RECORD = """
local function owner(r) return string.sub(r, 31, 30 + struct.unpack('>H', r, 29)) end
"""
# KEYS[1] index; ARGV member, score, expiry in ms: add, and never shorten the index's life.
INDEX = """
local function index_add(k)
  redis.call('ZADD', k, 'LT', ARGV[2], ARGV[1])
  local ttl = redis.call('PTTL', k)
  if ttl >= 0 then
    local t = redis.call('TIME')
    if t[1] * 1000 + math.floor(t[2] / 1000) + ttl >= tonumber(ARGV[3]) then return end
  end
  redis.call('PEXPIREAT', k, ARGV[3])
end
"""
# KEYS[1] record [, KEYS[2] its index: none without a user]; ARGV 1-3 as INDEX, 4
# expected version ('' to insert), 5 the record, 6 its expiry in ms, 7 the index key
# prefix (single node; '' leaves the entry of a record moved to another user to the
# caller). Returns false if not at the expected version, 0 when inserting over an existing
# record (nothing written), else the owner it had ('' none).
PUT = (
    INDEX
    + RECORD
    + """
local was = ''
if ARGV[4] == '' then
  if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
else
  local r = redis.call('GET', KEYS[1])
  if not r or struct.unpack('>i', r, 25) ~= tonumber(ARGV[4]) then return false end
  was = owner(r)
end
redis.call('SET', KEYS[1], ARGV[5], 'PXAT', ARGV[6])
if KEYS[2] then index_add(KEYS[2]) end
if was ~= '' and ARGV[7] ~= '' and ARGV[7] .. was .. '}' ~= KEYS[2] then
  redis.call('ZREM', ARGV[7] .. was .. '}', ARGV[1])
end
return was
"""
)
# KEYS records found due for renewal; ARGV now, threshold, until, until in ms. Re-checks
# each, renews it in place (SETRANGE keeps its TTL, PEXPIREAT moves it) and returns it.
RENEW = (
    MS
    + """
local now, threshold, later = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local rows = {}
for i, key in ipairs(KEYS) do
  local r = redis.call('GET', key)
  if r then
    local e, a = struct.unpack('>dd', r, 9)
    if now < e and e < threshold then
      local new, at = later, ARGV[4]
      if a < later then new, at = a, ms(a) end
      if new > e then
        local packed = struct.pack('>d', new)
        redis.call('SETRANGE', key, 8, packed)
        redis.call('PEXPIREAT', key, at)
        r = string.sub(r, 1, 8) .. packed .. string.sub(r, 17)
      end
    end
  end
  rows[i] = r
end
return rows
"""
)
# KEYS[1] record; ARGV owner ('' any), member, index key prefix ('' to leave the index),
# expected version ('' any). Returns false if not deleted, else its owner ('' none).
DELETE = (
    RECORD
    + """
local r = redis.call('GET', KEYS[1])
if not r then return false end
local u = owner(r)
if ARGV[1] ~= '' and u ~= ARGV[1] then return false end
if ARGV[4] ~= '' and struct.unpack('>i', r, 25) ~= tonumber(ARGV[4]) then return false end
redis.call('DEL', KEYS[1])
if ARGV[3] ~= '' and u ~= '' then redis.call('ZREM', ARGV[3] .. u .. '}', ARGV[2]) end
return u
"""
)
# KEYS[1] index (single node only: reaches the records it names); ARGV record key
# prefix, user_ref, key to keep, chunk. Deletes the records (checking their owner) and
# entries of the index's first `chunk` members; returns {deleted, members read}.
DELETE_USER = (
    RECORD
    + """
local n = 0
local members = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[4]) - 1)
for _, m in ipairs(members) do
  if m ~= ARGV[3] then
    local k = ARGV[1] .. m .. '}'
    local r = redis.call('GET', k)
    if r and owner(r) == ARGV[2] then redis.call('DEL', k); n = n + 1 end
    redis.call('ZREM', KEYS[1], m)
  end
end
return {n, #members}
"""
)
# KEYS[1] record; ARGV now. 0 gone, 1 deleted (expired), else its live expires_at.
SWEEP = """
local r = redis.call('GET', KEYS[1])
if not r then return 0 end
local e = struct.unpack('>d', r, 9)
if e <= tonumber(ARGV[1]) then redis.call('DEL', KEYS[1]); return 1 end
return string.format('%.17g', e)
"""


class Runner:
    """Runs write scripts: one ``EVALSHA``, or many in one pipeline (one round trip per
    node), each node's followed by ``WAIT`` when ``wait_replicas`` is set."""

    def __init__(
        self, client: Redis | RedisCluster, *, wait_replicas: int, wait_timeout: float
    ) -> None:
        self._client = client
        self._any: Any = client  # for calls whose redis-py types are too loose to use
        self._cluster = isinstance(client, RedisCluster)
        self._wait = (wait_replicas, str(math.ceil(wait_timeout * 1000)))

    async def one(self, script: AsyncScript, keys: list[str], args: list[Any]) -> Any:
        """Run one write script (through :meth:`each`, to WAIT, if ``wait_replicas``)."""
        if not self._wait[0]:
            return await script(keys=keys, args=args)
        return (await self.each(script, [(keys, args)]))[0]

    async def each(
        self, script: AsyncScript, calls: Sequence[tuple[str | list[str], list[Any]]]
    ) -> list[Any]:
        """Run ``script`` once per (key or keys, args) in one pipeline; their replies."""
        for attempt in (1, 2):
            pipe = self._any.pipeline(transaction=False)
            for key, args in calls:
                keys = [key] if isinstance(key, str) else key
                pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)  # NOSCRIPT
            waits = self._add_waits(pipe, [k if isinstance(k, str) else k[0] for k, _ in calls])
            if waits and self._cluster:  # a redirected write would not be the one WAITed for
                results: list[Any] = await pipe.execute(False, allow_redirections=False)
            else:
                results = await pipe.execute(raise_on_error=False)
            if attempt == 1 and any(isinstance(r, NoScriptError) for r in results):
                await self._client.script_load(script.script)  # every primary on a cluster
                continue
            if errors := [r for r in results if isinstance(r, Exception)]:
                raise errors[0]
            break
        return self._replicated(results, waits)

    def _add_waits(self, pipe: Any, keys: list[str]) -> int:
        """Queue ``WAIT`` on the connection of each node written to; return how many."""
        if not self._wait[0]:
            return 0
        if not self._cluster:
            pipe.execute_command("WAIT", *self._wait)
            return 1
        nodes = {node.name: node for node in map(self._any.get_node_from_key, keys)}
        for node in nodes.values():  # a cluster pipeline keeps each node's commands in order
            pipe.execute_command("WAIT", *self._wait, target_nodes=node)
        return len(nodes)

    def _replicated(self, results: list[Any], waits: int) -> list[Any]:
        """The results before the ``waits`` WAIT replies; fail unless each has enough replicas."""
        if not waits:
            return results
        if short := [n for n in results[-waits:] if int(n) < self._wait[0]]:
            raise StoreUnavailable(
                f"only {min(short)} of the {self._wait[0]} Redis replicas asked for acknowledged "
                f"a session write within {self._wait[1]} ms: the write is not acknowledged "
                "(it may still have been applied)"
            )
        return results[:-waits]
