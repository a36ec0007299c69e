"""The indexer CLI under a Python audit hook, for the reliability tests.

python tests/reliability_cli.py ARGS...   (as ``python -m indexer ARGS...``)

RELIABILITY_OPEN_LOG=FILE   append every path the process opens or lists (NUL-separated)
RELIABILITY_DENY=FILE       NUL-separated paths whose opening or listing fails with
                            "Permission denied", as chmod 000 would for a non-root user
                            (root reads anything, and these tests run as root in CI)
RELIABILITY_PEAK_RSS=FILE   write this process's peak resident memory (kB) there at exit;
                            the kernel's VmHWM starts afresh at exec, where the rusage of a
                            child also counts the parent it was forked from
"""

from __future__ import annotations

import atexit
import os
import sys

_EVENTS = {"open", "os.scandir", "os.listdir", "sqlite3.connect"}


def _install() -> None:
    log_path = os.environ.get("RELIABILITY_OPEN_LOG")
    deny_path = os.environ.get("RELIABILITY_DENY")
    deny: set[bytes] = set()
    if deny_path:
        with open(deny_path, "rb") as f:
            deny = {p for p in f.read().split(b"\0") if p}
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644) if log_path else None

    def hook(event: str, args: tuple) -> None:
        if event not in _EVENTS or not args or args[0] is None or isinstance(args[0], int):
            return
        raw = args[0]
        path = os.fsencode(raw)
        if event == "sqlite3.connect" and path.startswith(b"file:"):
            path = path[5:].split(b"?", 1)[0]
        path = os.path.abspath(path)
        if fd is not None:
            os.write(fd, event.encode() + b"\t" + path + b"\0")
        if path in deny and event != "sqlite3.connect":
            raise PermissionError(13, "Permission denied", os.fsdecode(raw))

    sys.addaudithook(hook)
    peak_path = os.environ.get("RELIABILITY_PEAK_RSS")
    if peak_path:
        atexit.register(_write_peak, peak_path)


def _write_peak(target: str) -> None:
    with open("/proc/self/status", encoding="ascii") as f:
        kb = next(line.split()[1] for line in f if line.startswith("VmHWM:"))
    with open(target, "w", encoding="ascii") as f:
        f.write(kb)


if __name__ == "__main__":
    _install()
    from indexer.cli import main

    main(prog_name="indexer")
