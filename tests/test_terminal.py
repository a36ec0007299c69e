"""Untrusted text never reaches a terminal as a command; JSON keeps it exact."""

from __future__ import annotations

import io
import json
import re

from hypothesis import given
from hypothesis import strategies as st

from indexer.terminal import SafeStream, clean, json_safe

ACTIVE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
ATTACKS = ["\x1b[2J", "\x1b]0;PWNED\x07", "\x1b]52;c;ZWNobyBoaQ==\x07", "\x9b2J", "\x9d0;x\x9c", "a\rb",
           "\x1bP+q\x1b\\"]
texts = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=200)
texts = texts | st.sampled_from(ATTACKS)


@given(texts)
def test_clean_leaves_no_control_character(text):
    out = clean(text)
    assert not ACTIVE.search(out)
    assert out.count("\n") == text.count("\n") and out.count("\t") == text.count("\t")
    if not ACTIVE.search(text):
        assert out == text  # ordinary text, any script, is untouched


def test_attacks_are_spelt_out():
    assert clean("\x1b]52;c;ZWNobyBoaQ==\x07title") == "\\x1b]52;c;ZWNobyBoaQ==\\x07title"
    assert clean("\x9b2J") == "\\x9b2J"
    assert clean("a\rb") == "a\\x0db"
    assert clean("a\rb", keep_cr=True) == "a\rb"


@given(st.dictionaries(st.sampled_from(["title", "source", "url", "text"]), texts))
def test_json_safe_is_exact_and_inert(record):
    out = json_safe(record)
    assert json.loads(out) == record
    assert not ACTIVE.search(out)
    assert clean(out) == out  # passing through a cleaned stream changes nothing: still valid JSON


def test_safe_stream_cleans_every_write():
    inner = io.StringIO()
    s = SafeStream(inner)
    print("Title: \x1b]0;PWNED\x07 ok", file=s)
    assert inner.getvalue() == "Title: \\x1b]0;PWNED\\x07 ok\n"
