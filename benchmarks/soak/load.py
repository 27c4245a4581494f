"""The load generator: simulated users, each doing one request at a time, like a browser.

A user holds session tokens (several devices), validates them most of the time,
updates their data (nested lists and mappings), rotates, logs out, logs out
everywhere and logs in; now and then it replays a token it saw die (revoked,
rotated away, expired) to probe that it stays dead. Every request becomes an
:class:`Event` with its send and reply times: the oracle's record.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
from dataclasses import dataclass, field
from typing import Any

from .fleet import AppDown, Fleet

__all__ = ["Event", "LoadConfig", "run_load"]

#: Operation -> weight of the mix (validate-heavy, like a web app).
MIX = {
    "validate": 70,
    "update": 9,
    "create": 6,
    "rotate": 5,
    "revoke": 5,
    "revoke_all": 2,
    "login": 1,
    "probe": 8,  # validate a token seen dead
}


@dataclass(frozen=True)
class LoadConfig:
    """How many users, how fast, for how long; the session timeouts the apps use."""

    users: int
    ops_per_user_s: float
    idle: float
    absolute: float
    hang_after: float  # a request unanswered this long is recorded as a hang
    logins: list[tuple[str, str]]


@dataclass
class Event:
    """One request as the user saw it. ``token`` is a short hash, never the token."""

    op: str
    user: str
    token: str | None
    app: str
    t0: float
    t1: float
    ok: bool
    err: str | None = None
    result: Any = None
    now: float | None = None  # the app's clock before the call
    after: float | None = None  # and after it
    args: dict[str, Any] = field(default_factory=dict)
    msg: str | None = None  # the error's message


def token_id(token: str) -> str:
    """A short hash standing for a token in the record."""
    return hashlib.sha256(token.encode()).hexdigest()[:16]


@dataclass
class _Held:
    raw: str
    rev: int
    expires: float  # the user's estimate of when it ends (an app's clock)


def session_data(user: str, rev: int) -> dict[str, Any]:
    """Data shaped like a real app's: nested lists and mappings, with a revision."""
    return {
        "rev": rev,
        "profile": {"name": user, "roles": ["reader", "editor"][: 1 + rev % 2], "tz": "UTC"},
        "cart": [{"sku": f"sku-{i}", "qty": i + 1, "tags": ["a", "b"]} for i in range(rev % 4)],
        "prefs": {"theme": "dark", "langs": ["en", "fr"], "flags": {"beta": rev % 3 == 0}},
    }


class _User:
    def __init__(self, name: str, fleet: Fleet, config: LoadConfig, rng: random.Random) -> None:
        self.name, self.fleet, self.config, self.rng = name, fleet, config, rng
        self.live: list[_Held] = []
        self.dead: list[str] = []
        self.expiring: list[tuple[float, str]] = []  # (expiry, token): replayed once past it
        self.rev = 0
        self.retry: tuple[str, dict[str, Any], _Held | None] | None = None

    async def send(self, events: list[Event], op: str, held: _Held | None, **args: Any) -> Event:
        app = self.fleet.pick()
        tid = token_id(held.raw) if held is not None else None
        t0 = time.time()
        event = Event(op, self.name, tid, app.name if app else "-", t0, t0, False, args=args)
        if "token" in args and held is None:  # a probe of a dead token
            event.token = token_id(args["token"])
        try:
            if app is None:
                raise AppDown("no app process is up")
            reply = await asyncio.wait_for(app.request(op, **args), self.config.hang_after)
        except TimeoutError:
            event.err = "hang"
        except AppDown:
            event.err = "AppDown"
        else:
            event.ok, event.now, event.after = reply["ok"], reply["now"], reply["after"]
            event.result, event.err = reply.get("r"), reply.get("err")
            event.msg = reply.get("msg")
        event.t1 = time.time()
        event.args = {k: v for k, v in args.items() if k in ("user", "username", "offset")}
        if "data" in args:
            event.args["rev"] = args["data"]["rev"]
        if "keep" in args:
            event.args["keep"] = token_id(args["keep"]) if args["keep"] else None
        events.append(event)
        return event

    def _choose(self) -> str:
        ops, weights = zip(*MIX.items(), strict=True)
        op: str = self.rng.choices(ops, weights)[0]
        if not self.live and op not in ("login", "probe"):
            return "create"
        if op == "probe" and not self.dead:
            return "validate"
        if op == "create" and len(self.live) >= 4:
            return "validate"
        return op

    def _expire(self) -> None:
        now = time.time()
        for held in [h for h in self.live if h.expires <= now + 1.0]:
            self.live.remove(held)
            self.dead.append(held.raw)
            self.expiring.append((held.expires, held.raw))

    def _bury(self, held: _Held) -> None:
        if held in self.live:
            self.live.remove(held)
        self.dead.append(held.raw)
        del self.dead[:-20]

    async def step(self, events: list[Event]) -> None:
        """Do one request, then update what the user believes it holds."""
        self._expire()
        if self.retry is not None:  # a failed logout is sent again
            op, args, held = self.retry
            self.retry = None
            event = await self.send(events, op, held, **args)
            if not event.ok:
                self.retry = (op, args, held)
            return
        if self.expiring and self.expiring[0][0] + 0.5 < time.time():  # the cookie is still
            await self.send(events, "validate", None, token=self.expiring.pop(0)[1])  # sent
            return
        op = self._choose()
        held = self.rng.choice(self.live) if self.live else None
        cfg = self.config
        if op == "create":
            self.rev += 1
            event = await self.send(
                events, "create", None, user=self.name, data=session_data(self.name, self.rev)
            )
            if event.ok:
                assert event.now is not None
                self.live.append(_Held(event.result, self.rev, event.now + cfg.idle))
                event.token = token_id(event.result)
        elif op == "login":
            username, password = self.rng.choice(cfg.logins)
            event = await self.send(events, "login", None, username=username, password=password)
            if event.ok and event.result:
                assert event.now is not None
                self.live.append(_Held(event.result, 0, event.now + cfg.idle))
                event.token = token_id(event.result)
        elif op == "probe":
            await self.send(events, "validate", None, token=self.rng.choice(self.dead))
        elif held is None:
            return
        elif op == "validate":
            event = await self.send(events, "validate", held, token=held.raw)
            if event.ok and event.result is None:
                self._bury(held)
            elif event.ok:
                held.expires = min(event.result["e"], event.result["a"])
        elif op == "update":
            self.rev += 1
            data = session_data(self.name, self.rev)
            event = await self.send(events, "update", held, token=held.raw, data=data)
            if event.ok and not event.result:
                self._bury(held)
        elif op == "rotate":
            event = await self.send(events, "rotate", held, token=held.raw)
            if event.ok:
                self._bury(held)
                if event.result:
                    assert event.now is not None
                    self.live.append(_Held(event.result, held.rev, event.now + cfg.idle))
                    event.args["new"] = token_id(event.result)
        elif op == "revoke":
            event = await self.send(events, "revoke", held, token=held.raw)
            self._bury(held)
            if not event.ok:
                self.retry = ("revoke", {"token": held.raw}, held)
        elif op == "revoke_all":
            keep = held.raw if self.rng.random() < 0.5 else None
            args = {"user": self.name, "keep": keep}
            event = await self.send(events, "revoke_all", None, **args)
            for other in [h for h in self.live if h.raw != keep]:
                self._bury(other)
            if not event.ok:
                self.retry = ("revoke_all", args, None)

    async def run(self, events: list[Event], until: float) -> None:
        """Step until ``until`` (epoch seconds), pausing a random think time between steps."""
        rate = self.config.ops_per_user_s
        await asyncio.sleep(self.rng.uniform(0, 1 / rate))
        while time.time() < until:
            await self.step(events)
            await asyncio.sleep(self.rng.expovariate(rate))
        self._expire()
        for held in list(self.live):  # the last word: is every session still there?
            await self.send(events, "validate", held, token=held.raw)


async def run_load(fleet: Fleet, config: LoadConfig, seconds: float, seed: int) -> list[Event]:
    """Run ``config.users`` users against ``fleet`` for ``seconds``; return every request."""
    events: list[Event] = []
    until = time.time() + seconds
    rng = random.Random(seed)
    users = [
        _User(f"user-{seed}-{n}", fleet, config, random.Random(rng.random()))
        for n in range(config.users)
    ]
    await asyncio.gather(*(user.run(events, until) for user in users))
    return events
