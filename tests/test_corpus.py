"""Reading articles: every format, every bad input skipped with a clear reason, nothing else lost."""

from __future__ import annotations

import builtins
import codecs
import json
import os
import random
from collections import Counter
from pathlib import Path

import pytest

from indexer import corpus
from indexer.corpus import ReadSettings, display_path, normalize_date, read_sources
from indexer.errors import SourceNotFoundError
from indexer.records import Article, Skipped

from .conftest import IS_ROOT, write

FR = (
    "Le gouvernement a présenté hier un nouveau projet de loi sur l'énergie. "
    "Les députés en débattront la semaine prochaine à l'Assemblée nationale."
)
EN = (
    "The government presented a new energy bill yesterday. "
    "Members of parliament will debate it next week in the national assembly."
)
DE = (
    "Die Regierung hat gestern einen neuen Gesetzentwurf zur Energie vorgestellt. "
    "Die Abgeordneten werden nächste Woche im Bundestag darüber beraten."
)
ES = (
    "El gobierno presentó ayer un nuevo proyecto de ley sobre la energía. "
    "Los diputados lo debatirán la próxima semana en el congreso nacional."
)
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + random.Random(1).randbytes(2000)


def read(*sources: Path, **settings) -> list[Article | Skipped]:
    return list(read_sources(list(sources), ReadSettings(**settings)))


def articles(results) -> list[Article]:
    return [r for r in results if isinstance(r, Article)]


def skipped(results) -> list[Skipped]:
    return [r for r in results if isinstance(r, Skipped)]


def only_article(path: Path, **settings) -> Article:
    results = read(path, **settings)
    assert not skipped(results), skipped(results)
    [art] = articles(results)
    return art


def only_skip(path: Path, **settings) -> Skipped:
    results = read(path, **settings)
    assert not articles(results), articles(results)
    [skip] = skipped(results)
    return skip


def by_id(results) -> dict[str, Article]:
    return {a.id: a for a in articles(results)}


# ------------------------------------------------------------------------ txt
def test_txt_first_line_is_title_rest_is_body(tmp_path):
    art = only_article(write(tmp_path / "news.txt", "\n\n  Energy bill  \n\n" + EN + "\n\nSecond paragraph.\n"))
    assert art.title == "Energy bill"
    assert art.text == EN + "\n\nSecond paragraph."
    assert (art.id, art.path, art.lang) == ("news.txt", "news.txt", "en")


def test_txt_single_line_is_title_and_text(tmp_path):
    art = only_article(write(tmp_path / "one.txt", EN))
    assert art.title == art.text == EN


def test_txt_crlf_and_cr_newlines(tmp_path):
    art = only_article(write(tmp_path / "win.txt", b"Title\r\nLine one.\r\nLine two.\rLine three.\r\n"))
    assert art.title == "Title"
    assert art.text == "Line one.\nLine two.\nLine three."


@pytest.mark.parametrize(
    "encoding, bom",
    [
        ("utf-8", codecs.BOM_UTF8),
        ("utf-16-le", codecs.BOM_UTF16_LE),
        ("utf-16-be", codecs.BOM_UTF16_BE),
        ("utf-16-le", b""),
        ("utf-16-be", b""),
        ("utf-32-le", codecs.BOM_UTF32_LE),
        ("utf-32-be", codecs.BOM_UTF32_BE),
    ],
)
def test_txt_unicode_encodings(tmp_path, encoding, bom):
    content = "Café résumé\r\n" + FR + "\r\n"
    art = only_article(write(tmp_path / "enc.txt", bom + content.encode(encoding)))
    assert art.title == "Café résumé"  # no BOM character, no stray NULs
    assert art.text == FR
    assert art.lang == "fr"


@pytest.mark.parametrize(
    "text",
    [
        "café résumé",
        "naïve façade",
        "Le café et le résumé du garçon, à Noël.\nÇa coûte 5 € – prix « fixe ».",
        "Grüße aus München, schöne Straße",
        "El niño comió piñata en España.",
        "Regeringen fremlagde i går et nyt lovforslag. Søren og Ærø.",
        "Perché è così? Più tardi, città.",
        "l’énergie d’été",
    ],
)
def test_txt_cp1252_decoded(tmp_path, text):
    # short legacy text fits many code pages; Western European must win the tie
    art = only_article(write(tmp_path / "legacy.txt", ("Été\n" + text).encode("cp1252")))
    assert (art.title, art.text) == ("Été", text)
    assert only_article(write(tmp_path / "short.txt", text.encode("cp1252"))).title == text.split("\n")[0]


def test_txt_latin1_decoded(tmp_path):
    art = only_article(write(tmp_path / "latin1.txt", ("Résumé\n" + FR).encode("latin-1")))
    assert (art.title, art.text) == ("Résumé", FR)


@pytest.mark.parametrize(
    "text, encoding",
    [
        ("Привет, как дела? Это тест кодировки.", "cp1251"),
        ("Правительство вчера представило новый законопроект об энергетике.", "koi8-r"),
        ("Η κυβέρνηση παρουσίασε χθες ένα νέο νομοσχέδιο για την ενέργεια.", "cp1253"),
        ("Rząd przedstawił wczoraj nowy projekt ustawy o energii. Posłowie będą nad nim debatować.", "cp1250"),
        ("Vláda včera představila nový návrh zákona o energetice. Poslanci o něm budou jednat příští týden.", "cp1250"),
        ("A kormány tegnap új energiatörvény-javaslatot mutatott be. A képviselők jövő héten vitatják meg.", "cp1250"),
        (
            "Hükümet dün enerji konusunda yeni bir yasa tasarısı sundu. "
            "Milletvekilleri gelecek hafta meclisde tartışacak. Şişli'de güzel bir gün.",
            "cp1254",
        ),
    ],
)
def test_txt_other_legacy_encodings_not_forced_to_western(tmp_path, text, encoding):
    assert only_article(write(tmp_path / "legacy.txt", text.encode(encoding))).text == text


# ------------------------------------------------------------------------- md
MD = """---
title: "From front matter: a title"
date: 2025-02-27
source: Le Monde
author: Jeanne Dupont
url: https://example.org/energie
tags: energy, politics
---
# Heading that is not the title

Read [the bill](https://example.org/bill) and **all** of _it_ with `care`.

![a chart](chart.png)

> A quoted line.

- first item
- second item

```python
x = "**not stripped**"
```

---

Last *paragraph*.
"""


def test_md_front_matter_and_markup(tmp_path):
    art = only_article(write(tmp_path / "post.md", MD))
    assert art.title == "From front matter: a title"
    assert (art.date, art.source, art.author, art.url) == (
        "2025-02-27",
        "Le Monde",
        "Jeanne Dupont",
        "https://example.org/energie",
    )
    assert art.meta == {"tags": "energy, politics"}
    assert "Heading that is not the title" not in art.text  # the heading line is the title slot
    assert "Read the bill and all of it with care." in art.text
    assert "a chart" in art.text and "chart.png" not in art.text
    assert "A quoted line." in art.text and "> A" not in art.text
    assert "first item\nsecond item" in art.text
    assert 'x = "**not stripped**"' in art.text  # code is kept verbatim, fences are not
    assert "```" not in art.text and "---" not in art.text
    assert art.text.endswith("Last paragraph.")
    for markup in ("](", "**", "__", "`"):
        assert markup not in art.text.replace('"**not stripped**"', "")


@pytest.mark.parametrize(
    "source",
    [
        "# Atx title #\n\nBody text here.\n",
        "   ## Atx title\nBody text here.\n",
        "Atx title\n=========\n\nBody text here.\n",
        "Atx title\n---------\nBody text here.\n",
        "\n\n# **Atx** [title](http://x)\n\nBody text here.\n",
    ],
)
def test_md_headings(tmp_path, source):
    art = only_article(write(tmp_path / "h.md", source))
    assert (art.title, art.text) == ("Atx title", "Body text here.")


def test_md_without_heading_or_front_matter(tmp_path):
    art = only_article(write(tmp_path / "plain.md", "Just **a** paragraph.\n"))
    assert (art.title, art.text) == ("", "Just a paragraph.")


def test_md_front_matter_at_end_of_file_or_empty(tmp_path):
    art = only_article(write(tmp_path / "only.md", "---\ntitle: Only a title\n---"))
    assert (art.title, art.text) == ("Only a title", "Only a title")
    art = only_article(write(tmp_path / "empty.md", "---\n---\n# Title\nBody.\n"))
    assert (art.title, art.text) == ("Title", "Body.")


def test_md_front_matter_bad_date_kept_raw(tmp_path):
    art = only_article(write(tmp_path / "d.md", "---\ndate: sometime soon\n---\n# T\n\nBody.\n"))
    assert art.date is None and art.meta["date_raw"] == "sometime soon"


# ----------------------------------------------------------------------- html
HTML = """<!doctype html>
<html lang="en"><head>
<title>Energy bill | Example News</title>
<meta property="og:title" content="Energy bill presented">
<meta property="article:published_time" content="2025-02-27T08:00:00+00:00">
<meta name="author" content="Jane Doe">
</head><body>
<nav><ul><li><a href="/">Home</a></li><li><a href="/world">World navigation link</a></li></ul></nav>
<article>
<h1>Energy bill presented</h1>
<p>{p1}</p>
<p>{p2}</p>
<p>Officials said the bill would be amended in committee before any final vote takes place next month.</p>
</article>
<footer><p>Copyright 2025 Example News. All rights reserved. Footer boilerplate.</p></footer>
<script>var tracking = "SCRIPT_CONTENT";</script>
</body></html>
"""


def test_html_main_text_title_date(tmp_path):
    art = only_article(write(tmp_path / "page.html", HTML.format(p1=EN, p2=EN.replace("new", "second"))))
    assert art.title == "Energy bill presented"
    assert EN in art.text and "amended in committee" in art.text
    for boilerplate in ("World navigation link", "Footer boilerplate", "SCRIPT_CONTENT"):
        assert boilerplate not in art.text
    assert art.date is not None and art.date.startswith("2025-02-27")
    assert art.lang == "en"


def test_html_only_script_is_skipped(tmp_path):
    skip = only_skip(
        write(tmp_path / "empty.htm", "<html><head><script>alert('x')</script></head><body></body></html>")
    )
    assert "no article text" in skip.reason


def test_html_broken_markup_is_read(tmp_path):
    art = only_article(write(tmp_path / "broken.html", "<html><body><p>" + EN + "<div><b>unclosed <<<>>> &&& "))
    assert art.text.startswith(EN)


@pytest.mark.parametrize(
    "content, text",
    [
        ("<p>Hello world.</p>", "Hello world."),
        ("<div>" + EN + "</div>", EN),
        (EN, EN),
        ("<style>p {}</style><p>Styled text.</p>", "Styled text."),
    ],
)
def test_html_fragment_or_short_page_is_read(tmp_path, content, text):
    # trafilatura finds nothing in markup without an <html> root
    assert only_article(write(tmp_path / "frag.html", content), detect_language=False).text == text


# ----------------------------------------------------------------------- json
def test_json_single_object_with_metadata(tmp_path):
    rec = {
        "text": FR,
        "title": "Énergie",
        "url": "https://example.fr/a",
        "date": "2025-02-27",
        "source": "Le Monde",
        "author": "J. Dupont",
        "Section": "Politique",
    }
    art = only_article(write(tmp_path / "one.json", json.dumps(rec, ensure_ascii=False)))
    assert art.id == "one.json"  # one article per file: the path alone
    assert (art.title, art.url, art.date, art.source, art.author, art.lang) == (
        "Énergie",
        "https://example.fr/a",
        "2025-02-27",
        "Le Monde",
        "J. Dupont",
        "fr",
    )
    assert art.meta == {"section": "Politique"}


def test_json_list_and_wrapper(tmp_path):
    items = [{"text": EN, "title": "One"}, {"text": DE, "title": "Two", "id": "custom-2"}]
    results = read(write(tmp_path / "list.json", json.dumps(items)))
    assert list(by_id(results)) == ["list.json#1", "custom-2"]
    results = read(write(tmp_path / "wrap.json", json.dumps({"count": 2, "articles": items})))
    assert [(a.id, a.title) for a in articles(results)] == [("wrap.json#1", "One"), ("custom-2", "Two")]
    assert not skipped(results)


def test_json_bad_items_reported_others_kept(tmp_path):
    items = [{"text": EN}, "just a string", {"title": "no text"}, {"text": 42}, {"text": "   "}, {"text": DE}]
    results = read(write(tmp_path / "mixed.json", json.dumps(items)))
    assert [a.id for a in articles(results)] == ["mixed.json#1", "mixed.json#6"]
    reasons = {s.path: s.reason for s in skipped(results)}
    shown = display_path(tmp_path / "mixed.json")
    assert reasons == {
        f"{shown} (item 2)": "expected an object, got a string",
        f"{shown} (item 3)": "no 'text' field",
        f"{shown} (item 4)": "'text' is not a string",
        f"{shown} (item 5)": "empty text",
    }


@pytest.mark.parametrize(
    "content, reason",
    [
        ('{"text": "a", }', "malformed JSON"),
        ('[{"text": "abc"}, {"text": "de', "malformed JSON"),
        ('{"text": "a"}\n{"text": "b"}', "malformed JSON"),
        ("[" * 100_000, "nested too deeply"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ('{"a":' * 50_000 + "1" + "}" * 50_000, "nested too deeply"),
        ("42", "must be an object or a list"),
        ('"text"', "must be an object or a list"),
        ("[]", "no articles found"),
        ('{"title": "no text"}', "no 'text' field"),
    ],
)
def test_json_unusable_file_reported(tmp_path, content, reason):
    skip = only_skip(write(tmp_path / "bad.json", content))
    assert reason in skip.reason
    assert "\n" not in skip.reason


def test_json_malformed_reports_position(tmp_path):
    skip = only_skip(write(tmp_path / "bad.json", '[\n{"text": "ok"},\n{"text": oops}\n]'))
    assert "line 3 column 10" in skip.reason


# ---------------------------------------------------------------------- jsonl
def test_jsonl_bad_lines_reported_with_line_numbers(tmp_path):
    lines = [
        json.dumps({"text": EN, "title": "One"}),
        '{"text": "broken',
        "[1, 2, 3]",
        json.dumps({"title": "no text"}),
        "",
        json.dumps({"text": DE, "id": "de-1"}),
        json.dumps({"text": ES}),
    ]
    path = write(tmp_path / "dump.jsonl", "\n".join(lines) + "\n")
    results = read(path)
    assert list(by_id(results)) == ["dump.jsonl#L1", "de-1", "dump.jsonl#L7"]
    shown = display_path(path)
    reasons = {s.path: s.reason for s in skipped(results)}
    assert set(reasons) == {f"{shown} (line 2)", f"{shown} (line 3)", f"{shown} (line 4)"}
    assert "malformed JSON" in reasons[f"{shown} (line 2)"]
    assert reasons[f"{shown} (line 3)"] == "expected an object, got a list"
    assert reasons[f"{shown} (line 4)"] == "no 'text' field"


def test_jsonl_overlong_line_skipped_others_kept(tmp_path):
    long = json.dumps({"text": "word " * 5000})  # ~25 kB > 0.01 MB
    path = write(tmp_path / "big.jsonl", "\n".join([json.dumps({"text": EN}), long, json.dumps({"text": DE})]))
    results = read(path, max_file_mb=0.01)
    assert list(by_id(results)) == ["big.jsonl#L1", "big.jsonl#L3"]
    [skip] = skipped(results)
    assert skip.path.endswith("(line 2)")
    assert "line longer than 0.01 MB" in skip.reason


def test_jsonl_is_streamed_not_size_limited(tmp_path):
    path = write(tmp_path / "many.jsonl", "".join(json.dumps({"text": f"{EN} {i}"}) + "\n" for i in range(200)))
    assert path.stat().st_size > 0.01 * 2**20
    assert len(articles(read(path, max_file_mb=0.01, detect_language=False))) == 200


def test_jsonl_bom_crlf_and_legacy_line(tmp_path):
    content = codecs.BOM_UTF8 + b'{"text": "first"}\r\n' + '{"text": "café résumé à Noël"}\r\n'.encode("cp1252")
    results = read(write(tmp_path / "b.jsonl", content), detect_language=False)
    assert [a.text for a in articles(results)] == ["first", "café résumé à Noël"]
    assert not skipped(results)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-32"])
def test_jsonl_utf16_and_utf32(tmp_path, encoding):
    # Windows PowerShell 5 writes UTF-16 with a BOM; utf-16-le here has none
    content = "\r\n".join(json.dumps({"text": t}, ensure_ascii=False) for t in (FR, DE)) + "\r\n"
    results = read(write(tmp_path / "w.jsonl", content.encode(encoding)))
    assert [(a.id, a.text, a.lang) for a in articles(results)] == [("w.jsonl#L1", FR, "fr"), ("w.jsonl#L2", DE, "de")]
    assert not skipped(results)


def test_jsonl_invalid_utf16_reported(tmp_path):
    content = codecs.BOM_UTF16_LE + '{"text": "ok"}\n{"text": "'.encode("utf-16-le") + b"\x00\xd8A\x00"
    skip = only_skip(write(tmp_path / "bad16.jsonl", content))
    assert skip.reason.startswith("invalid utf-16-le text")


@pytest.mark.parametrize(
    "content, reason",
    [
        (b"", "empty file"),
        (b"\n\n  \n", "no articles found"),
        (PNG, "binary file"),
    ],
)
def test_jsonl_unusable_file_reported_once(tmp_path, content, reason):
    assert reason in only_skip(write(tmp_path / "x.jsonl", content)).reason


# ------------------------------------------------------------------------ csv
def test_csv_records_with_metadata(tmp_path):
    content = (
        "ID,Title,Text,Date,URL,Source,Author,Lang,Section\r\n"
        f'a1,Énergie,"{FR}",27/02/2025,https://x.fr/1,Le Monde,J. Dupont,FR-ca,Politique\r\n'
        f',Energy,"{EN}\nSecond line, with ""quotes"".",1740614400,,,,,\r\n'
    )
    results = read(write(tmp_path / "t.csv", content))
    assert not skipped(results)
    a, b = articles(results)
    assert (a.id, a.title, a.date, a.url, a.source, a.author, a.lang) == (
        "a1",
        "Énergie",
        "2025-02-27",
        "https://x.fr/1",
        "Le Monde",
        "J. Dupont",
        "fr",
    )
    assert a.meta == {"section": "Politique"}
    assert b.id == "t.csv#row3" and b.date == "2025-02-27" and b.lang == "en"
    assert b.text == EN + '\nSecond line, with "quotes".'
    assert b.meta == {"section": ""}


def test_csv_without_text_column_lists_columns(tmp_path):
    skip = only_skip(write(tmp_path / "t.csv", "id,title,body\n1,A,Some body\n"))
    assert "no 'text' column" in skip.reason and "id, title, body" in skip.reason


def test_csv_broken_quoting_reported_other_rows_kept(tmp_path):
    content = (
        "id,title,text\n"
        '1,One,"Good text, with a comma."\n'
        '2,Two,"Broken "quote" here."\n'
        '3,Three,"Also good."\n'
        '4,Four,"Never closed\n'
    )
    path = write(tmp_path / "q.csv", content)
    results = read(path, detect_language=False)
    assert [a.id for a in articles(results)] == ["1", "3"]
    shown = display_path(path)
    reasons = {s.path: s.reason for s in skipped(results)}
    assert set(reasons) == {f"{shown} (row 3)", f"{shown} (row 5)"}
    assert all("malformed CSV row" in r for r in reasons.values())


def test_csv_unclosed_quote_does_not_silently_swallow_rows(tmp_path):
    content = 'id,title,text\n1,One,"Never closed\n2,Two,"Swallowed"\n3,Three,Kept\n'
    results = read(write(tmp_path / "q.csv", content), detect_language=False)
    assert [a.id for a in articles(results)] == ["3"]
    [skip] = skipped(results)
    assert skip.path.endswith("(row 2)") and "malformed CSV row" in skip.reason


def test_csv_wrong_field_count_and_blank_rows(tmp_path):
    content = "title,text\nA,First text\n\nB,Second text,extra\n,,\nC,Third text\n"
    path = write(tmp_path / "f.csv", content)
    results = read(path, detect_language=False)
    # ids follow the rows as a spreadsheet shows them, blank rows included
    assert list(by_id(results)) == ["f.csv#row2", "f.csv#row6"]
    [skip] = skipped(results)
    assert skip.path == f"{display_path(path)} (row 4)"
    assert skip.reason == "3 fields where the header has 2"


@pytest.mark.parametrize("sep", [";", "\t", "|"])
def test_csv_other_delimiters(tmp_path, sep):
    content = (
        f'id{sep}title{sep}text\n1{sep}Un{sep}"Du texte, avec des virgules; et plus"\n2{sep}Deux{sep}Autre, texte\n'
    )
    results = read(write(tmp_path / "s.csv", content), detect_language=False)
    assert [(a.id, a.title, a.text) for a in articles(results)] == [
        ("1", "Un", "Du texte, avec des virgules; et plus"),
        ("2", "Deux", "Autre, texte"),
    ]


def test_csv_prose_with_semicolons_keeps_comma_delimiter(tmp_path):
    rows = "".join(f"T{i},Sentence {i}; more; and more: yes.,2025-01-0{i}\n" for i in range(1, 6))
    results = read(write(tmp_path / "p.csv", "title,text,date\n" + rows), detect_language=False)
    assert [a.text for a in articles(results)] == [f"Sentence {i}; more; and more: yes." for i in range(1, 6)]


def test_csv_doubled_quotes_after_the_sniffed_sample(tmp_path):
    rows = "".join(f"{i},Plain text number {i}\n" for i in range(1000))  # > 8 kB without quotes
    path = write(tmp_path / "late.csv", "id,text\n" + rows + '1000,"A ""quoted"" word, here"\n')
    assert by_id(read(path, detect_language=False))["1000"].text == 'A "quoted" word, here'


@pytest.mark.parametrize(
    "content, reason",
    [("id,text\n", "no articles found"), ("id,text\n\n\n", "no articles found"), (b"", "empty file")],
)
def test_csv_without_rows_reported(tmp_path, content, reason):
    assert reason in only_skip(write(tmp_path / "h.csv", content)).reason


# ------------------------------------------------------------------------ ids
def test_ids_are_stable_explicit_and_unique(tmp_path):
    src = tmp_path / "src"
    write(src / "a.txt", "A\n" + EN)
    write(src / "sub" / "b.md", "# B\n\n" + FR)
    write(src / "c.jsonl", json.dumps({"id": "x-1", "text": DE}) + "\n" + json.dumps({"text": ES}) + "\n")
    first, second = read(src), read(src)
    assert first == second and not skipped(first)
    assert list(by_id(first)) == ["a.txt", "x-1", "c.jsonl#L2", "sub/b.md"]


def test_duplicate_ids_second_reported_first_kept(tmp_path):
    src = tmp_path / "src"
    write(src / "1.json", json.dumps({"id": "same", "text": EN}))
    write(src / "2.json", json.dumps({"id": "same", "text": DE}))
    results = read(src)
    [art] = articles(results)
    assert art.text == EN and art.path == "1.json"
    [skip] = skipped(results)
    assert skip.path == display_path(src / "2.json")
    assert "duplicate" in skip.reason and "'same'" in skip.reason and "1.json" in skip.reason


def test_same_file_as_source_twice_read_once(tmp_path):
    path = write(tmp_path / "a.txt", "A\n" + EN)
    results = read(path, path)
    assert len(articles(results)) == 1
    assert len(skipped(results)) == 1


def test_missing_source_raises(tmp_path):
    with pytest.raises(SourceNotFoundError):
        read(tmp_path / "nope")


# ------------------------------------------------------------------- bad files
@pytest.mark.parametrize(
    "name, content, reason",
    [
        ("image.txt", PNG, "binary file"),
        ("nul.txt", b"Title\nSome text\x00with a NUL byte\n", "binary file (contains NUL bytes)"),
        ("nul.md", b"# T\n\x00\x00\x00\x00", "binary file"),
        ("empty.txt", b"", "empty file"),
        ("blank.txt", b"  \n\t\r\n   \n", "whitespace only"),
        ("blank16.txt", codecs.BOM_UTF16_LE + "  \n ".encode("utf-16-le"), "whitespace only"),
        ("random.txt", random.Random(7).randbytes(4000), "binary file"),
        ("high.txt", bytes(b for b in random.Random(3).randbytes(8000) if b >= 0x80), "no other text encoding fits"),
        ("control.txt", bytes(range(1, 32)) * 20, "control characters"),
        ("badbom.txt", codecs.BOM_UTF8 + b"caf\xe9\xff\xfe", "invalid utf-8 after its byte-order mark"),
        ("image.json", PNG, "binary file"),
        ("image.csv", PNG, "binary file"),
        ("image.html", PNG, "binary file"),
        ("empty.html", b"", "empty file"),
        ("empty.json", b"", "empty file"),
    ],
)
def test_unreadable_file_skipped_with_reason(tmp_path, name, content, reason):
    skip = only_skip(write(tmp_path / name, content))
    assert reason in skip.reason
    assert skip.path == display_path(tmp_path / name)


@pytest.mark.parametrize("name, shown", [("report.pdf", "'.pdf'"), ("README", "'(none)'"), ("photo.PNG", "'.PNG'")])
def test_unsupported_extension_reported(tmp_path, name, shown):
    skip = only_skip(write(tmp_path / name, "whatever"))
    assert skip.reason == f"unsupported file type {shown}"


def test_extension_is_case_insensitive(tmp_path):
    assert only_article(write(tmp_path / "UPPER.TXT", "T\n" + EN)).id == "UPPER.TXT"


@pytest.mark.parametrize("name", ["big.txt", "big.md", "big.html", "big.json", "big.csv"])
def test_file_over_max_size_skipped(tmp_path, name):
    content = "text\n" + "A line of text that makes the file big.\n" * 600  # ~24 kB
    skip = only_skip(write(tmp_path / name, content), max_file_mb=0.01)
    assert skip.reason.startswith("too large (0.0") and "> 0.01 MB" in skip.reason
    assert "--max-file-mb" in skip.reason


# -------------------------------------------------------------------- symlinks
needs_symlinks = pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symlinks")


@needs_symlinks
def test_symlink_outside_roots_needs_follow(tmp_path):
    outside = write(tmp_path / "outside" / "secret.txt", "Secret\n" + EN)
    src = tmp_path / "src"
    write(src / "a.txt", "A\n" + DE)
    (src / "link.txt").symlink_to(outside)
    (src / "linkdir").symlink_to(outside.parent, target_is_directory=True)
    results = read(src)
    assert list(by_id(results)) == ["a.txt"]
    reasons = {s.path: s.reason for s in skipped(results)}
    assert set(reasons) == {display_path(src / "link.txt"), display_path(src / "linkdir")}
    assert all("outside the sources" in r and "--follow-symlinks" in r for r in reasons.values())

    results = read(src, follow_symlinks=True)
    ids = set(by_id(results))
    assert "a.txt" in ids and ("link.txt" in ids or "linkdir/secret.txt" in ids)
    # the same file through two links is read once
    assert len(articles(results)) == 2 and len(skipped(results)) == 1


@needs_symlinks
def test_symlink_within_roots_is_read_once(tmp_path):
    src = tmp_path / "src"
    write(src / "real" / "a.txt", "A\n" + EN)
    (src / "alias.txt").symlink_to(src / "real" / "a.txt")
    results = read(src)
    assert len(articles(results)) == 1
    [skip] = skipped(results)
    assert "already read" in skip.reason


@needs_symlinks
def test_symlink_loop_terminates_without_duplicates(tmp_path):
    src = tmp_path / "src"
    write(src / "a.txt", "A\n" + EN)
    write(src / "sub" / "b.txt", "B\n" + DE)
    (src / "sub" / "up").symlink_to("..", target_is_directory=True)
    (src / "sub" / "self").symlink_to(src / "sub", target_is_directory=True)
    (src / "me").symlink_to("me")  # a link to itself
    results = read(src, follow_symlinks=True)
    assert sorted(by_id(results)) == ["a.txt", "sub/b.txt"]
    assert len(articles(results)) == 2
    reasons = {s.path: s.reason for s in skipped(results)}
    assert reasons[display_path(src / "me")] == "broken or looping symlink"


@needs_symlinks
def test_broken_symlink_reported(tmp_path):
    src = tmp_path / "src"
    write(src / "a.txt", "A\n" + EN)
    (src / "gone.txt").symlink_to(src / "missing.txt")
    results = read(src)
    assert list(by_id(results)) == ["a.txt"]
    assert skipped(results) == [Skipped(display_path(src / "gone.txt"), "broken or looping symlink")]


def test_hidden_files_and_folders_ignored(tmp_path):
    src = tmp_path / "src"
    write(src / "a.txt", "A\n" + EN)
    write(src / ".hidden.txt", "H\n" + EN)
    write(src / ".git" / "notes.txt", "G\n" + EN)
    write(src / ".DS_Store", PNG)
    assert [(type(r).__name__, getattr(r, "id", "")) for r in read(src)] == [("Article", "a.txt")]


def test_explicit_hidden_file_is_read(tmp_path):
    assert only_article(write(tmp_path / ".notes.txt", "N\n" + EN)).id == ".notes.txt"


# ------------------------------------------------------------------ file names
def test_odd_file_names_read_with_printable_ids(tmp_path):
    src = tmp_path / "src"
    write(src / "a\nb.txt", "Newline\n" + EN)
    write(src / "café ünïcode 漢字.txt", "Unicode\n" + FR)
    write(src / "tab\there\u2028.md", "# Tab\n\n" + DE)
    results = read(src)
    assert not skipped(results)
    ids = set(by_id(results))
    assert ids == {"a\\nb.txt", "café ünïcode 漢字.txt", "tab\\there\\u2028.md"}
    for art in articles(results):
        assert art.path == art.id and art.id.isprintable()
    assert display_path(src / "a\nb.txt") == str(src) + "/a\\nb.txt"
    assert display_path("café ünïcode 漢字.txt") == "café ünïcode 漢字.txt"


@pytest.mark.skipif(os.name == "nt", reason="POSIX byte file names")
def test_undecodable_file_name(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    try:
        with open(os.path.join(os.fsencode(src), b"bad\xff.txt"), "wb") as f:
            f.write(("Bad name\n" + EN).encode())
    except OSError:
        pytest.skip("file system rejects undecodable names")
    write(src / "good.txt", "Good\n" + EN)
    results = read(src)
    assert not skipped(results)
    assert set(by_id(results)) == {"bad\\xff.txt", "good.txt"}
    assert display_path(os.fsdecode(os.path.join(os.fsencode(src), b"bad\xff.txt"))).endswith("bad\\xff.txt")


def test_display_path_escapes_control_characters():
    assert display_path("a\nb\rc\x1b[31m\x7f.txt") == "a\\nb\\rc\\x1b[31m\\x7f.txt"
    assert display_path(b"x\xffy\n".decode("utf-8", "surrogateescape")) == "x\\xffy\\n"
    assert display_path("plain/ok.txt") == "plain/ok.txt"


# ------------------------------------------------------------------ permissions
def _deny(monkeypatch, denied: Path) -> None:
    """Make ``denied`` unreadable: chmod does not stop root, so root's ``open`` is patched."""
    if not IS_ROOT:
        denied.chmod(0)
        return
    real_open = builtins.open

    def fake_open(file, *args, **kwargs):
        if os.fspath(file) == os.fspath(denied):
            raise PermissionError(13, "Permission denied", os.fspath(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(corpus, "open", fake_open, raising=False)


@pytest.mark.parametrize("name", ["locked.txt", "locked.jsonl", "locked.csv"])
def test_permission_denied_reported_others_kept(tmp_path, monkeypatch, name):
    src = tmp_path / "src"
    write(src / "a.txt", "A\n" + EN)
    locked = write(src / name, "text\nSecret text\n" if name.endswith("csv") else '{"text": "Secret"}\n')
    write(src / "z.txt", "Z\n" + DE)
    _deny(monkeypatch, locked)
    try:
        results = read(src)
    finally:
        locked.chmod(0o644)
    assert list(by_id(results)) == ["a.txt", "z.txt"]
    assert skipped(results) == [Skipped(display_path(locked), "permission denied")]


def test_unlistable_folder_reported(tmp_path, monkeypatch):
    src = tmp_path / "src"
    write(src / "a.txt", "A\n" + EN)
    write(src / "private" / "p.txt", "P\n" + EN)
    real_scandir = os.scandir

    def fake_scandir(path):
        if Path(path) == src / "private":
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", fake_scandir)
    results = read(src)
    assert list(by_id(results)) == ["a.txt"]
    assert skipped(results) == [Skipped(display_path(src / "private"), "permission denied")]


# --------------------------------------------------------------------- language
@pytest.mark.parametrize("text, lang", [(FR, "fr"), (EN, "en"), (DE, "de"), (ES, "es")])
def test_language_detected(tmp_path, text, lang):
    assert only_article(write(tmp_path / "x.txt", "Titre\n" + text)).lang == lang


@pytest.mark.parametrize(
    "given, lang", [("FR-ca", "fr"), ("fr_FR", "fr"), (" EN ", "en"), ("français", "fr"), ("klingon", "de")]
)
def test_record_language_normalized(tmp_path, given, lang):
    # a language's name is read as its code; an unusable value ("klingon") falls back to detection (German text)
    art = only_article(write(tmp_path / "x.json", json.dumps({"text": DE, "lang": given})))
    assert art.lang == lang


def test_language_detection_can_be_off(tmp_path):
    assert only_article(write(tmp_path / "x.txt", "T\n" + FR), detect_language=False).lang is None


# ------------------------------------------------------------------------ dates
@pytest.mark.parametrize(
    "value, expected",
    [
        ("2025-02-27", "2025-02-27"),
        ("20250227", "2025-02-27"),
        ("2025-02-27T10:30:00Z", "2025-02-27T10:30:00+00:00"),
        ("2025-02-27T10:30:00+01:00", "2025-02-27T10:30:00+01:00"),
        ("Thu, 27 Feb 2025 10:30:00 +0000", "2025-02-27T10:30:00+00:00"),
        ("27 February 2025", "2025-02-27"),
        ("February 27, 2025", "2025-02-27"),
        ("27/02/2025", "2025-02-27"),
        (1740614400, "2025-02-27"),
        (1740614400.5, "2025-02-27"),
        (1740614400000, "2025-02-27"),
        ("1740614400", "2025-02-27"),
        ("garbage", None),
        ("sometime soon", None),
        ("2025", None),  # no day: not today's day in 2025
        ("February 2025", None),
        ("5", None),
        ("", None),
        (None, None),
        (True, None),
        (42, None),
        ("2025-13-45", None),
    ],
)
def test_normalize_date(value, expected):
    assert normalize_date(value) == expected


def test_unparsable_date_kept_raw_in_meta(tmp_path):
    art = only_article(write(tmp_path / "x.json", json.dumps({"text": EN, "date": "the day after"})))
    assert art.date is None and art.meta == {"date_raw": "the day after"}


# ------------------------------------------------------------------- mixed folder
def test_mixed_folder_every_good_article_read_every_bad_file_reported_once(tmp_path):
    src = tmp_path / "src"
    good = {
        "news/fr.txt": ("Titre\n" + FR, ["news/fr.txt"]),
        "news/en.md": ("# Title\n\n" + EN, ["news/en.md"]),
        "web/page.html": (HTML.format(p1=EN, p2=DE), ["web/page.html"]),
        "data/list.json": (json.dumps([{"text": DE}, {"text": ES}]), ["data/list.json#1", "data/list.json#2"]),
        "data/dump.jsonl": (json.dumps({"text": ES}) + "\nnot json\n", ["data/dump.jsonl#L1"]),
        "data/table.csv": (f'title,text\nT,"{FR}"\n', ["data/table.csv#row2"]),
        "legacy.txt": (("Vieux\n" + FR).encode("cp1252"), ["legacy.txt"]),
        "utf16.txt": (("Wide\n" + EN).encode("utf-16"), ["utf16.txt"]),
    }
    bad = {
        "bin/image.txt": PNG,
        "bin/nul.md": b"# x\n\x00\x00",
        "empty.txt": b"",
        "blank.md": b" \n\n ",
        "broken.json": b'{"text": ',
        "deep.json": b"[" * 100_000,
        "nocol.csv": b"a,b\n1,2\n",
        "script.html": b"<script>x()</script>",
        "doc.pdf": b"%PDF-1.4",
        "big.txt": b"T\n" + b"x " * 20_000,
        "random.txt": random.Random(5).randbytes(3000),
    }
    for name, (content, _) in good.items():
        write(src / name, content)
    for name, content in bad.items():
        write(src / name, content)
    write(src / ".hidden" / "ignored.txt", "I\n" + EN)

    results = read(src, max_file_mb=0.03)
    assert sorted(by_id(results)) == sorted(i for _, ids in good.values() for i in ids)
    assert len(articles(results)) == len(by_id(results))  # no duplicates
    per_path = Counter(s.path for s in skipped(results))
    expected = {display_path(src / n) for n in bad} | {display_path(src / "data/dump.jsonl") + " (line 2)"}
    assert set(per_path) == expected
    assert set(per_path.values()) == {1}
    for s in skipped(results):  # a clear one-line reason each
        assert s.reason and "\n" not in s.reason and "\n" not in s.path
        assert "Traceback" not in s.reason and "Error:" not in s.reason


def test_parser_crash_costs_only_its_file(tmp_path, monkeypatch):
    from indexer import formats

    src = tmp_path / "src"
    write(src / "a.txt", "A\n" + EN)
    write(src / "b.md", "# B\n\n" + DE)

    def boom(text):
        raise ZeroDivisionError("division by zero\nsecond line")

    monkeypatch.setattr(formats, "parse_md", boom)
    results = read(src)
    assert list(by_id(results)) == ["a.txt"]
    [skip] = skipped(results)
    assert skip.reason == "cannot read (ZeroDivisionError: division by zero second line)"


def test_count_files_matches_readable_files(tmp_path):
    src = tmp_path / "src"
    write(src / "a.txt", "A\n" + EN)
    write(src / "b.pdf", "x")
    write(src / "c" / "d.jsonl", "{}\n")
    assert corpus.count_files([src]) == 2
