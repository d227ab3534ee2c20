"""The loop's transcripts: which attempt, the runner that reads its log, one incremental
reader per log, and the worker's secrets kept out."""

from __future__ import annotations

import json

import pytest

from ralphnb.errors import RalphError
from ralphnb.loop.transcripts import KEEP, Transcripts, find_record
from ralphnb.runners import Claude, Command

RECS = [
    {"task_id": "RQ-0001", "iteration": 1, "status": "failed", "log_path": None},
    {"task_id": "RQ-0001", "iteration": 2, "status": "running", "log_path": None},
]


def test_latest_attempt_by_default_and_a_clear_error_for_a_missing_one():
    assert find_record(RECS, "RQ-0001", None)["iteration"] == 2
    assert find_record(RECS, "RQ-0001", 1)["status"] == "failed"
    with pytest.raises(RalphError, match=r"no attempt 3 in this run \(attempts: 1, 2\)"):
        find_record(RECS, "RQ-0001", 3)
    with pytest.raises(RalphError, match="no attempt of RQ-0009"):
        find_record(RECS, "RQ-0009", None)


def test_transcript_uses_the_tasks_runner_and_hides_secrets(tmp_path, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-very-secret-value")
    log = tmp_path / "1.log"
    block = {"type": "tool_use", "id": "t", "name": "Bash", "input": {"command": "echo "}}
    block["input"]["command"] += "sk-very-secret-value"
    log.write_text(json.dumps({"type": "assistant", "message": {"content": [block]}}) + "\n")
    recs = [{"task_id": "RQ-0001", "iteration": 1, "status": "succeeded", "log_path": str(log)}]
    t = Transcripts(lambda tid: Claude()).get(recs, "RQ-0001", None)
    (call,) = [e for e in t.entries if e.kind == "tool_call"]
    assert call.tool == "Bash" and "sk-very-secret-value" not in call.args
    assert "[redacted]" in call.args and not t.live
    plain = Transcripts(lambda tid: Command(["x"])).get(recs, "RQ-0001", None)
    assert [e.kind for e in plain.entries] == ["text"]  # another runner reads it as text


def test_a_live_log_is_read_incrementally_by_one_reader(tmp_path):
    log = tmp_path / "1.log"
    log.write_text("one\n")
    recs = [{"task_id": "RQ-0001", "iteration": 1, "status": "running", "log_path": str(log)}]
    made = []

    def runner_for(tid: str) -> Command:
        made.append(tid)
        return Command(["x"])

    ts = Transcripts(runner_for)
    assert [e.text for e in ts.get(recs, "RQ-0001", None).entries] == ["one"]
    with open(log, "a") as fh:
        fh.write("two\nthr")  # an unterminated line of a live log waits for its end
    t = ts.get(recs, "RQ-0001", None)
    assert [e.text for e in t.entries] == ["one", "two"] and t.live and made == ["RQ-0001"]
    for i in range(KEEP + 1):  # readers of other logs push the oldest out
        other = tmp_path / f"o{i}.log"
        other.write_text("x\n")
        ts.get([{**recs[0], "log_path": str(other)}], "RQ-0001", None)
    assert len(ts._readers) == KEEP
