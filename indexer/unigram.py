"""A compact SentencePiece-style Unigram tokenizer that reproduces HF ``tokenizers`` exactly.

``tokenizers`` keeps a Unigram vocabulary in a byte trie of hash maps: for the 250k
pieces of multilingual-e5 that is ~280 MB of a search process's memory. This module runs
the pipeline such a tokenizer.json describes (special tokens split off the raw text, the
``Precompiled`` normaliser, i.e. SentencePiece's charsmap, ``Replace(" {2,}", " ")``,
``Metaspace`` and the Unigram Viterbi search) on ~16 MB of flat arrays, step for step as
tokenizers 0.22 does, quirks and character offsets included (see ``_Normalizer``).
SentencePiece's own C++ encoder was measured too and refused: ~55 MB, and it scores paths
in float32 where tokenizers uses float64, so ties between segmentations of equal score
(e.g. "cess|ive" / "ces|sive") come out differently.

Only a tokenizer.json of exactly that shape is taken (see ``unigram_tables``); any other
model keeps ``tokenizers``. A text the emulation cannot prove identical (a character with
a normalisation rule starting a short multi-character grapheme, e.g. a ligature followed by
a combining accent) is handed to ``tokenizers`` itself, loaded only then.
``INDEXER_TOKENIZER=tokenizers`` turns the compact tokenizer off.
"""

from __future__ import annotations

import json
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .paths import cache_dir
from .unigram_tables import FORMAT_VERSION, Unsupported, cached_tables

_CACHE_WORDS = 10_000  # words remembered (tokenizers' Unigram cache holds as many)
_SPACE = "▁"
_SPACE_RUN = re.compile(" {2,}")
_SURROGATE = re.compile("[\ud800-\udfff]")
# Rust's char::is_whitespace (lstrip/rstrip of added tokens), not Python's str.isspace
_RUST_WS = frozenset(
    [*range(0x9, 0xE), 0x20, 0x85, 0xA0, 0x1680, *range(0x2000, 0x200B), 0x2028, 0x2029, 0x202F, 0x205F, 0x3000]
)

Pieces = tuple[tuple[int, ...], tuple[int, ...]]  # a word's piece ids and where each piece ends


@dataclass(frozen=True, slots=True)
class Encoding:
    """Token ids and character offsets, as ``tokenizers.Encoding`` exposes them."""

    ids: list[int]
    offsets: list[tuple[int, int]]


def compact_tokenizer(tokenizer_json: Path, cache: Path | None = None) -> UnigramTokenizer | None:
    """The compact tokenizer for ``tokenizer_json``, or ``None`` when its pipeline is not one reproduced here.

    Its tables are derived once per file content and kept in ``cache`` (default: the model
    cache's ``tokenizers/`` folder).
    """
    if os.environ.get("INDEXER_TOKENIZER") == "tokenizers" or not Path(tokenizer_json).is_file():
        return None
    try:
        tables = cached_tables(Path(tokenizer_json), cache or cache_dir() / "tokenizers")
        return UnigramTokenizer(tables, Path(tokenizer_json)) if tables is not None else None
    except (Unsupported, OSError, ValueError, KeyError, TypeError, IndexError):
        return None  # unreadable, or a shape not foreseen: tokenizers reads it as before


class UnigramTokenizer:
    """``tokenizers.Tokenizer.encode_batch`` for one SentencePiece-style tokenizer.json."""

    def __init__(self, tables: dict[str, np.ndarray], source: Path):
        meta = json.loads(bytes(tables["meta"]).decode())
        if meta.get("format") != FORMAT_VERSION:
            raise Unsupported("tables of another format version")
        self.source = source
        self.max_length: int | None = None
        self._norm = _Normalizer(tables, meta)
        self._vocab = _Vocab(tables, meta)
        self._bos, self._eos = int(meta["bos"]), int(meta["eos"])
        self._reference: list[Any] = []  # tokenizers itself, loaded for a refused text
        self._lock = threading.Lock()

    def truncating(self, max_length: int) -> UnigramTokenizer:
        """The same tokenizer, sharing its tables, cutting texts as ``enable_truncation(max_length)`` does."""
        view = object.__new__(UnigramTokenizer)
        view.__dict__.update(self.__dict__)
        view.max_length = max_length
        return view

    def encode(self, text: str, add_special_tokens: bool = True) -> Encoding:
        """Ids and character offsets of one text."""
        return self.encode_batch([text], add_special_tokens=add_special_tokens)[0]

    def encode_batch(self, texts: list[str], add_special_tokens: bool = True) -> list[Encoding]:
        """Ids and character offsets of each text; the template's special tokens get (0, 0)."""
        parts: list[list[_Part] | None] = []
        for text in texts:
            if not isinstance(text, str) or _SURROGATE.search(text):
                raise TypeError("TextInputSequence must be str")  # as tokenizers refuses them
            try:
                parts.append(self._norm.parts(text))
            except Unsupported:
                parts.append(None)
        pieces = self._vocab.segment({w for p in parts if p for part in p for w in part.words or ()})
        out = []
        for text, p in zip(texts, parts):
            if p is None:
                enc = self._reference_tokenizer().encode(text, add_special_tokens=False)
                ids, offsets = list(enc.ids), list(enc.offsets)
            else:
                ids, offsets = _tokens(p, pieces)
            out.append(self._finish(ids, offsets, add_special_tokens))
        return out

    def _finish(self, ids: list[int], offsets: list[tuple[int, int]], add_special: bool) -> Encoding:
        add = add_special and self._bos >= 0
        if self.max_length is not None:
            keep = max(self.max_length - (2 if add else 0), 0)
            ids, offsets = ids[:keep], offsets[:keep]
        if add:
            ids = [self._bos, *ids, self._eos]
            offsets = [(0, 0), *offsets, (0, 0)]
        return Encoding(ids, offsets)

    def _reference_tokenizer(self) -> Any:
        with self._lock:
            if not self._reference:
                from tokenizers import Tokenizer

                tok = Tokenizer.from_file(str(self.source))
                tok.no_truncation()
                tok.no_padding()
                self._reference.append(tok)
            return self._reference[0]


@dataclass
class _Part:
    """A stretch of text between special tokens, normalised and cut into words (or one special)."""

    base: int  # where it starts in the text
    special: int = -1  # the id of a special token, whose offsets are (base, end)
    end: int = 0
    words: list[str] | None = None  # each starts with "▁"
    align: list[int] | None = None  # normalised char → original char (None: identity after the "▁")
    shift: int = 0  # 1 if Metaspace prepended "▁" (identity alignment then lags by one)


class _Normalizer:
    """Special-token split, ``Precompiled`` charsmap, space collapse and ``Metaspace``, as tokenizers.

    Alignment follows tokenizers' ``NormalizedString``: every normalised character aligns
    with one original character, so a token's offsets run from its first character's
    alignment to its last one's, plus one.
    """

    def __init__(self, t: dict[str, np.ndarray], meta: dict[str, Any]):
        keys = t["rule_keys"].tolist()
        text = bytes(t["rules"]).decode("utf-8")
        at = t["rule_chars"].tolist()
        self.rules = {k: text[at[i] : at[i + 1]] for i, k in enumerate(keys)}
        self.any_rule = re.compile(meta["rule_class"])
        self.reshaping = re.compile(meta["reshaping_class"])  # rules that change the length (+ CR)
        self.quirk = re.compile(meta["quirk"], re.DOTALL)
        self.collapse = bool(meta["collapse"])
        self.specials = {s[0]: (int(s[1]), bool(s[2]), bool(s[3])) for s in meta["specials"]}
        alts = sorted(self.specials, key=len, reverse=True)  # leftmost-longest, as aho-corasick
        self.special_re = re.compile("|".join(map(re.escape, alts))) if alts else None

    def parts(self, text: str) -> list[_Part]:
        """The text cut at its special tokens, each stretch between them normalised into words."""
        out: list[_Part] = []
        done = 0
        for m in self.special_re.finditer(text) if self.special_re is not None else ():
            tid, lstrip, rstrip = self.specials[m.group()]
            start, stop = m.start(), m.end()
            if lstrip:
                while start > done and ord(text[start - 1]) in _RUST_WS:
                    start -= 1
            if rstrip:
                while stop < len(text) and ord(text[stop]) in _RUST_WS:
                    stop += 1
            if done < start:
                out.append(self._stretch(text[done:start], done))
            out.append(_Part(start, special=tid, end=stop))
            done = stop
        if done < len(text):
            out.append(self._stretch(text[done:], done))
        return out

    def _stretch(self, seg: str, base: int) -> _Part:
        norm, align = self._precompiled(seg)
        if self.collapse and "  " in norm:
            # Replace(" {2,}", " ") leaves one space, aligned like the run's last one
            if align is None:
                align = list(range(len(norm)))
            for m in reversed(list(_SPACE_RUN.finditer(norm))):
                del align[m.start() : m.end() - 1]
            norm = _SPACE_RUN.sub(" ", norm)
        if not norm:
            return _Part(base, words=[])
        norm = norm.replace(" ", _SPACE)
        shift = 0
        if not norm.startswith(_SPACE):
            # Metaspace prepends "▁", aligned like the first character
            norm = _SPACE + norm
            shift = 1
            if align is not None:
                align.insert(0, align[0])
        words = [_SPACE + w for w in norm[1:].split(_SPACE)]
        return _Part(base, words=words, align=align, shift=shift if align is None else 0)

    def _precompiled(self, seg: str) -> tuple[str, list[int] | None]:
        """The charsmap applied as tokenizers' ``Precompiled`` applies it.

        Returns the text, and for each character the index of the original character it
        aligns with (``None``: one to one). tokenizers walks graphemes: one shorter than 6
        bytes whose first character has a rule is replaced whole by that rule (CR LF → " ";
        other such texts are refused), otherwise character by character. Each output character
        carries a change: 0 replaces an original character, +1 is inserted, -n also swallows
        n more. A deleted character lowers the change of the output before it, or is lost
        when nothing precedes it, which shifts the alignment of the rest: tokenizers'
        behaviour, kept as is.
        """
        if not self.any_rule.search(seg):
            return seg, None
        if self.quirk.search(seg):
            raise Unsupported("a character with a rule starts a short multi-character grapheme")
        if not self.reshaping.search(seg):
            return seg.translate(self.rules), None
        chars: list[str] = []
        changes: list[int] = []
        i, n = 0, len(seg)
        while i < n:
            c = seg[i]
            rule = self.rules.get(ord(c))
            if rule is None:
                chars.append(c)
                changes.append(0)
                i += 1
                continue
            old = 2 if c == "\r" and seg.startswith("\n", i + 1) else 1  # CR LF is one grapheme
            chars.extend(rule)
            changes.extend([0] * len(rule))
            diff = len(rule) - old
            if diff > 0:
                changes[len(changes) - diff :] = [1] * diff
            elif diff < 0 and changes:
                changes[-1] += diff
            i += old
        align: list[int] = []
        pos = 0
        for ch in changes:
            if ch > 0:
                align.append(pos - 1)  # inserted: aligned like the character before
            else:
                align.append(pos)
                pos += 1 - ch
        return "".join(chars), align


class _Vocab:
    """The Unigram model: the pieces in a hash table, and tokenizers' Viterbi search over them.

    The table is keyed by Python's own str hash, so each process builds it anew from the
    pieces (~0.1 s): a candidate substring then costs one slice, one hash and a probe, with
    no per-call overhead, which keeps short texts (queries) cheap. (A numpy version, every
    candidate of a batch hashed at once, was faster on large batches but ~60 numpy calls
    per batch made a query ~1.5x slower.)
    """

    def __init__(self, t: dict[str, np.ndarray], meta: dict[str, Any]):
        self.text = bytes(t["pieces"]).decode("utf-8")  # every piece, concatenated
        # memoryviews: indexing them gives Python ints and floats, fast, without a copy
        starts = np.ascontiguousarray(t["piece_starts"], dtype=np.int32)
        self.starts = starts.data
        self._scores = np.ascontiguousarray(t["scores"], dtype=np.float64)
        self.scores = self._scores.data
        self.unk_id = int(meta["unk_id"])
        self.unk_score = float(self._scores.min()) - 10.0  # tokenizers' K_UNK_PENALTY
        self.maxlen = int(np.diff(starts).max())
        self._reach = t["first_reach"].astype(np.uint16)
        self._reach[0xFFFF] = self.maxlen  # stands for every character beyond the BMP
        self.first_reach = self._reach.data
        # pieces that, read as a whole word, are their own best segmentation (derived once)
        self.whole = bytes(t["whole"]) if "whole" in t else bytes(len(starts) - 1)
        self._keys, self._ids, self.mask = self._table()
        self.keys, self.ids = self._keys.data, self._ids.data
        self.cache: dict[str, Pieces] = {}

    def _table(self) -> tuple[np.ndarray, np.ndarray, int]:
        """Linear probing on Python's str hash, built as one running maximum.

        Keys sorted by home slot each take the first free slot from their home on; no key
        wraps around (the table has a tail), and -1, which no str hash is, marks a free slot.
        """
        text, bounds = self.text, self.starts
        n = len(bounds) - 1
        hashes = np.fromiter((hash(text[bounds[k] : bounds[k + 1]]) for k in range(n)), dtype=np.int64, count=n)
        size = 1 << max(int(2 * n).bit_length(), 4)
        order = np.argsort(hashes & (size - 1), kind="stable")
        hashes = hashes[order]
        slot = hashes & (size - 1)
        rank = np.arange(n)
        slot -= rank
        np.maximum.accumulate(slot, out=slot)
        slot += rank
        del rank
        keys = np.full(max(size, int(slot[-1]) + 2), -1, dtype=np.int64)  # the last slot stays free
        ids = np.full(len(keys), -1, dtype=np.int32)
        keys[slot] = hashes
        ids[slot] = order
        return keys, ids, size - 1

    def lookup(self, sub: str) -> int:
        """The id of the piece ``sub``, or -1."""
        h = hash(sub)
        s = h & self.mask
        keys, ids, text, starts = self.keys, self.ids, self.text, self.starts
        while (k := keys[s]) != -1:
            if k == h:
                pid = ids[s]
                a = starts[pid]
                if starts[pid + 1] - a == len(sub) and text.startswith(sub, a):
                    return pid
            s += 1
        return -1

    def segment(self, words: set[str]) -> dict[str, Pieces]:
        """The pieces (ids, end positions) of each word."""
        cache = self.cache
        found = {w: hit for w in words if (hit := cache.get(w)) is not None}
        todo = [w for w in words if w not in found]
        for word in todo:
            pid = self.lookup(word)
            if pid >= 0 and self.whole[pid]:
                found[word] = ((pid,), (len(word),))
            else:
                found[word] = self._viterbi(word)
        if len(cache) + len(todo) > _CACHE_WORDS:
            cache.clear()  # as simple as tokenizers' cache, which stops filling instead
        for word in todo[:_CACHE_WORDS]:
            cache[word] = found[word]
        return found

    def _viterbi(self, word: str) -> Pieces:
        """The ``Unigram::encode_optimized`` of tokenizers, for one word.

        The best path ending at each position, scored in float64, the first candidate kept on
        ties, pieces tried by start and then length (tokenizers' trie walk); runs of unknown
        characters fused into one token.
        """
        n = len(word)
        best = [0.0] * (n + 1)
        start = [-1] * (n + 1)
        tid = [0] * (n + 1)
        unk_id, unk_score = self.unk_id, self.unk_score
        keys, ids, mask, text, starts, scores = self.keys, self.ids, self.mask, self.text, self.starts, self.scores
        reach = self.first_reach
        maxlen = self.maxlen
        for i, c in enumerate(map(ord, word)):
            here = best[i]
            single = False
            stop = i + (reach[c] if c < 0xFFFF else maxlen)
            if stop > n:
                stop = n
            for j in range(i + 1, stop + 1):
                sub = word[i:j]
                h = hash(sub)
                s = h & mask
                k = keys[s]
                while k != h and k != -1:
                    s += 1
                    k = keys[s]
                if k == h:
                    pid = ids[s]
                    a = starts[pid]
                    if starts[pid + 1] - a != j - i or not text.startswith(sub, a):
                        pid = self.lookup(sub)  # another string with this hash came first
                    if pid >= 0:
                        cand = scores[pid] + here
                        if start[j] < 0 or cand > best[j]:
                            best[j] = cand
                            start[j] = i
                            tid[j] = pid
                        if j == i + 1:
                            single = True
            if not single:
                cand = unk_score + here
                if start[i + 1] < 0 or cand > best[i + 1]:
                    best[i + 1] = cand
                    start[i + 1] = i
                    tid[i + 1] = unk_id
        out_ids: list[int] = []
        out_ends: list[int] = []
        e = n
        run = 0  # how many unknown-id nodes the token being built fuses
        while e > 0:
            if tid[e] == unk_id and run:
                run += 1  # fused into the unknown token after it: its end stays
            else:
                if run > 1:
                    out_ids[-1] = self._fused(word[e : out_ends[-1]])
                run = 1 if tid[e] == unk_id else 0
                out_ids.append(tid[e])
                out_ends.append(e)
            e = start[e]
        if run > 1:
            out_ids[-1] = self._fused(word[: out_ends[-1]])
        out_ids.reverse()
        out_ends.reverse()
        return tuple(out_ids), tuple(out_ends)

    def _fused(self, text: str) -> int:
        """The id of a fused run of unknowns, looked up again as a string, as tokenizers does.

        It is the unknown id unless the run is a piece (never in practice: that piece would
        have scored higher).
        """
        pid = self.lookup(text)
        return pid if pid >= 0 else self.unk_id


def _tokens(parts: list[_Part], pieces: dict[str, Pieces]) -> tuple[list[int], list[tuple[int, int]]]:
    """Ids and offsets of a text from its parts and the pieces of its words."""
    ids: list[int] = []
    offsets: list[tuple[int, int]] = []
    for part in parts:
        if part.special >= 0:
            ids.append(part.special)
            offsets.append((part.base, part.end))
            continue
        base, align, shift = part.base, part.align, part.shift
        pos = 0
        for word in part.words or ():
            word_ids, ends = pieces[word]
            a = pos
            for pid, e in zip(word_ids, ends):
                z = pos + e
                if align is None:
                    offsets.append((base + max(a - shift, 0), base + max(z - 1 - shift, 0) + 1))
                else:
                    offsets.append((base + align[a], base + align[z - 1] + 1))
                ids.append(pid)
                a = z
            pos += len(word)
    return ids, offsets
