"""Every file-reading CLI input works as a file, a pipe, stdin, a FIFO; a folder or a missing path is one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from .conftest import write
from .reliability_helpers import ROOT, build_args, cli, cli_env


@pytest.fixture(scope="module")
def index(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cliq")
    write(root / "src" / "ice.txt", "Ice\nArctic sea ice is melting fast this summer.")
    write(root / "src" / "fox.txt", "Fox\nThe quick brown fox jumps over the lazy dog.")
    res = cli(*build_args(root / "src", root / "index"))
    assert res.returncode == 0, res.stderr
    return root / "index"


def _search(index: Path, source: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "indexer", "search", "--index", str(index), "--queries", source,
                           "--json", "-k", "1"], cwd=ROOT, env=cli_env(), input=stdin, capture_output=True,
                          text=True, timeout=300)  # fmt: skip


def _answered(res: subprocess.CompletedProcess) -> list[str]:
    assert res.returncode == 0, res.stderr
    return [json.loads(line)["query"] for line in res.stdout.splitlines()]


def test_queries_from_a_file_stdin_and_dev_null(index, tmp_path):
    f = write(tmp_path / "q.txt", "\ufeffsea ice\r\nbrown fox\n")
    assert _answered(_search(index, str(f))) == ["sea ice", "brown fox"]  # BOM and CRLF are not part of a query
    assert _answered(_search(index, "-", stdin="sea ice\nbrown fox\n")) == ["sea ice", "brown fox"]
    assert _answered(_search(index, "/dev/null")) == []


def test_queries_from_a_fifo(index, tmp_path):
    fifo = tmp_path / "q.fifo"
    os.mkfifo(fifo)

    def feed() -> None:
        with open(fifo, "w") as f:
            f.write("sea ice\n")

    t = threading.Thread(target=feed)
    t.start()
    assert _answered(_search(index, str(fifo))) == ["sea ice"]
    t.join(10)


def test_queries_from_a_process_substitution(index):
    cmd = f'{sys.executable} -m indexer search --index "{index}" --queries <(echo "sea ice") --json -k 1'
    res = subprocess.run(["bash", "-c", cmd], cwd=ROOT, env=cli_env(), capture_output=True, text=True, timeout=300)
    assert _answered(res) == ["sea ice"]


@pytest.mark.parametrize("what", ["missing", "folder"])
def test_a_bad_queries_path_is_one_line(index, tmp_path, what):
    path = tmp_path / "nope.txt" if what == "missing" else tmp_path
    res = _search(index, str(path))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert ("not found" if what == "missing" else "is a folder") in lines[0]


# ------------------------------------------------------------------ --gate
def _gate_setup(tmp_path):
    src, index = tmp_path / "src", tmp_path / "index"
    write(src / "ice.txt", "Ice\nArctic sea ice is melting fast this summer.")
    write(src / "fox.txt", "Fox\nThe quick brown fox jumps over the lazy dog.")
    write(src / "lava.txt", "Volcano\nThe volcano eruption sent lava down the slopes.")
    assert cli(*build_args(src, index)).returncode == 0
    gate = write(tmp_path / "gate.jsonl", "\n".join(json.dumps(q) for q in [
        {"query": "melting sea ice in the Arctic", "relevant": ["ice.txt"]},
        {"query": "a volcano sends lava down", "relevant": ["lava.txt"]},
    ]) + "\n")  # fmt: skip
    return src, index, gate


def test_cli_gate_publishes_what_holds_and_refuses_what_does_not(tmp_path):
    src, index, gate = _gate_setup(tmp_path)
    manifest = (index / "manifest.json").read_bytes()
    write(src / "harbour.txt", "Harbour\nThe harbour reopened after the storm.")
    ok = cli(*build_args(src, index, "--gate", gate))
    assert ok.returncode == 0, ok.stderr
    assert "gate passed" in ok.stdout or "gate" in ok.stdout
    assert (index / "manifest.json").read_bytes() != manifest

    manifest = (index / "manifest.json").read_bytes()
    (src / "lava.txt").unlink()  # the new version can no longer answer one of the labelled questions
    refused = cli(*build_args(src, index, "--gate", gate))
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    first, *rest = refused.stderr.strip().splitlines()
    assert first.startswith("error: ") and any("a volcano sends lava down" in line for line in rest), refused.stderr
    assert (index / "manifest.json").read_bytes() == manifest  # the live version stays
    assert list((index / ".work" / "rejected").iterdir())
    assert cli(*build_args(src, index)).returncode == 0  # without the gate the change is published


@pytest.mark.parametrize("case", ["min-recall alone", "missing file", "folder", "bad line"])
def test_cli_gate_bad_input_is_one_line(tmp_path, case):
    src, index, _ = _gate_setup(tmp_path)
    extra = {"min-recall alone": ["--min-recall", "0.9"], "missing file": ["--gate", str(tmp_path / "no.jsonl")],
             "folder": ["--gate", str(tmp_path)],
             "bad line": ["--gate", str(write(tmp_path / "bad.jsonl", "{not json\n"))]}[case]  # fmt: skip
    res = cli(*build_args(src, index, *extra))
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert "error" in res.stderr.lower()


# ----------------------------------------------- a build that finds nothing
@pytest.mark.parametrize("case", ["unsupported file", "an index folder", "empty folder", "only bad files"])
def test_a_build_that_finds_nothing_says_why_in_one_line(index, tmp_path, case):
    if case == "unsupported file":
        source, why = write(tmp_path / "passwd", "root:x:0:0:root:/root:/bin/bash\n"), "unsupported file type"
    elif case == "an index folder":
        source, why = index, "an index folder"
    elif case == "empty folder":
        source, why = tmp_path / "empty", "no file of a supported type"
        source.mkdir()
    else:
        source, why = tmp_path / "bad", "empty file"
        write(source / "a.txt", "")
    target = tmp_path / "new-index"
    res = cli(*build_args(source, target))
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: no articles found in the sources (") and why in lines[0]
    assert "above" not in lines[0]
    assert not target.exists()  # nothing left behind


# ------------------------------------------------------------------ serve
SERVE_DEADLINE = 300  # s: generous, for a loaded machine; the test waits on events, never sleeps for a time


def test_indexer_serve_starts_answers_and_stops(index, tmp_path):
    import queue
    import re
    import signal
    import urllib.request

    # port 0: the server binds the socket itself and says which port it got (no free-port race);
    # stderr (uvicorn's log) goes to a file, so a full pipe can never block the server
    args = [sys.executable, "-m", "indexer", "serve", "--index", str(index), "--port", "0"]
    log = tmp_path / "serve.log"
    with log.open("w") as err:
        proc = subprocess.Popen(args, cwd=ROOT, env=cli_env(), stdout=subprocess.PIPE, stderr=err, text=True)
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        for line in proc.stdout:  # type: ignore[union-attr]
            lines.put(line)
        lines.put(None)  # the server closed its output: it has ended

    def said() -> str:
        return f"\nstderr:\n{log.read_text(errors='replace')[-3000:]}"

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        try:  # ready: it prints its address once it answers (index and model loaded)
            line = lines.get(timeout=SERVE_DEADLINE)
        except queue.Empty:
            pytest.fail(f"indexer serve printed nothing in {SERVE_DEADLINE} s{said()}")
        m = re.search(r"serving .* at (http://127\.0\.0\.1:\d+) ", line or "")
        assert m, f"not the line announcing the server: {line!r}{said()}"
        with urllib.request.urlopen(f"{m[1]}/search?q=sea+ice&k=1", timeout=SERVE_DEADLINE) as r:
            hit = json.loads(r.read())["hits"][0]
        assert hit["article_id"] == "ice.txt"
        proc.send_signal(signal.SIGINT)
        try:
            assert proc.wait(timeout=SERVE_DEADLINE) == 0, said()
        except subprocess.TimeoutExpired:
            pytest.fail(f"indexer serve still running {SERVE_DEADLINE} s after SIGINT{said()}")
        reader.join(timeout=SERVE_DEADLINE)
        assert not reader.is_alive(), "the server's output stayed open after it ended"
        rest = list(iter(lines.get_nowait, None))  # what it printed after the address, up to the end mark
        assert "stopped" in "".join(rest), f"{rest!r}{said()}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_indexer_serve_bad_options_are_one_line(index):
    for args in (["--port", "70000"], ["--host", "no-such-host.invalid"]):
        res = cli("serve", "--index", index, *args, timeout=60)
        assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr


# ---------------------------------------------------------------- --explain
def test_indexer_search_explain_in_text_and_json(index):
    text = cli("search", "sea ice melting", "--index", index, "-k", "2", "--explain")
    assert text.returncode == 0, text.stderr
    assert text.stdout.count("why: dense") == 2
    plain = cli("search", "sea ice melting", "--index", index, "-k", "2")
    assert "why:" not in plain.stdout
    line = json.loads(cli("search", "sea ice melting", "--index", index, "-k", "2", "--json", "--explain").stdout)
    assert all("explanation" in h for h in line["hits"]) and "no_close_match" in line
    bare = json.loads(cli("search", "sea ice melting", "--index", index, "-k", "2", "--json").stdout)
    assert not any("explanation" in h for h in bare["hits"])


def test_a_build_report_of_many_bad_files_is_bounded(tmp_path, capsys):
    from indexer.build import BuildReport
    from indexer.cli_output import SKIPS_SHOWN, print_report
    from indexer.records import Skipped

    rep = BuildReport(skipped=[Skipped(f"bad{i}.json", f"not JSON (line {i})") for i in range(5000)], published=True)
    print_report(rep, tmp_path)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) < SKIPS_SHOWN + 20
    assert lines[-1].strip().startswith(f"… and {5000 - SKIPS_SHOWN:,} more ({5000 - SKIPS_SHOWN:,} × not JSON)")


def test_indexer_info_json_says_whether_scores_are_calibrated(index):
    info = json.loads(cli("info", "--index", index, "--json").stdout)
    assert info["scores"]["calibrated"] is False  # the small test model has no fitted calibration
    assert "generic" in info["scores"]["calibration"]
