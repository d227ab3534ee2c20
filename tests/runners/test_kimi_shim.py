"""kimi_shim: kimi's session id (stderr) and usage (wire.jsonl) become one stdout line; kimi's
stdout, stderr and exit code pass through."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from ralphnb.runners.kimi import SHIM
from ralphnb.runners.kimi_shim import wire_usage

FAKE_KIMI = r"""
import json, os, sys, time
from pathlib import Path
sid = "3f2b9c1e-0000-4000-8000-000000000001"
wire = Path(os.environ["KIMI_SHARE_DIR"]) / "sessions" / "abc" / sid / "wire.jsonl"
wire.parent.mkdir(parents=True)
now = time.time()
recs = [{"type": "metadata"}]
for n in (1, 2):
    recs.append({"timestamp": now, "message": {"type": "StepBegin", "payload": {"n": n}}})
    usage = {"input_other": 100, "input_cache_read": 20, "input_cache_creation": 0, "output": 7}
    status = {"type": "StatusUpdate", "payload": {"token_usage": usage}}
    recs.append({"timestamp": now, "message": status})
wire.write_text("\n".join(json.dumps(r) for r in recs) + "\n")
print(sys.stdin.read().upper())
print("\nTo resume this session: kimi -r " + sid, file=sys.stderr)
sys.exit(int(sys.argv[1]))
"""


def test_shim_adds_session_and_usage_and_keeps_exit_code(tmp_path):
    fake = tmp_path / "kimi.py"
    fake.write_text(FAKE_KIMI)
    env = {"KIMI_SHARE_DIR": str(tmp_path / "share"), "PATH": "/usr/bin:/bin"}
    p = subprocess.run(
        [sys.executable, str(SHIM), sys.executable, str(fake), "3"],
        input="prompt",
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert p.returncode == 3
    out = p.stdout.splitlines()
    assert out[0] == "PROMPT"
    summary = json.loads(out[-1])
    assert summary == {
        "type": "ralphnb.kimi",
        "session_id": "3f2b9c1e-0000-4000-8000-000000000001",
        "exit_code": 3,
        "steps": 2,
        "tokens_in": 240,
        "tokens_out": 14,
    }
    assert "To resume this session" in p.stderr


def test_wire_usage_counts_only_this_run(tmp_path):
    wire = tmp_path / "wire.jsonl"
    old, new = time.time() - 3600, time.time()
    usage = {"input_other": 5, "output": 1}
    lines = [
        {"timestamp": old, "message": {"type": "StepBegin"}},
        {"timestamp": old, "message": {"type": "StatusUpdate", "payload": {"token_usage": usage}}},
        {"timestamp": new, "message": {"type": "StepBegin"}},
        {"timestamp": new, "message": {"type": "StatusUpdate", "payload": {"token_usage": usage}}},
    ]
    wire.write_text("\n".join(json.dumps(x) for x in lines) + "\nnot json\n")
    assert wire_usage(wire, new - 1) == {"steps": 1, "tokens_in": 5, "tokens_out": 1}
    assert wire_usage(Path(tmp_path / "missing"), 0) == {}
