"""Text from articles, made safe to show in a terminal.

A title, source or url read from a JSON, JSONL or CSV record is untrusted: ``\\x1b[2J``
clears the screen, ``\\x1b]0;…\\x07`` sets the window title, ``\\x1b]52;c;…\\x07`` writes the
clipboard, and the 8-bit C1 controls (U+0080–U+009F: U+009B is a one-character CSI)
do the same on terminals that honour them. Every control character except newline
and tab (and carriage return on the progress stream) is shown as a visible escape,
``\\x1b`` → ``\\x1b`` spelt out, so the text stays legible and exact to read, and nothing
reaches the terminal as a command. JSON output escapes them itself (``json_safe``).
"""

from __future__ import annotations

import io
import json
import re
import sys
from typing import Any, TextIO

# C0 controls but tab and newline, DEL, and the C1 block
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_CONTROL_CR_OK = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def _escape(m: re.Match[str]) -> str:
    return f"\\x{ord(m.group()):02x}"


def clean(text: str, *, keep_cr: bool = False) -> str:
    """``text`` with every control character that could act on a terminal spelt out as ``\\xNN``."""
    return (_CONTROL_CR_OK if keep_cr else _CONTROL).sub(_escape, text)


def json_safe(data: Any) -> str:
    """``json.dumps`` of ``data`` (non-ASCII kept) with the C1 controls, which JSON allows raw, escaped too."""
    return re.sub(r"[\x7f-\x9f]", lambda m: f"\\u{ord(m.group()):04x}", json.dumps(data, ensure_ascii=False))


class SafeStream(io.TextIOBase):
    """A text stream that cleans what is written to it before the real stream sees it."""

    def __init__(self, inner: TextIO, *, keep_cr: bool = False) -> None:
        self.inner = inner
        self.keep_cr = keep_cr

    def write(self, s: str) -> int:
        """Write ``s`` cleaned; returns its length as given (what callers count)."""
        self.inner.write(clean(s, keep_cr=self.keep_cr))
        return len(s)

    def flush(self) -> None:  # noqa: D102
        self.inner.flush()

    def isatty(self) -> bool:  # noqa: D102
        return self.inner.isatty()

    def fileno(self) -> int:  # noqa: D102
        return self.inner.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]  # noqa: D102
        return getattr(self.inner, "encoding", "utf-8")

    @property
    def errors(self) -> str | None:  # type: ignore[override]  # noqa: D102
        return getattr(self.inner, "errors", None)

    def writable(self) -> bool:  # noqa: D102
        return True


def protect_std_streams() -> None:
    """Clean everything the process prints from now on (the CLI's first step); idempotent."""
    if not isinstance(sys.stdout, SafeStream):
        sys.stdout = SafeStream(sys.stdout)
    if not isinstance(sys.stderr, SafeStream):
        sys.stderr = SafeStream(sys.stderr, keep_cr=True)  # the progress bar redraws its line with \r
