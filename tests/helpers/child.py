"""A misbehaving child program for the process tests: `child.py MODE [ARGS...]`.

Modes print `ready` (flushed) once set up, so tests wait on output instead of sleeping.
"""

import os
import signal
import sys
import time


def ready() -> None:
    sys.stdout.write("ready\n")
    sys.stdout.flush()


def sleeper() -> None:
    """A grandchild: sleep long, die only by signal."""
    time.sleep(600)
    os._exit(0)


def main() -> None:
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "exit":
        print("hello from child", flush=True)
        sys.exit(int(args[0]))
    if mode == "honour-int":

        def bye(signum, frame):
            os.write(1, b"got SIGINT, exiting\n")  # print() may be mid-flush of "ready"
            sys.exit(0)

        signal.signal(signal.SIGINT, bye)
        ready()
        time.sleep(600)
    if mode == "int-file":  # a setsid escapee; on SIGINT, say so, write ARGS[0] and exit 0
        r, w = os.pipe()
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                os.write(w, b"x")
                sleeper()
            os._exit(0)
        os.read(r, 1)

        def mark(signum, frame):
            os.write(1, b"got SIGINT, stopping\n")  # a broken stdout would raise here
            with open(args[0], "w") as f:
                f.write("got SIGINT\n")
            os._exit(0)

        signal.signal(signal.SIGINT, mark)
        ready()
        time.sleep(600)
    if mode == "exit-on-term":

        def term(signum, frame):
            os.write(1, b"got SIGTERM\n")
            os._exit(7)

        signal.signal(signal.SIGTERM, term)
        ready()
        time.sleep(600)
    if mode == "ignore-int":
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        ready()
        time.sleep(600)
    if mode == "fork":
        for _ in range(int(args[0])):
            if os.fork() == 0:
                sleeper()
        ready()
        time.sleep(600)
    if mode == "escapee":  # a grandchild leaves the session and keeps stdout open
        r, w = os.pipe()
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:  # double fork: orphaned, re-parented to the subreaper
                os.write(w, b"x")
                sleeper()
            os._exit(0)
        os.read(r, 1)
        print(f"escapee-ready {args[0] if args else ''}", flush=True)
        if args and args[0] == "exit":
            sys.exit(0)
        time.sleep(600)
    if mode == "selfkill":
        print("about to die", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    if mode == "env":
        for k in sorted(os.environ):
            print(f"{k}={os.environ[k]}")
        sys.exit(0)
    if mode == "bytes":  # ARGS: total bytes, line length (incl. newline)
        total, width = int(args[0]), int(args[1])
        line = b"x" * (width - 1) + b"\n"
        block = line * max(1, (1 << 20) // width)
        out = sys.stdout.buffer
        left = total
        while left >= len(block):
            out.write(block)
            left -= len(block)
        out.write((b"x" * (width - 1) + b"\n") * (left // width) + b"y" * (left % width))
        out.flush()
        sys.exit(0)
    if mode == "longline":  # a CRLF line, one line of ARGS[0] bytes, bad utf-8, no final newline
        n = int(args[0])
        sys.stdout.buffer.write(b"a\r\n" + b"b" * n + b"\nc\n\xff\nlast")
        sys.stdout.flush()
        sys.exit(0)
    raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
