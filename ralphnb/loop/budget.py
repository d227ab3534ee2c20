"""One live budget for a run: `max_cost_usd` shared by all its workers, changeable while it runs.

Owns: `Budget` -- the limit (`set`, `limit`), what was spent (`spent`, counted from the live
cost in the worker table's records, so a running attempt's reported cost counts at once), what
is `left`, whether any of it is an estimate (a CLI that reports only tokens: the runner's parser
marks the cost `cost_estimated`; `observe` notes those workers from the events), and
`reached()`. Also the pure `spent_of(records)` and `budget_reason`.
Never: stops a worker or starts one. What reaching it means is the scheduler's business (it
starts no new attempt; with `on_budget="stop"` it also stops the running ones); raising the limit
calls `on_change`, which wakes the scheduler so the run goes on without a restart.
Invariants: thread-safe (one lock); `limit` None means no budget (never reached).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

ON_BUDGET = ("finish", "stop")


def spent_of(records: Iterable[Mapping[str, Any]]) -> float:
    """USD spent by these worker records (a record without a cost counts nothing)."""
    return float(sum(float(r.get("cost_usd") or 0.0) for r in records))


def budget_reason(spent: float, limit: float, estimated: bool) -> str:
    """One line: why no new attempt starts."""
    est = " (partly estimated from tokens)" if estimated else ""
    return f"budget reached: cost ${spent:.2f}{est} reached max_cost_usd ${limit:.2f}"


class Budget:
    """The run's budget. `records`: the worker table's records (copies); `on_change(budget)` is
    called after `set` (outside the lock). `budget.set(30.0)`, `.spent`, `.left`, `.limit`."""

    def __init__(
        self,
        limit: float | None,
        records: Callable[[], list[dict[str, Any]]],
        *,
        on_budget: str = "finish",
        on_change: Callable[[Budget], None] | None = None,
    ) -> None:
        if on_budget not in ON_BUDGET:
            raise ValueError(f"on_budget={on_budget!r}: use 'finish' or 'stop'")
        self._lock = threading.Lock()
        self._limit = _check(limit)
        self._records = records
        self._estimated: set[str] = set()
        self.on_budget = on_budget
        self.on_change = on_change

    def set(self, limit: float | None) -> None:
        """Change the limit now (None: no limit). Raising it above what was spent lets a run
        held by the budget start attempts again."""
        with self._lock:
            self._limit = _check(limit)
        if self.on_change is not None:
            self.on_change(self)

    @property
    def limit(self) -> float | None:
        with self._lock:
            return self._limit

    @property
    def spent(self) -> float:
        """USD spent so far by the run's attempts, the running ones included."""
        return spent_of(self._records())

    @property
    def left(self) -> float | None:
        """USD left before the limit (never below 0); None without a limit."""
        limit = self.limit
        return None if limit is None else max(0.0, limit - self.spent)

    @property
    def estimated(self) -> bool:
        """True when some of `spent` is estimated from tokens (the CLI reported no cost)."""
        with self._lock:
            ids = set(self._estimated)
        return any(r.get("worker_id") in ids and r.get("cost_usd") for r in self._records())

    def reached(self) -> bool:
        limit = self.limit
        return limit is not None and self.spent >= limit

    def reason(self) -> str | None:
        """Why no new attempt starts (None while under the limit)."""
        limit = self.limit
        if limit is None:
            return None
        spent = self.spent
        return budget_reason(spent, limit, self.estimated) if spent >= limit else None

    def observe(self, event: Any) -> None:
        """An event of the run (its subscriber): note the workers whose cost is an estimate."""
        data = getattr(event, "data", None) or {}
        if getattr(event, "kind", None) == "output" and data.get("cost_estimated"):
            with self._lock:
                self._estimated.add(str(event.worker_id))

    def state(self) -> dict[str, Any]:
        """For events, the control socket and the dashboard header."""
        return {
            "limit": self.limit,
            "spent": round(self.spent, 6),
            "estimated": self.estimated,
            "on_budget": self.on_budget,
        }

    def __repr__(self) -> str:
        limit = "none" if self.limit is None else f"${self.limit:.2f}"
        est = " (estimated)" if self.estimated else ""
        return f"Budget(spent=${self.spent:.2f}{est}, limit={limit}, on_budget={self.on_budget!r})"


def _check(limit: float | None) -> float | None:
    if limit is None:
        return None
    value = float(limit)
    if value < 0:
        raise ValueError(f"a budget cannot be negative: {limit!r}")
    return value


__all__ = ["ON_BUDGET", "Budget", "budget_reason", "spent_of"]
