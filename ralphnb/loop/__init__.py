"""The loop: which task next, one task's life through its attempts, the live worker table.

Owns: `Loop` (public API and scheduler; core), one task's driver (driver), the pure decisions
(decide), the check command (check), events and the run journal (events), the worker table and
its DataFrame (table), worker records as text (report), past runs (runs) and the control socket
other processes use to reach a running loop (control).
Never: imports the view, except the one lazy hook that gives `Loop` its notebook display.
"""
