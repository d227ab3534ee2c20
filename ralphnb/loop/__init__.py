"""The loop: which task next, one task's life through its attempts, the live worker table.

Owns: `Loop` (the public API, the event sink; core), the scheduler of a started run and its
limits (scheduler), one task's driver, an object per task (driver), what a driver is given
(context) and its view of the queue (gateway), one attempt's parsing and diagnosis (attempt), a
remote agent's queue marks applied to the user's queue (marks), the pure decisions (decide), the
check command (check), events and the run journal (events), the sink every event of a run
goes through (sink), the worker table and its DataFrame
(table), worker records as text (report), which runner a loop runs when none is named (choice),
what a failed write means for a run (failures), the git configs an agent could change
(configwatch), a started run's lock, directory and socket (rundir), past runs (runs), the
control socket other processes use to reach a running loop (control) and what it answers
(requests), the checks before a run writes anything (setup), a started run's scheduler put
together from the Loop's options (assemble), the stop of running
loops at interpreter exit (shutdown), the publish mode and the push after a merge (publishing),
which interrupted agent session a task resumes (resume), detached loops -- the background
process (detached), its start from the caller (launch), the client object any process attaches
with (attached) and the numbered event stream it follows (feed), attempts' transcripts rebuilt
from their logs (transcripts), and stuck workers: the pure decision (stuck) and the sampler that
acts on it (stuckwatch).
Never: imports the view, except the one lazy hook (viewhook) that gives a loop its notebook
display.
"""
