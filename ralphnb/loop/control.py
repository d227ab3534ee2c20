"""The control channel of a running loop: a same-user unix socket for status, stop and kill.

Owns: `ControlServer` (the loop's end: one JSON request per connection, peers of another user
refused via SO_PEERCRED; a handler that answers with an iterator instead of a dict streams it,
one JSON line per message, until it ends or the client goes away), `send_control` and
`open_stream` (the client's ends) and `live_run` (which run of a repo is live now).
Invariants: the socket lives in the Linux abstract namespace (no file, gone with the process);
a bad request never takes the loop down.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import struct
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import RalphError
from .runs import list_runs, loop_alive, read_loop_info


class ControlServer:
    """A unix socket (Linux abstract namespace: no file, gone when the process dies) on which
    a running loop answers one JSON request per connection, from processes of the same user
    only (checked with SO_PEERCRED). One thread blocks in `accept()`:
    no polling. `handler(request) -> reply` must not raise."""

    def __init__(self, name: str, handler: Any) -> None:
        self.handler = handler
        self.address = "\0ralphnb-" + name
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.bind(self.address)
        self._sock.listen(8)
        self._closed = False
        self._thread = threading.Thread(target=self._serve, name="ralphnb-control", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._closed:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: Any) -> None:
        with conn:
            if not _same_user(conn):  # abstract sockets have no file mode: check the peer
                with contextlib.suppress(OSError):
                    conn.sendall(b'{"error": "permission denied: not the loop\'s user"}\n')
                return
            try:
                conn.settimeout(10)
                request = json.loads(_read_line(conn) or b"{}")
                reply = self.handler(request)
            except Exception as exc:  # a bad request never takes the loop down
                reply = {"error": f"{type(exc).__name__}: {exc}"}
            if not isinstance(reply, dict):  # a stream: one line per message until either
                _send_stream(conn, reply)  # end stops (the client going away included)
                return
            try:
                conn.sendall(json.dumps(reply, default=str).encode() + b"\n")
            except OSError:
                pass

    def close(self) -> None:
        self._closed = True
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()


def _send_stream(conn: Any, messages: Iterator[dict[str, Any]]) -> None:
    """Send each message as a line until the messages end or the client is gone (a send that
    fails or that the client does not read for 10 s); the messages are closed either way."""
    try:
        for msg in messages:
            conn.sendall(json.dumps(msg, default=str).encode() + b"\n")
    except Exception:  # the client went away, or the stream failed: end this connection only
        pass
    finally:
        close = getattr(messages, "close", None)
        if close is not None:
            with contextlib.suppress(Exception):
                close()


def _same_user(conn: Any) -> bool:
    """Is the process at the other end of a unix socket run by this process's user?"""
    try:
        creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError:
        return False
    _pid, uid, _gid = struct.unpack("3i", creds)
    return uid == os.getuid()


def send_control(address: str, request: dict[str, Any], *, timeout: float = 30.0) -> dict:
    """Send one request to a running loop's control socket; its JSON reply."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        try:
            s.connect(address)
        except OSError as exc:
            raise RalphError(f"the loop is not answering ({exc}); is it still running?") from exc
        try:
            s.sendall(json.dumps(request).encode() + b"\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the loop refused before reading (e.g. another user): its reply is queued
        data = _read_line(s)
    return json.loads(data or b"{}")


def open_stream(
    address: str, request: dict[str, Any], *, idle: float = 5.0
) -> Iterator[dict[str, Any]]:
    """Send one request whose answer is a stream; yield its messages as they arrive. Ends
    when the loop closes the stream; raises `RalphError` when the loop cannot be reached and
    `OSError` when nothing (not even a ping) came for `idle` seconds or the connection broke."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(idle)
        try:
            s.connect(address)
        except OSError as exc:
            raise RalphError(f"the loop is not answering ({exc}); is it still running?") from exc
        s.sendall(json.dumps(request).encode() + b"\n")
        buf = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for line in lines:
                if line.strip():
                    yield json.loads(line)


def _read_line(sock: Any) -> bytes:
    """Bytes up to and including the first newline, or until the peer closes."""
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def live_run(repo: str | Path) -> tuple[Path, dict[str, Any]] | None:
    """The run directory and loop info of a loop running now on `repo` (newest first)."""
    for run_dir in reversed(list_runs(repo)):
        info = read_loop_info(run_dir)
        if info and info.get("finished_at") is None and loop_alive(info):
            return run_dir, info
    return None
