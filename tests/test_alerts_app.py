"""The page's saved searches, through AppTest with the fake encoder: the sidebar block and its helpers."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from indexer import BuildSettings, Filters, alerts, build, page
from indexer.alert_records import SavedSearch

from .conftest import FAKE_MODEL, SEEDS, FakeEncoder, write
from .test_app import APP, cards, fake_library, first_title, no_errors, records  # noqa: F401 - fixtures

ARCTIC = {
    "id": "arctic-2",
    "title": "Arctic shipping routes open earlier",
    "text": "Arctic sea ice melts earlier each year. Shipping routes in the Arctic open in June.",
    "source": "Polar Times",
    "date": "2025-05-02",
    "lang": "en",
}


@pytest.fixture(scope="module")
def saved_index(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("alerts-app")
    src = root / "articles"
    write(src / "batch.json", json.dumps(records(), ensure_ascii=False))
    index = root / "index"
    build([SEEDS, src], index, BuildSettings(), encoder=FakeEncoder(), model=FAKE_MODEL)
    alerts.add(index, "arctic", "arctic shipping routes", filters=Filters(langs=("en",)), encoder=FakeEncoder())
    alerts.add(index, "cuisine", "tarte aux pommes", mode="bm25", encoder=FakeEncoder())
    write(src / "more.json", json.dumps([ARCTIC]))
    report = build([SEEDS, src], index, BuildSettings(), encoder=FakeEncoder(), model=FAKE_MODEL)
    assert report.alerts is not None and report.alerts.matches == 1
    return index


@pytest.fixture
def app(fake_library, monkeypatch, saved_index) -> AppTest:  # noqa: F811 - the fixture imported above
    monkeypatch.setenv("INDEXER_INDEX", str(saved_index))
    return AppTest.from_file(APP, default_timeout=30)


def saved_buttons(at: AppTest) -> dict[str, str]:
    return {b.key: b.label for b in at.sidebar.button if b.key and b.key.startswith("saved-")}


def test_the_sidebar_lists_saved_searches_with_their_new_matches(app, saved_index):
    app.run()
    no_errors(app)
    labels = sorted(saved_buttons(app).values())
    assert labels == ["arctic · **1 new**", "cuisine"]
    assert app.query_params[page.SEEN_PARAM] == str(alerts.overview(saved_index, None).latest)


def test_clicking_a_saved_search_runs_it_with_its_filters(app):
    app.run()
    (key,) = [k for k, label in saved_buttons(app).items() if label.startswith("arctic")]
    app.button(key=key).click().run()
    no_errors(app)
    assert app.text_input(key="q").value == "arctic shipping routes"
    assert app.multiselect(key="lang").value == ["en"]
    assert first_title(app).startswith("Arctic shipping routes") and any(ARCTIC["title"] in c for c in cards(app))
    assert "1 new" in saved_buttons(app)[key]  # the visit keeps counting from the mark it came with


def test_a_visit_with_the_newest_mark_has_nothing_new(app, saved_index):
    app.query_params[page.SEEN_PARAM] = str(alerts.overview(saved_index, None).latest)
    app.run()
    no_errors(app)
    assert sorted(saved_buttons(app).values()) == ["arctic", "cuisine"]


@pytest.mark.parametrize(("value", "mark"), [("12", 12), (" 7 ", 7), (None, None), ("", None), ("-3", None),
                                             ("x", None), ("9" * 30, None)])  # fmt: skip
def test_the_mark_in_the_url_is_read_safely(value, mark):
    assert page.seen_mark(value) == mark


def test_saved_labels_escape_markdown_and_show_counts():
    assert page.saved_label("a*b", 0) == "a\\*b"
    assert page.saved_label("wind", 1234) == "wind · **1,234 new**"


def test_a_saved_search_sets_the_widgets_within_the_index_dates():
    s = SavedSearch("x", "q", "dense", Filters(("fr",), ("Le Monde",), "2020-01-01", "2024-06-30"))
    got = page.saved_widgets(s, ["2024-01-15", "2025-06-01"])
    assert got == {"q": "q", "mode": "dense", "lang": ["fr"], "source": ["Le Monde"],
                   "dates": (date(2024, 1, 15), date(2024, 6, 30))}  # fmt: skip
    beyond = SavedSearch("x", "q", filters=Filters(date_from="2030-01-01"))
    assert page.saved_widgets(beyond, ["2024-01-15", "2025-06-01"])["dates"] == (date(2024, 1, 15), date(2025, 6, 1))
    assert "dates" not in page.saved_widgets(beyond, [])
