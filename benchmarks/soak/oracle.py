"""The oracle: replays the record of every request and checks what the users saw.

Each user sends one request at a time, so its events are totally ordered. A
token is *killed* when a revoke, a ``revoke_all`` of its user (unless kept) or a
rotate of it was acknowledged; from then on any acceptance of it is a **wrong
accept**, as is any acceptance after its absolute expiry (as stamped by the
clock of the app that created it; an app's clock runs ahead only during an
injected clock step). A token whose create (or rotate, or login) was
acknowledged and that was not killed must be accepted while the clock of the
app asked is before its expiry: a rejection then is a **lost session**; data
older than the last acknowledged update is a **lost update**; an expiry earlier
than one an app already reported is a **lost renewal**. A request that failed
leaves what it would have changed uncertain, and nothing uncertain is judged.
A session that an app whose clock was stepped forward saw as expired (and
its sweeper deleted) is counted apart, as expired early. Each loss is put down
to the last fault that overlapped the time between the
write that was lost and its detection, or to ``unexplained``.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from .load import Event

__all__ = ["Fault", "Finding", "Verdict", "judge"]

TOLERANCE = 0.25  # seconds: a clock read inside the manager is a little after "now"
#: Faults that move an app's clock: what they end is expired early by that clock, not lost.
CLOCK_FAULTS = frozenset({"clock step"})
GRACE = 5.0  # seconds after a fault during which a write acknowledged before it may be lost


@dataclass
class Fault:
    """One injected fault: when it began and when it was repaired (epoch seconds)."""

    name: str
    start: float
    end: float
    detail: str = ""


@dataclass
class Finding:
    """A wrong accept, a loss or a hang, with the event that showed it."""

    kind: str
    cause: str
    at: float
    op: str
    app: str
    detail: str = ""
    written: float = 0.0  # when the write it concerns was acknowledged


@dataclass
class Verdict:
    """Everything the oracle found."""

    wrong_accepts: list[Finding] = field(default_factory=list)
    losses: list[Finding] = field(default_factory=list)
    early: list[Finding] = field(default_factory=list)  # sessions a stepped clock expired
    hangs: list[Finding] = field(default_factory=list)
    bugs: list[Finding] = field(default_factory=list)
    checked: dict[str, int] = field(default_factory=lambda: defaultdict(int))


@dataclass
class _Token:
    user: str
    inserted: float  # when its create/rotate/login was acknowledged
    exp_lo: float  # its expiry is at least this (an app's clock)
    abs_lo: float  # its absolute expiry lies within [abs_lo, abs_hi]
    abs_hi: float
    rev: int  # the last acknowledged revision of its data
    rev_at: float
    exp_at: float  # when exp_lo was learnt
    killed: float | None = None
    why: str = ""
    uncertain: bool = False  # a failed write may have ended it


def cause_of(faults: list[Fault], written: float, seen: float) -> str:
    """The last fault begun before ``seen`` that was not over (plus GRACE) at ``written``."""
    for fault in sorted(faults, key=lambda f: f.start, reverse=True):
        if fault.start <= seen and fault.end + GRACE >= written:
            return fault.name
    return "unexplained"


class _Judge:
    def __init__(self, faults: list[Fault], idle: float, absolute: float) -> None:
        self.faults, self.idle, self.absolute = faults, idle, absolute
        self.tokens: dict[str, _Token] = {}
        self.by_user: dict[str, list[str]] = defaultdict(list)
        self.verdict = Verdict()

    def finding(self, kind: str, event: Event, written: float, detail: str) -> Finding:
        cause = cause_of(self.faults, written, event.t0)
        return Finding(kind, cause, event.t0, event.op, event.app, detail, written)

    def born(
        self, event: Event, tid: str, user: str, rev: int, absolute: tuple[float, float]
    ) -> None:
        assert event.now is not None
        exp = min(event.now + self.idle, absolute[0])
        token = _Token(user, event.t1, exp, *absolute, rev, event.t1, event.t1)
        self.tokens[tid] = token
        self.by_user[user].append(tid)

    def lost(self, finding: Finding) -> None:
        """A loss; one a stepped clock explains is an early expiry (that app's clock said so)."""
        (self.verdict.early if finding.cause in CLOCK_FAULTS else self.verdict.losses).append(
            finding
        )

    def accepted(self, event: Event, token: _Token) -> None:
        """An op that only a live session can pass succeeded."""
        self.verdict.checked["accepts"] += 1
        if token.killed is not None and event.t0 > token.killed:
            self.verdict.wrong_accepts.append(
                self.finding("accepted after " + token.why, event, token.killed,
                             f"{event.t0 - token.killed:.3f} s after the {token.why}")
            )  # fmt: skip
        elif event.t0 > token.abs_hi + TOLERANCE:
            self.verdict.wrong_accepts.append(
                self.finding("accepted after absolute expiry", event, token.abs_hi,
                             f"{event.t0 - token.abs_hi:.3f} s late")
            )  # fmt: skip

    def rejected(self, event: Event, token: _Token) -> None:
        """An op found no live session."""
        if token.killed is not None and event.t0 > token.killed:
            self.verdict.checked["rejects after a kill"] += 1
        if event.t0 > token.abs_hi:
            self.verdict.checked["rejects after absolute expiry"] += 1
        if token.killed is not None or token.uncertain:
            return
        assert event.after is not None
        self.verdict.checked["rejects judged"] += 1
        if event.after + TOLERANCE < min(token.exp_lo, token.abs_lo):
            self.lost(
                self.finding("session lost", event, token.inserted,
                             f"{min(token.exp_lo, token.abs_lo) - event.after:.1f} s before expiry")
            )  # fmt: skip
            token.uncertain = True  # counted once

    def kill(self, token: _Token, at: float, why: str) -> None:
        if token.killed is None:
            token.killed, token.why = at, why

    def event(self, e: Event) -> None:
        token = self.tokens.get(e.token or "")
        if e.err and e.err.startswith("BUG"):
            self.verdict.bugs.append(Finding("bug", e.err, e.t0, e.op, e.app))
        if not e.ok:
            if e.err == "hang":
                self.verdict.hangs.append(self.finding("hang", e, e.t0, "no answer"))
            if e.op in ("revoke", "rotate", "update") and token is not None:
                token.uncertain = token.uncertain or e.op != "update"
            if e.op == "revoke_all":
                for tid in self.by_user[e.args["user"]]:
                    if tid != e.args.get("keep"):
                        self.tokens[tid].uncertain = True
            return
        assert e.now is not None and e.after is not None
        if e.op == "create" and e.token:
            bounds = (e.now + self.absolute, e.after + self.absolute)
            self.born(e, e.token, e.args["user"], e.args["rev"], bounds)
        elif e.op == "login" and e.token:
            bounds = (e.now + self.absolute, e.after + self.absolute)
            self.born(e, e.token, "login:" + e.args["username"], 0, bounds)
        elif token is None:
            return
        elif e.op == "validate":
            if e.result is None:
                self.rejected(e, token)
                return
            self.accepted(e, token)
            self.validated(e, token, e.result)
        elif e.op == "update":
            if not e.result:
                self.rejected(e, token)
                return
            self.accepted(e, token)
            token.rev, token.rev_at = e.args["rev"], e.t1
            token.exp_lo, token.exp_at = min(e.now + self.idle, token.abs_lo), e.t1
        elif e.op == "rotate":
            if e.result is None:
                self.rejected(e, token)
                return
            self.accepted(e, token)
            self.kill(token, e.t1, "rotate")
            self.born(e, e.args["new"], token.user, token.rev, (token.abs_lo, token.abs_hi))
        elif e.op == "revoke":
            if not e.result:
                self.rejected(e, token)
            self.kill(token, e.t1, "revoke")

    def revoke_all(self, e: Event) -> None:
        for tid in self.by_user[e.args["user"]]:
            if tid != e.args.get("keep"):
                self.kill(self.tokens[tid], e.t1, "revoke_all")

    def validated(self, e: Event, token: _Token, seen: dict[str, Any]) -> None:
        if seen["a"] > token.abs_hi + 1e-6:
            self.verdict.wrong_accepts.append(
                self.finding("absolute expiry extended", e, token.inserted,
                             f"by {seen['a'] - token.abs_hi:.3f} s")
            )  # fmt: skip
        token.abs_lo = token.abs_hi = seen["a"]
        rev = seen.get("rev") or 0
        if rev < token.rev:
            self.lost(self.finding("update lost", e, token.rev_at, f"revision {rev} < {token.rev}"))
        token.rev = rev
        if seen["e"] + TOLERANCE < token.exp_lo:
            self.lost(
                self.finding("renewal lost", e, token.exp_at,
                             f"expiry {token.exp_lo - seen['e']:.1f} s earlier")
            )  # fmt: skip
        token.exp_lo, token.exp_at = seen["e"], e.t1


def judge(events: list[Event], faults: list[Fault], *, idle: float, absolute: float,
          bounds: dict[str, float]) -> Verdict:  # fmt: skip
    """Check every user's events in order; ``bounds`` is the longest each op may take."""
    j = _Judge(faults, idle, absolute)
    for e in sorted(events, key=lambda e: (e.user, e.t0)):
        j.verdict.checked[e.op] += 1
        if e.err != "hang" and e.t1 - e.t0 > bounds.get(e.op, float("inf")):
            j.verdict.hangs.append(j.finding("slow", e, e.t0, f"{e.t1 - e.t0:.1f} s"))
        j.event(e)
        if e.ok and e.op == "revoke_all":
            j.revoke_all(e)
    return j.verdict
