"""The control socket of a running loop: who may talk to it."""

from __future__ import annotations

import os

import pytest

from ralphnb.loop.control import ControlServer, send_control

pytestmark = pytest.mark.usefixtures("fast_demo")


def test_control_socket_refuses_another_user(monkeypatch):
    calls = []
    server = ControlServer(f"review-{os.getpid()}", lambda req: calls.append(req) or {"ok": 1})
    try:
        assert send_control(server.address, {"op": "status"}) == {"ok": 1}
        monkeypatch.setattr(os, "getuid", lambda: os.geteuid() + 4242)  # we are now "another"
        reply = send_control(server.address, {"op": "kill", "task_id": "RQ-0001"})
        assert "permission denied" in reply["error"]
        assert calls == [{"op": "status"}]
    finally:
        server.close()
