"""The terminal's live table: a line per change of status, or the table redrawn in place."""

from __future__ import annotations

import io
import time
from typing import Any

from ralphnb.loop.events import Event
from ralphnb.loop.report import attempt_line, attempts_table
from ralphnb.view.console import Printer


class Records:
    """A loop stand-in with the one method the printer reads."""

    def __init__(self) -> None:
        self.records = [
            {"task_id": "RQ-0001", "worker_id": "RQ-0001#1", "iteration": 1, "status": "starting"}
        ]

    def snapshot(self, sample: bool = True) -> list[dict[str, Any]]:
        return [dict(r) for r in self.records]


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_pipe_gets_one_line_per_change_of_status() -> None:
    loop, out = Records(), io.StringIO()
    printer = Printer(loop, out)
    printer(Event("starting", "RQ-0001", "RQ-0001#1"))
    printer(Event("output", "RQ-0001", "RQ-0001#1"))  # same status: no new line
    loop.records[0]["status"] = "running"
    printer(Event("started", "RQ-0001", "RQ-0001#1"))
    printer(Event("loop_finished", data={"reason": "idle"}))
    lines = out.getvalue().splitlines()
    assert len(lines) == 3
    assert lines[1] == attempt_line(loop.records[0]) and "running" in lines[1]
    assert lines[2] == '[loop_finished] {"reason": "idle"}'


def test_a_terminal_gets_the_table_redrawn_in_place() -> None:
    loop, out = Records(), Tty()
    printer = Printer(loop, out)
    printer.start()
    printer(Event("starting", "RQ-0001", "RQ-0001#1"))
    end = time.monotonic() + 5
    while not out.getvalue() and time.monotonic() < end:
        time.sleep(0.01)
    first = out.getvalue()
    assert first == attempts_table(loop.snapshot()) + "\n"
    loop.records[0]["status"] = "running"
    printer.close()  # draws the final table over the previous one
    again = out.getvalue()[len(first) :]
    assert again.startswith(f"\x1b[{first.count(chr(10))}F\x1b[J") and "running" in again
