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


# ------------------------------------------------------- every output path
WORDS = ["of Bergen, full of fishing boats and ferries,", "in Lisbon, where cranes load container ships,",
         "at Gdansk, the shipyard city on the Baltic,", "of Genoa, with its old lighthouse and cruise quays,",
         "in Rotterdam, Europe's largest port by tonnage,", "at Valletta, guarded by baroque fortifications,",
         "of Tromsø, a gateway to Arctic expeditions,"]
def _hostile_index(tmp_path):
    from .conftest import write
    from .reliability_helpers import build_args, cli

    src, index = tmp_path / "src", tmp_path / "index"
    recs = [{"id": f"r{i}", "title": f"Harbour {a} news", "source": f"Wire{a}", "url": f"https://x.org/{a}",
             "author": f"A{a}", "text": f"The harbour {WORDS[i]} reopened after storm number {i} {a}."}
            for i, a in enumerate(ATTACKS)]  # fmt: skip
    write(src / "wire.jsonl", "\n".join(json.dumps(r) for r in recs) + "\n")
    write(src / "bad.jsonl", json.dumps({"title": "\x1b]0;PWNED\x07", "text": 5}) + "\n")  # a skip quoting it
    write(src / "nul\x1b[2J.txt", b"\x00\x01binary")  # a skip naming a hostile file name
    res = cli(*build_args(src, index))
    assert res.returncode == 0, res.stderr
    return src, index, recs, res


def test_no_output_path_lets_an_escape_through(tmp_path):
    from .reliability_helpers import cli

    _, index, recs, built = _hostile_index(tmp_path)
    runs = [built, cli("search", "harbour storm", "--index", index, "-k", "10"),
            cli("search", "harbour storm", "--index", index, "-k", "10", "--json"),
            cli("info", "--index", index), cli("info", "--index", index, "--json"),
            cli("search", "harbour", "--index", index, "--source", "nope\x1b]0;x\x07"),
            cli("build", tmp_path / "missing\x1b[2J", "--index", index)]  # fmt: skip
    for res in runs:
        for stream in (res.stdout, res.stderr):
            assert not ACTIVE.search(stream.replace("\r", "")), (res.args, stream[:300])
    hits = json.loads(runs[2].stdout)["hits"]
    by_id = {r["id"]: r for r in recs}
    assert len(hits) == len(recs)
    for h in hits:  # --json keeps the exact text
        rec = by_id[h["article_id"]]
        assert (h["title"], h["source"], h["url"]) == (rec["title"], rec["source"], rec["url"])
    assert "\\x1b]0;PWNED\\x07" in runs[1].stdout or "Harbour \\x1b" in runs[1].stdout
