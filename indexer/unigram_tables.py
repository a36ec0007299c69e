"""Flat arrays for ``unigram.UnigramTokenizer``, derived once from a tokenizer.json and cached.

A tokenizer.json is accepted only in the shape of XLM-RoBERTa's (and of the model
``e5convert`` writes): ``Precompiled`` charsmap (+ ``Replace(" {2,}", " ")``),
``Metaspace("▁", prepend always, split)``, a Unigram model without byte fallback,
special tokens matched on the raw text, and a ``<s> $A </s>`` template. Anything else
raises ``Unsupported`` and the caller keeps ``tokenizers``.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import tempfile
import unicodedata
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

#: Bump when the tables (or how they are derived) change: older cache files are then ignored.
FORMAT_VERSION = 2
_SPACE = "▁"
# Grapheme_Cluster_Break=Prepend (Unicode 16)
_PREPEND = frozenset(
    [*range(0x600, 0x606), 0x6DD, 0x70F, 0x890, 0x891, 0x8E2, 0xD4E, 0x110BD, 0x110CD, 0x111C2, 0x111C3,
     0x1193F, 0x11941, 0x11A3A, *range(0x11A84, 0x11A8A), 0x11D46, 0x11F02, 0x113D1]
)  # fmt: skip


class Unsupported(Exception):
    """The tokenizer.json (or a text) is outside what the emulation reproduces exactly."""


# --------------------------------------------------------- the normaliser
def decode_charsmap(blob: bytes) -> dict[int, str]:
    """The rules of a SentencePiece ``precompiled_charsmap``: code point → replacement.

    The blob is a darts-clone double array followed by NUL-terminated replacements, read
    as spm_precompiled (tokenizers' reader) reads it. Keys of several code points are refused.
    """
    trie_size = int.from_bytes(blob[:4], "little")
    units = np.frombuffer(blob, dtype="<u4", count=trie_size // 4, offset=4).astype(np.int64)
    normalized = blob[4 + trie_size :]

    def offset(u: int) -> int:
        return (u >> 10) << ((u & (1 << 9)) >> 6)

    labels = np.arange(1, 256, dtype=np.int64)
    rules: dict[int, str] = {}
    stack: list[tuple[int, bytes]] = [(offset(int(units[0])), b"")]
    while stack:
        pos, key = stack.pop()
        child = pos ^ labels
        inside = child < len(units)
        found = labels[inside][(units[child[inside]] & ((1 << 31) | 0xFF)) == labels[inside]]
        for c in found.tolist():
            u = int(units[pos ^ c])
            nxt = pos ^ c ^ offset(u)
            path = key + bytes([c])
            if (u >> 8) & 1:  # a key ends here; its value sits in the unit at nxt
                try:
                    chars = path.decode("utf-8")
                except UnicodeDecodeError:
                    raise Unsupported("a charsmap key is not UTF-8") from None
                if len(chars) != 1:
                    raise Unsupported("the charsmap has keys of several characters")
                start = int(units[nxt]) & ((1 << 31) - 1)
                end = normalized.find(b"\0", start)
                rules[ord(chars)] = normalized[start : end if end >= 0 else len(normalized)].decode("utf-8")
            stack.append((nxt, path))
    return rules


def _char_class(cps: set[int]) -> str:
    """A regex character class matching exactly ``cps``."""
    if not cps:
        return "[^\\s\\S]"
    runs: list[list[int]] = []
    for cp in sorted(cps):
        if runs and cp == runs[-1][1] + 1:
            runs[-1][1] = cp
        else:
            runs.append([cp, cp])
    esc = [f"\\U{a:08x}" + (f"-\\U{b:08x}" if b > a else "") for a, b in runs]
    return "[" + "".join(esc) + "]"


def _utf8_len(cp: int) -> int:
    return 1 if cp < 0x80 else 2 if cp < 0x800 else 3 if cp < 0x10000 else 4


def _may_extend(cp: int) -> bool:
    """Whether ``cp`` may continue a grapheme: Extend, SpacingMark, ZWJ, or unknown to Python's Unicode 14."""
    cat = unicodedata.category(chr(cp))
    return cat in ("Mn", "Me", "Mc", "Cf", "Cn") or 0x1F3FB <= cp <= 0x1F3FF or cp in (0xFF9E, 0xFF9F, 0xE33, 0xEB3)


def _quirk_pattern(ruled: set[int]) -> str:
    """A regex for texts where a character with a rule may start a short grapheme of several characters.

    tokenizers applies the rule of such a grapheme's first character to all of it when the
    grapheme has fewer than 6 bytes. The pattern is a superset: after its first character a
    grapheme continues only by UAX #29's GB3-GB13, i.e. CR LF (reproduced, so not matched),
    Hangul and regional indicators (6+ bytes), Extend/SpacingMark/ZWJ characters, or after
    a Prepend first character.
    """
    controls = {c for c in ruled if unicodedata.category(chr(c)) == "Cc"}  # never extended (GB4)
    ext = [cp for cp in range(0x110000) if not 0xD800 <= cp <= 0xDFFF and _may_extend(cp)]
    parts = []
    for n in (1, 2, 3, 4):
        firsts = {c for c in ruled if _utf8_len(c) == n and c not in controls}
        follow = {x for x in ext if _utf8_len(x) < 6 - n}
        if firsts and follow:
            parts.append(_char_class(firsts) + _char_class(follow))
        if firsts & _PREPEND:
            parts.append(_char_class(firsts & _PREPEND) + ".")
    return "|".join(parts) if parts else "[^\\s\\S]"


# ------------------------------------------------------- tokenizer.json
def _pipeline(spec: dict[str, Any]) -> dict[str, Any]:
    """Check ``spec`` has the one shape reproduced here; its settings."""
    model = spec.get("model") or {}
    if model.get("type") != "Unigram" or model.get("byte_fallback") or not isinstance(model.get("unk_id"), int):
        raise Unsupported("the model is not a Unigram with an unknown token and no byte fallback")
    norm = spec.get("normalizer") or {}
    steps = norm.get("normalizers", []) if norm.get("type") == "Sequence" else [norm]
    if not steps or steps[0].get("type") != "Precompiled" or not steps[0].get("precompiled_charsmap"):
        raise Unsupported("the normaliser is not SentencePiece's precompiled charsmap")
    collapse = steps[1:] == [{"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "}]
    if len(steps) > 1 and not collapse:
        raise Unsupported("the normaliser has steps besides the charsmap and the space collapse")
    pre = spec.get("pre_tokenizer") or {}
    scheme = pre.get("prepend_scheme", "always" if pre.get("add_prefix_space", True) else "never")
    if (pre.get("type"), pre.get("replacement"), scheme, pre.get("split", True)) != (
        "Metaspace",
        _SPACE,
        "always",
        True,
    ):
        raise Unsupported("the pre-tokenizer is not Metaspace('▁', prepend always, split)")
    specials = []
    for tok in spec.get("added_tokens") or []:
        if tok.get("normalized") or tok.get("single_word") or not tok.get("content"):
            raise Unsupported("an added token is normalised or single-word")
        specials.append([tok["content"], int(tok["id"]), bool(tok.get("lstrip")), bool(tok.get("rstrip"))])
    bos = eos = -1
    post = spec.get("post_processor")
    if post is not None:
        single = post.get("single") if post.get("type") == "TemplateProcessing" else None
        if not single or [next(iter(item)) for item in single] != ["SpecialToken", "Sequence", "SpecialToken"]:
            raise Unsupported("the post-processor is not '<s> $A </s>'")
        ids = [post["special_tokens"][single[i]["SpecialToken"]["id"]]["ids"] for i in (0, 2)]
        if any(len(x) != 1 for x in ids):
            raise Unsupported("a template special token has several ids")
        bos, eos = int(ids[0][0]), int(ids[1][0])
    return {"charsmap": steps[0]["precompiled_charsmap"], "collapse": collapse, "specials": specials,
            "bos": bos, "eos": eos, "unk_id": int(model["unk_id"])}  # fmt: skip


def build_tables(tokenizer_json: Path) -> dict[str, np.ndarray]:
    """The arrays ``UnigramTokenizer`` runs on, or ``Unsupported`` saying why not."""
    spec = json.loads(Path(tokenizer_json).read_text(encoding="utf-8"))
    p = _pipeline(spec)
    rules = decode_charsmap(base64.b64decode(p["charsmap"]))
    vocab = spec["model"]["vocab"]
    del spec
    pieces = [str(v[0]) for v in vocab]
    if len(set(pieces)) != len(pieces) or "" in pieces or not 0 <= p["unk_id"] < len(pieces):
        raise Unsupported("duplicate or empty pieces, or an unknown-token id outside the vocabulary")
    codes = np.frombuffer("".join(pieces).encode("utf-32-le"), dtype=np.uint32)
    starts = np.cumsum([0, *map(len, pieces)]).astype(np.int32)
    ruled = set(rules)
    reshaping = {k for k, v in rules.items() if len(v) != 1} | ({0xD} & ruled)  # CR: the CR LF grapheme
    order = sorted(rules)
    meta = {
        "format": FORMAT_VERSION,
        "unk_id": p["unk_id"],
        "bos": p["bos"],
        "eos": p["eos"],
        "collapse": p["collapse"],
        "specials": p["specials"],
        "rule_class": _char_class(ruled),
        "reshaping_class": _char_class(reshaping),
        "quirk": _quirk_pattern(ruled),
    }
    lengths = np.diff(starts)
    if lengths.max() >= 1 << 16:
        raise Unsupported("a piece of 65,536 characters or more")
    first = codes[starts[:-1]]
    bmp = first < 0x10000
    reach_by_char = np.zeros(0x10000, dtype=np.uint16)  # longest piece starting with each BMP char
    np.maximum.at(reach_by_char, first[bmp], lengths[bmp].astype(np.uint16))
    tables: dict[str, np.ndarray] = {
        "first_reach": reach_by_char,
        "pieces": np.frombuffer("".join(pieces).encode("utf-8"), dtype=np.uint8),
        "piece_starts": starts,
        "scores": np.array([float(v[1]) for v in vocab], dtype=np.float64),
        "rule_keys": np.array(order, dtype=np.int32),
        "rules": np.frombuffer("".join(rules[k] for k in order).encode("utf-8"), dtype=np.uint8),
        "rule_chars": np.cumsum([0, *(len(rules[k]) for k in order)]).astype(np.int32),
        "meta": np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8),
    }
    tables["whole"] = _whole_words(tables, meta, pieces)
    return tables


def _whole_words(tables: dict[str, np.ndarray], meta: dict[str, Any], pieces: list[str]) -> np.ndarray:
    """For each piece: 1 if, read as a word, its best segmentation is itself (then no search is needed)."""
    from .unigram import _Vocab

    vocab = _Vocab(tables, meta)
    words = [p for p in pieces if p.startswith(_SPACE)]  # a word always starts with "▁"
    found = vocab.segment(set(words))
    index = {p: i for i, p in enumerate(pieces)}
    whole = np.zeros(len(pieces), dtype=np.uint8)
    for w in words:
        ids, _ = found[w]
        whole[index[w]] = ids == (index[w],)
    return whole


def cached_tables(tokenizer_json: Path, cache: Path) -> dict[str, np.ndarray] | None:
    """The tables of ``tokenizer_json`` from ``cache``, derived and written once per file content.

    ``None`` (remembered too) when its pipeline is not one reproduced here. A damaged cache
    file is derived again; a cache that cannot be written only costs the derivation each time.
    """
    with open(tokenizer_json, "rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()[:32]
    base = cache / f"unigram-{digest}-v{FORMAT_VERSION}"
    npz, refused = base.with_name(base.name + ".npz"), base.with_name(base.name + ".unsupported")
    if refused.exists():
        return None
    if npz.exists():
        try:
            with np.load(npz, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile):
            pass  # damaged (a disk filled up, say): derived again below
    try:
        tables = build_tables(tokenizer_json)
    except Unsupported as exc:
        _write_quietly(refused, f"{tokenizer_json}: {exc}\n".encode())
        return None
    buf = io.BytesIO()
    np.savez(buf, **tables)  # type: ignore[arg-type]
    if _write_quietly(npz, buf.getvalue()):
        for old in cache.glob(f"unigram-{digest}-v*.*"):  # tables of older format versions
            if not old.name.startswith(base.name + "."):
                old.unlink(missing_ok=True)
    return tables


def _write_quietly(path: Path, data: bytes) -> bool:
    """Write ``path`` atomically (readers see all of it or nothing); False if it cannot be written."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except OSError:
        return False
    return True
