"""Experiments: best-of-N sweeps of runners, models and prompts over queue tasks.

Owns: `Sweep` (sweep: the public API, its scheduler thread and journal; built on the loop's
pieces: executors, the worker table, events and journal, the budget, the dashboard), one run of
one (task, variant, repeat) in its own workspace (trial), the tidy results, the summary and the
choice of winners, all pure (results), variants named `runner[:model]` (variants), and the
optional matplotlib plots (plots).
Imports: loop, workers, workspace, runners, queue (down); the view imports this room, never the
other way round (the dashboard is reached through the loop's one lazy hook).
Invariants: every run starts from the same base commit in its own workspace; nothing is merged
and no queue task is marked done until `Sweep.merge()` integrates its winner.
"""

from .sweep import Sweep

__all__ = ["Sweep"]
