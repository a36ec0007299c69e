"""A generated corpus of hostile files mixed with good articles, and what reading it must give.

Every file is planned with its expected outcome:
  good     its articles (by id) must all be indexed, nothing reported (``tricky`` ones are hostile
           too: odd names, UTF-16 without BOM, escaped NULs, a 2 MB word)
  bad      not indexed; reported exactly once, with a reason containing the given words
  either   indexed or reported once (legacy bytes that may decode as cp1252, say), never both, never twice
  records  a multi-record file: some records may be indexed, each bad one reported once
  denied   unreadable: reported once as "permission denied" (simulated: these tests run as root)
"""

from __future__ import annotations

import codecs
import json
import os
import random
from dataclasses import dataclass, field
from pathlib import Path

from indexer.corpus import display_path

EN = [
    "The city council approved a new budget for public schools on Tuesday evening.",
    "Heavy rain flooded several streets near the harbour and closed the coastal road.",
    "Researchers at the university published a study on drought resistant wheat.",
    "The railway union announced a strike over wages and working hours next month.",
    "A new museum of modern art opened its doors to the public this weekend.",
    "Energy prices fell slightly as the winter turned out milder than expected.",
]
FR = [
    "Le conseil municipal a voté un nouveau budget pour les écoles publiques.",
    "De fortes pluies ont inondé plusieurs rues près du port pendant la nuit.",
]
BIG_MB = 50


@dataclass
class Plan:
    root: Path
    good: dict[Path, list[str]] = field(default_factory=dict)  # file → article ids
    bad: dict[Path, str] = field(default_factory=dict)  # file or folder → words of its reason
    either: set[Path] = field(default_factory=set)
    records: dict[Path, list[str]] = field(default_factory=dict)  # file → ids of its good records
    denied: set[Path] = field(default_factory=set)
    tricky: set[Path] = field(default_factory=set)  # good files that are hostile to read

    @property
    def hostile(self) -> int:
        return len(self.bad) + len(self.either) + len(self.records) + len(self.denied) + len(self.tricky)

    def article_ids(self) -> set[str]:
        return {i for ids in (*self.good.values(), *self.records.values()) for i in ids}

    def rel_id(self, path: Path) -> str:
        return display_path(path.relative_to(self.root).as_posix())


def _text(rng: random.Random, n: int = 3) -> str:
    return " ".join(rng.choice(EN + FR) for _ in range(n))


def make(root: Path, seed: int = 5) -> Plan:
    """Write the corpus under ``root`` (created) and return what must come of each file."""
    rng = random.Random(seed)
    plan = Plan(root)
    root.mkdir(parents=True)

    def put(rel: str | bytes, content: bytes | str) -> Path:
        path = Path(os.fsdecode(os.path.join(os.fsencode(root), os.fsencode(rel))))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
        return path

    def good(rel: str | bytes, content: bytes | str, ids: list[str] | None = None, *, tricky: bool = False) -> None:
        path = put(rel, content)
        plan.good[path] = ids if ids is not None else [plan.rel_id(path)]
        if tricky:
            plan.tricky.add(path)

    def bad(rel: str | bytes, content: bytes | str, reason: str) -> None:
        plan.bad[put(rel, content)] = reason

    # ---- good articles in every format
    for i in range(20):
        good(f"good/txt/story{i:02d}.txt", f"Story {i}\n{_text(rng, 4)}\n")
    for i in range(10):
        good(f"good/md/note{i:02d}.md", f"---\ndate: 2024-0{1 + i % 9}-1{i % 10}\n---\n# Note {i}\n\n{_text(rng)}\n")
    for i in range(10):
        body = "".join(f"<p>{_text(rng, 2)}</p>" for _ in range(3))
        good(
            f"good/html/page{i:02d}.html",
            f"<html><head><title>Page {i}</title></head><body><article><h1>Page {i}</h1>{body}</article></body></html>",
        )
    for i in range(2):
        rows = [{"id": f"j{i}-{k}", "title": f"J {k}", "text": _text(rng)} for k in range(5)]
        good(f"good/json/list{i}.json", json.dumps(rows), [r["id"] for r in rows])
    rows = [{"id": f"l{k}", "text": _text(rng), "lang": "en"} for k in range(10)]
    good("good/dump.jsonl", "\n".join(json.dumps(r) for r in rows), [r["id"] for r in rows])
    lines = ["id,title,text"] + [f'c{k},"Row {k}","{_text(rng)}"' for k in range(10)]
    good("good/table.csv", "\n".join(lines) + "\n", [f"c{k}" for k in range(10)])
    escaped_nul = json.dumps({"id": "esc-nul", "text": "Before\u0000after. " + EN[0]})
    good("good/escaped-nul.json", escaped_nul, ["esc-nul"], tricky=True)
    good("good/cr-only.txt", "Old Mac file\r" + EN[1] + "\r" + EN[2] + "\r", tricky=True)
    good("good/one-long-word.txt", "Long word\n" + "x" * 2_000_000 + "\n", tricky=True)
    for i, enc in enumerate(["utf-16-le", "utf-16-be"] * 3):
        ext = [".txt", ".md", ".csv"][i // 2]
        body = f"Wide {i}\n{_text(rng)}\n" if ext != ".csv" else f"id,text\nw{i},{EN[i % 6]}\n"
        if ext == ".csv":
            good(f"good/utf16/nobom{i}{ext}", body.encode(enc), [f"w{i}"], tricky=True)
        else:
            good(f"good/utf16/nobom{i}{ext}", body.encode(enc), tricky=True)
    good("good/utf16/nobom.jsonl", json.dumps({"id": "u16", "text": EN[3]}).encode("utf-16-le"), ["u16"], tricky=True)

    # ---- binary, under text extensions
    exts = [".txt", ".md", ".html", ".json", ".jsonl", ".csv", ".htm", ".markdown"]
    for i in range(48):
        data = bytearray(rng.randbytes(rng.randint(200, 6000)))
        data[rng.randrange(min(len(data), 4000))] = 0
        bad(f"bad/binary/random{i:02d}{exts[i % len(exts)]}", bytes(data), "")
    magic = {
        "png": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
        "pdf": b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\x00",
        "zip": b"PK\x03\x04\x14\x00\x00\x00",
        "gzip": b"\x1f\x8b\x08\x00\x00\x00\x00\x00",
        "elf": b"\x7fELF\x02\x01\x01\x00",
        "jpeg": b"\xff\xd8\xff\xe0\x00\x10JFIF\x00",
    }
    for name, head in magic.items():
        for ext in (".txt", ".json"):
            bad(f"bad/magic/{name}{ext}", head + rng.randbytes(3000), "binary")

    # ---- encodings
    for i in range(10):
        raw = bytearray(f"Broken bytes {i}\n{_text(rng)}\n".encode())
        for _ in range(rng.randint(1, 6)):
            raw.insert(rng.randrange(len(raw)), rng.choice([0x80, 0xC3, 0xE2, 0xFF, 0xFE, 0xED, 0xA0]))
        plan.either.add(put(f"bad/utf8/invalid{i}{['.txt', '.md'][i % 2]}", bytes(raw)))
    for i, (text, enc) in enumerate([("中文新闻报道。今天天气很好。", "utf-16-le"), ("Новости дня.", "utf-16-be")]):
        plan.either.add(put(f"bad/utf16/nonlatin{i}.txt", text.encode(enc)))
    plan.either.add(put("bad/utf8/bom-then-latin1.txt", codecs.BOM_UTF8 + "Café crème\nÉté brûlant.".encode("latin-1")))
    bad("bad/utf16/truncated-bom.jsonl", codecs.BOM_UTF16_LE + b'{\x00"\x00t\x00' + b"\x00\xd8" * 3, "")

    # ---- NUL bytes in otherwise good text
    for ext in exts[:6]:
        for k in range(2):
            body = f"Title\n{EN[k]}".encode()
            at = rng.randrange(5, 20)
            bad(f"bad/nul/nul{k}{ext}", body[:at] + b"\x00" * rng.randint(1, 50) + body[at:], "binary")

    # ---- empty, whitespace, byte-order marks alone
    for ext in exts:
        bad(f"bad/empty/empty{ext}", b"", "empty")
    spaces = [" ", "\t\t", "\n\n\n", "\u00a0\u00a0", "\u3000", " \n\t \r\n", "\u2028\u2029", "\u2003\u2009"]
    for i, ws in enumerate(spaces):
        bad(f"bad/blank/blank{i}{exts[i % 6]}", ws * rng.randint(1, 500), "")
    bad("bad/blank/bom-only.txt", codecs.BOM_UTF8, "")
    bad("bad/blank/bom16-only.md", codecs.BOM_UTF16_LE, "")
    plan.either.add(put("bad/blank/zero-width.txt", "\u200b\u200c\u200d\ufeff" * 10))

    # ---- huge single lines: skipped by size, read in bounded memory
    line = b"y" * (BIG_MB * 2**20)
    bad("bad/huge/one-line.txt", line, "too large")
    bad("bad/huge/one-line.jsonl", b'{"text": "' + line + b'"}\n', "longer than")

    # ---- JSON: nested too deep, truncated, wrong shapes
    bad("bad/json/deep-list.json", "[" * 100_000, "")
    bad("bad/json/deep-object.json", '{"a":' * 50_000, "")
    bad("bad/json/deep-balanced.json", "[" * 20_000 + "]" * 20_000, "nested too deeply")
    bad("bad/json/deep-text.json", '{"text": ' + "[" * 5000 + "]" * 5000 + "}", "")
    deep_lines = "[" * 50_000 + "\n" + json.dumps({"id": "ok1", "text": EN[0]})
    plan.records[put("bad/json/deep-lines.jsonl", deep_lines)] = ["ok1"]
    whole = json.dumps([{"id": f"t{k}", "text": _text(rng)} for k in range(3)])
    for i in range(10):
        cut = rng.randrange(1, len(whole) - 1)
        bad(f"bad/json/truncated{i}.json", whole[:cut], "")
    shapes = {
        "number-text": {"text": 42},
        "null-text": {"text": None},
        "list-text": {"text": ["a", "b"]},
        "object-text": {"text": {"nested": "x"}},
        "empty-text": {"text": ""},
        "no-text": {"title": "Only a title"},
        "string": "just a string",
        "number": 3.14,
    }
    for name, value in shapes.items():
        bad(f"bad/json/{name}.json", json.dumps(value), "")
    plan.records[put("bad/json/list-of-numbers.json", "[1, 2, 3]")] = []
    plan.records[put("bad/json/mixed-list.json", json.dumps([1, {"id": "mx", "text": EN[2]}, None]))] = ["mx"]

    # ---- CSV with broken quoting or shape
    csvs = {
        "unclosed-quote": 'id,text\nq1,"Good row one. ' + EN[0] + '"\nq2,"never closed\nq3,' + EN[1] + "\n",
        "stray-quote": "id,text\nq4," + EN[2] + '\nq5,a "quoted" word inside\nq6,"ok" trailing\n',
        "quote-in-header": '"id,text\nq7,' + EN[3] + "\n",
        "too-many-fields": "id,text\nq8," + EN[4] + ",extra,more\nq9," + EN[5] + "\n",
        "semicolon-broken": 'id;text\nq10;"' + EN[0] + '"x"\nq11;' + EN[1] + "\n",
        "nul-in-cell": "id,text\nq12," + EN[2] + "\x01\x02\nq13," + EN[3] + "\n",
        "no-text-column": "a,b\n1,2\n",
        "header-only": "id,text\n",
    }
    for name, content in csvs.items():
        plan.records[put(f"bad/csv/{name}.csv", content)] = []

    # ---- HTML without an article
    htmls = [
        "<script>alert(1)</script>",
        "<html><head><script src=x></script><style>p{}</style></head><body><script>var a=1;</script></body></html>",
        "<html><body><!-- " + EN[0] + " --></body></html>",
        "<html><body><noscript></noscript><template><p>hidden</p></template></body></html>",
        "<html><body>" + "<div>" * 5000 + "</div>" * 5000 + "</body></html>",
        "<style>" + "a{color:red}" * 1000 + "</style>",
        "<html><body><nav><a href=/>Home</a></nav><footer>(c)</footer></body></html>",
        "<svg><script>alert(1)</script></svg>",
        "<iframe src='javascript:alert(1)'></iframe>",
        "<html><body><img src=x onerror=alert(1)></body></html>",
    ]
    for i, h in enumerate(htmls):
        if i in (0, 1, 5, 7):  # nothing but scripts and styles
            bad(f"bad/html/scripts-only{i}.html", h, "no article text")
        else:
            plan.either.add(put(f"bad/html/no-article{i}.html", h))
    plan.either.add(
        put(
            "bad/html/entity-bomb.html",
            '<!DOCTYPE html [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
            "<html><body><p>&b;&b;&b;" + "&amp;" * 50_000 + "</p></body></html>",
        )
    )

    # ---- control characters
    for i in range(5):
        noise = "".join(chr(rng.randint(1, 8)) for _ in range(400))
        bad(f"bad/control/ctl{i}.txt", f"Title\n{noise}{EN[i]}", "control characters")

    # ---- links: loops, dangling, out of the tree
    links = root / "bad" / "links"
    links.mkdir(parents=True)
    (links / "loopdir").mkdir()
    os.symlink(".", links / "loopdir" / "self")
    plan.bad[links / "loopdir" / "self"] = "already read"
    os.symlink("b.txt", links / "a.txt")
    os.symlink("a.txt", links / "b.txt")
    os.symlink("self.txt", links / "self.txt")
    os.symlink("nowhere.txt", links / "dangling.txt")
    for name in ("a.txt", "b.txt", "self.txt", "dangling.txt"):
        plan.bad[links / name] = "symlink"
    os.symlink("/etc/passwd", links / "passwd.txt")
    os.symlink("/dev/zero", links / "zero.txt")
    os.symlink("../../..", links / "up")
    for name in ("passwd.txt", "zero.txt", "up"):
        plan.bad[links / name] = "outside the sources"
    os.mkfifo(links / "pipe.txt")
    plan.bad[links / "pipe.txt"] = "not a regular file"

    # ---- unreadable files and folder
    for i, ext in enumerate([".txt", ".md", ".json", ".jsonl", ".csv", ".html"]):
        p = put(f"bad/locked/locked{i}{ext}", f"Secret {i}\n{EN[i]}")
        plan.denied.add(p)
    locked_dir = root / "bad" / "locked" / "private"
    put("bad/locked/private/inside.txt", "Inside\n" + EN[0])
    plan.denied.add(locked_dir)

    # ---- unsupported files
    for name in ("report.pdf", "letter.docx", "tool.exe", "README", "notes.txt~", "archive.tar.gz"):
        bad(f"bad/unsupported/{name}", b"%PDF-1.4 not really" if name.endswith("pdf") else b"data", "unsupported")

    # ---- duplicate ids: the second file's article is reported
    good("dup/first.json", json.dumps({"id": "same-id", "text": EN[4]}), ["same-id"])
    bad("dup/second.json", json.dumps({"id": "same-id", "text": EN[5]}), "duplicate article id")

    # ---- odd file names, good content
    odd: list[str | bytes] = [
        "line\nbreak.txt",
        "tab\there.txt",
        "carriage\rreturn.txt",
        "esc\x1b[31mred.txt",
        "rtl\u202eoverride\u202c.txt",
        "bidi\u200fmark.md",
        "emoji 📰🔥.txt",
        "combining e\u0301.txt",
        "nfd-cafe\u0301.md",
        "漢字のファイル名.txt",
        "x" * 200 + ".txt",
        "-rf --help.txt",
        "   .txt",
        "colon: here.txt",
        "percent %s %n %x.txt",
        "back\\slash.txt",
        b"bytes-\xff\xfe-name.txt",
        "quote'\"`$(echo).txt",
    ]
    for i, name in enumerate(odd):
        stem = name if isinstance(name, bytes) else name.encode()
        good(b"odd/" + stem, f"Odd name {i}\n{EN[i % 6]}\n", tricky=True)
    return plan


def deny_file(plan: Plan, target: Path) -> Path:
    """The denied paths, NUL-separated, for ``tests/reliability_cli.py``."""
    target.write_bytes(b"\0".join(os.fsencode(os.path.abspath(p)) for p in plan.denied))
    return target
