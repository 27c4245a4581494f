"""Figures from one scenario's record: throughput, latency, and per fault what failed,
how long recovery took and what the oracle found; the timeline chart."""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from benchmarks.harness import percentile

from .load import Event
from .oracle import Fault, Finding, Verdict

__all__ = ["chart", "summarize"]

SETTLE = 20.0  # seconds after a fault's repair during which failures are put down to it


def _fault_of(faults: list[Fault], t: float) -> int | None:
    """The index of the latest fault begun at ``t`` and not long repaired."""
    found = None
    for i, fault in enumerate(faults):
        if fault.start <= t <= fault.end + SETTLE:
            found = i
    return found


def _q(values: list[float], q: float) -> float | None:
    return round(percentile(values, q), 3) if values else None  # type: ignore[arg-type]


def _recovery(events: list[Event], fault: Fault, failed: list[Event]) -> list[float]:
    """Per user that failed: from the fault's start to its first success after its last
    failure put down to this fault."""
    last_failure: dict[str, float] = {}
    for e in failed:
        last_failure[e.user] = max(last_failure.get(e.user, 0.0), e.t1)
    recovered: dict[str, float] = {}
    for e in events:
        after = last_failure.get(e.user)
        if after is not None and e.ok and e.t0 >= after and e.user not in recovered:
            recovered[e.user] = e.t1 - fault.start
    return sorted(recovered.values())


def _messages(failed: list[Event], top: int = 3) -> dict[str, int]:
    """The most frequent error messages (digits masked, so ports and counts group)."""
    masked = Counter(
        "".join("#" if c.isdigit() else c for c in e.msg or e.err or "?") for e in failed
    )
    return dict(masked.most_common(top))


def _findings(items: list[Finding], t0: float) -> list[dict[str, Any]]:
    return [
        {"kind": f.kind, "cause": f.cause, "op": f.op, "app": f.app, "detail": f.detail,
         "written_s": round(f.written - t0, 2), "seen_s": round(f.at - t0, 2)}
        for f in items
    ]  # fmt: skip


def summarize(name: str, meta: dict[str, Any], events: list[Event], faults: list[Fault],
              verdict: Verdict, t0: float) -> dict[str, Any]:  # fmt: skip
    """The JSON section of one scenario."""
    events = sorted(events, key=lambda e: e.t0)
    end = max((e.t1 for e in events), default=t0)
    failed = [e for e in events if not e.ok]
    by_fault: dict[int | None, list[Event]] = defaultdict(list)
    for e in failed:  # by when it failed: a request sent just before a fault fails in it
        by_fault[_fault_of(faults, e.t1)].append(e)
    per_fault = []
    for i, fault in enumerate(faults):
        recovery = _recovery(events, fault, by_fault[i])
        wrong = [w for w in verdict.wrong_accepts if _fault_of(faults, w.at) == i]
        per_fault.append({
            "fault": fault.name,
            "detail": fault.detail,
            "at_s": round(fault.start - t0, 1),
            "repaired_after_s": round(fault.end - fault.start, 2),
            "requests_failed": len(by_fault[i]),
            "errors": dict(Counter(e.err or "?" for e in by_fault[i])),
            "messages": _messages(by_fault[i]),
            "users_affected": len(recovery),
            "recover_p50_s": _q(recovery, 0.5),
            "recover_p99_s": _q(recovery, 0.99),
            "wrong_accepts": len(wrong),
            "sessions_lost": sum(f.cause == fault.name for f in verdict.losses),
            "expired_early": sum(f.cause == fault.name for f in verdict.early),
        })  # fmt: skip
    latency = {}
    for op in sorted({e.op for e in events}):
        ok = [(e.t1 - e.t0) * 1000 for e in events if e.op == op and e.ok]
        latency[op] = {"count": len(ok), "p50_ms": _q(ok, 0.5), "p99_ms": _q(ok, 0.99),
                       "max_ms": round(max(ok), 1) if ok else None}  # fmt: skip
    seconds = max(1, int(end - t0))  # whole seconds: the last, partial one is left out
    ok_per_s, err_per_s = [0] * seconds, [0] * seconds
    for e in events:
        if int(e.t1 - t0) < seconds:
            (ok_per_s if e.ok else err_per_s)[int(e.t1 - t0)] += 1
    losses = Counter(f"{f.kind}: {f.cause}" for f in verdict.losses)
    return {
        "scenario": name,
        **meta,
        "seconds": round(end - t0, 1),
        "requests": len(events),
        "ok_per_s": round(sum(e.ok for e in events) / max(end - t0, 1e-9), 1),
        "failed": len(failed),
        "failed_outside_faults": len(by_fault[None]),
        "errors": dict(Counter(e.err or "?" for e in failed)),
        "latency": latency,
        "faults": per_fault,
        "oracle": {
            "checked": dict(verdict.checked),
            "wrong_accepts": _findings(verdict.wrong_accepts, t0),
            "losses_by_cause": dict(losses),
            "losses": _findings(verdict.losses[:50], t0),
            "expired_early": len(verdict.early),
            "hangs": _findings(verdict.hangs[:50], t0),
            "hang_count": len(verdict.hangs),
            "bugs": _findings(verdict.bugs[:50], t0),
        },
        "timeline": {"ok": ok_per_s, "failed": err_per_s},
    }


def chart(scenarios: list[dict[str, Any]], path: Path) -> None:
    """One panel per scenario: requests/s answered and failed per second, faults shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(scenarios), 1, figsize=(11, 2.6 * len(scenarios)), squeeze=False)
    for ax, sc in zip(axes[:, 0], scenarios, strict=True):
        ok, bad = sc["timeline"]["ok"], sc["timeline"]["failed"]
        ax.step(range(len(ok)), ok, where="post", color="tab:blue", lw=1.2, label="answered/s")
        ax.step(range(len(bad)), bad, where="post", color="tab:red", lw=1.2, label="failed/s")
        top = max(ok + bad + [1])
        for n, fault in enumerate(sc["faults"]):
            start, width = fault["at_s"], max(fault["repaired_after_s"], 0.5)
            ax.axvspan(start, start + width, color="orange", alpha=0.25)
            ax.text(start, top * (0.93 - 0.14 * (n % 2)), f" {fault['fault']}", fontsize=8,
                    va="top")  # fmt: skip
        title = (f"{sc['scenario']}: {sc['ok_per_s']:g} ok/s, {sc['failed']} failed, "
                 f"{len(sc['oracle']['wrong_accepts'])} wrong accepts, "
                 f"{sum(sc['oracle']['losses_by_cause'].values())} lost, "
                 f"{sc['oracle']['expired_early']} expired early by a stepped clock")  # fmt: skip
        ax.set_title(title, fontsize=10, loc="left")
        ax.set_ylabel("requests/s")
        ax.set_ylim(0, top * 1.05)
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("seconds since the scenario's load started")
    axes[0, 0].legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
