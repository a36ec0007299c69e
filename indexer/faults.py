"""Named crash points, so the reliability tests can kill a build at an exact phase.

``INDEXER_CRASH_AT=embed:3`` makes the process SIGKILL itself the third time the
build passes the ``embed`` point. Unset (always, outside those tests) it costs
one dictionary lookup per call.
"""

from __future__ import annotations

import os
import signal

_counts: dict[str, int] = {}


def crash_point(name: str) -> None:
    """SIGKILL this process here when ``INDEXER_CRASH_AT`` names this point (kill tests only)."""
    spec = os.environ.get("INDEXER_CRASH_AT")
    if not spec:
        return
    point, _, nth = spec.partition(":")
    if point != name:
        return
    _counts[name] = _counts.get(name, 0) + 1
    if _counts[name] >= int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
