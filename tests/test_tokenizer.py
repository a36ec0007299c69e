"""The compact Unigram tokenizer gives exactly tokenizers' ids and offsets, text for text.

Two tokenizer.json files are checked: the converted default model (250k pieces, the real
charsmap), and a small synthetic one built by the same converter code with a rule of every
kind (expansions, deletions, spaces, CR) and scores chosen to tie, so tokenizers' quirks
(grapheme rules, lost leading deletions, first-wins ties) all get exercised.
"""

from __future__ import annotations

import json
import random
import unicodedata
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer

from indexer import e5convert, unigram, unigram_tables
from indexer.embedding import Embedder
from tests.test_converter import SENTENCES

FIDELITY = [t for group in SENTENCES.values() for t in group]
PROMPTS = ("", "query: ", "passage: ")

SAMPLE = [
    "",
    " ",
    "   ",
    "\t\n",
    "a",
    " leading space",
    "trailing space ",
    "trailing spaces   ",
    "runs   of    spaces\tand\ttabs\n\nand newlines",
    "windows\r\nline\r\nendings\r\n",
    "lone\rreturn",
    "no\u00a0break\u00a0space and\u3000ideographic space",
    "zero\u200bwidth\u200cnon\u200djoiner \ufeffBOM",
    "\x01\x02leading controls",
    "trailing controls\x7f\x1f",
    "mid\x07dle\x00null",
    "ＦＵＬＬ－ＷＩＤＴＨ ＡＢＣ １２３",
    "ligatures ﬁnance ﬂow ﬀ ĳ ǆ",
    "fractions ½ ¾ ⅓ and ™ ℠ № ㈱ ㍻ Ⅸ ⅻ ²³",
    "spacing accents ´ ¨ ¸ ˘ and a ´b",
    "composed é à ü ñ ç vs decomposed e\u0301 a\u0300 u\u0308 n\u0303",
    "Ａ\u0301 ﬁ\u0301x \u00a0\u0301 µ\u0301",  # rule + combining mark: tokenizers' grapheme rule
    "ｶﾀｶﾅ ﾊﾟﾋﾟﾌﾟ and カタカナ",
    "emoji 🙂 👍🏽 👨‍👩‍👧‍👦 🇫🇷🇩🇪 ❤️ 1️⃣ #️⃣ ©️",
    "mixed: Москва 北京 東京 서울 القاهرة ירושלים मुंबई กรุงเทพ Αθήνα",
    "한국어 텍스트와 자모 ᄒᆞᆫ",
    "ภาษาไทยไม่มีช่องว่างระหว่างคำ",
    "中文没有空格分词，标点符号。“引号”",
    "العربية مع التشكيل: مُحَمَّد",
    "हिन्दी में संयुक्ताक्षर क्ष त्र ज्ञ",
    "<s> special </s> tokens <mask> in <unk> text <pad>",
    "<s><s></s>glued<mask>",
    "＜s＞ full width specials ＜unk＞",
    "literal ▁ lower block ▁▁ and ▁word",
    "rare 𠀀𠀁𠀂 characters 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 and ꙮ",
    "url https://example.org/a-b_c?d=1&e=2#f and e-mail name.surname@example.com",
    "numbers 3.14159 1,000,000 −42 1e-9 0x1F 2026-12-01",
    "Donaudampfschifffahrtsgesellschaftskapitänsmützenabzeichen",
    "a" * 40,
    "x\u0301" * 10,
    "………… …… ‥ ‼ ⁇",
]


# ------------------------------------------------------------------ helpers
def _reference(path: Path, *, max_length: int | None = None) -> Tokenizer:
    tok = Tokenizer.from_file(str(path))
    tok.no_padding()
    if max_length is None:
        tok.no_truncation()
    else:
        tok.enable_truncation(max_length=max_length)
    return tok


def _assert_same(ref: Tokenizer, mine: unigram.UnigramTokenizer, texts: list[str], *, special: bool = False) -> None:
    expected = ref.encode_batch(texts, add_special_tokens=special)
    got = mine.encode_batch(texts, add_special_tokens=special)
    for text, e, g in zip(texts, expected, got):
        assert g.ids == e.ids, f"ids differ for {text!r}: {e.tokens}"
        assert g.offsets == e.offsets, f"offsets differ for {text!r}: {e.tokens}"


_RULES = {
    **{cp: chr(cp - 0xFEE0) for cp in range(0xFF01, 0xFF5F)},  # full-width ASCII
    0xFB01: "fi",
    0xFB02: "fl",
    0xFB00: "ff",
    0x133: "ij",
    0x1C6: "dž",
    0xBD: "1⁄2",
    0x2122: "TM",
    0x2026: "...",
    0x3231: "(株)",
    0x2168: "IX",
    0xB2: "2",
    0xB5: "μ",
    0xB4: " \u0301",
    0xA8: " \u0308",
    **{cp: "" for cp in [*range(1, 9), 0xB, *range(0xE, 0x20), 0x7F]},  # deleted controls
    **{cp: " " for cp in (0x9, 0xA, 0xC, 0xD, 0xA0, 0x3000, 0x200B, 0x200C, 0x200D, 0x2581, 0xFEFF)},
    0xFF76: "カ",
    0xFF9F: "\u309a",
}


def _synthetic_vocab() -> e5convert.E5Vocab:
    """Pieces from the sample texts' words (up to 5 characters), scores from a few values so they tie."""
    rng = random.Random(7)
    pieces: set[str] = set()
    for text in SAMPLE + FIDELITY:
        norm = " ".join("".join(_RULES.get(ord(c), c) for c in text).split())
        for word in norm.split(" "):
            word = "▁" + word
            pieces.update(word[i : i + n] for n in range(1, 6) for i in range(len(word) - n + 1))
    pieces -= {"<s>", "<pad>", "</s>", "<unk>", "<mask>"}
    # some characters stay unknown, so unknown runs get fused
    body = sorted(p for p in pieces if not (len(p) == 1 and ord(p) in (0x20000, 0x20001, 0xA66E)))
    names = ["<s>", "<pad>", "</s>", "<unk>", *body, "<mask>"]
    scores = [0.0] * 4 + [rng.choice([-2.0, -3.0, -4.5, -6.0, -7.5, -9.25]) for _ in body] + [0.0]
    return e5convert.E5Vocab(
        names, scores, bos=0, eos=2, pad=1, unk=3, normalization={k: tuple(map(ord, v)) for k, v in _RULES.items()}
    )


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> tuple[Path, unigram.UnigramTokenizer]:
    folder = tmp_path_factory.mktemp("synthetic-unigram")
    e5convert.build_tokenizer(_synthetic_vocab()).save(str(folder / "tokenizer.json"))
    mine = unigram.compact_tokenizer(folder / "tokenizer.json", cache=folder / "cache")
    assert mine is not None
    return folder / "tokenizer.json", mine


@pytest.fixture(scope="module")
def real(e5_model) -> tuple[Path, unigram.UnigramTokenizer]:
    """The converted default model's tokenizer.json, and its tables from the model cache."""
    path = e5_model.path / "tokenizer.json"
    mine = unigram.compact_tokenizer(path)
    assert mine is not None, "the converter's tokenizer.json must be one the compact tokenizer takes"
    return path, mine


@pytest.fixture(scope="module")
def real_reference(real) -> Tokenizer:
    return _reference(real[0])


# ------------------------------------------------------------ the default model
def test_fidelity_sentences_identical(real, real_reference):
    """The converter's fidelity sentences, alone and with both prompts: same ids, same offsets."""
    texts = [p + t for p in PROMPTS for t in FIDELITY]
    _assert_same(real_reference, real[1], texts)
    _assert_same(_reference(real[0], max_length=512), real[1].truncating(512), texts, special=True)


def test_multilingual_sample_identical(real, real_reference):
    _assert_same(real_reference, real[1], SAMPLE)
    _assert_same(real_reference, real[1], [p + t for p in PROMPTS[1:] for t in SAMPLE])


def test_truncated_like_the_runner(real):
    """OrtRunner truncates to the model's window: <s>, the first 510 tokens, </s>."""
    rng = random.Random(3)
    words = " ".join(SAMPLE + FIDELITY).split()
    long = [" ".join(rng.choice(words) for _ in range(n)) for n in (300, 600, 3000)]
    ref = _reference(real[0], max_length=512)
    _assert_same(ref, real[1].truncating(512), long, special=True)
    assert [len(e.ids) for e in real[1].truncating(512).encode_batch(long)][1:] == [512, 512]
    _assert_same(_reference(real[0]), real[1], long)  # and untruncated, as the chunker counts


def test_cached_words_give_the_same_answer(real, real_reference):
    """A second pass (every word cached) and a one-text-at-a-time pass agree with the batch."""
    texts = SAMPLE + FIDELITY
    first = real[1].encode_batch(texts)
    again = real[1].encode_batch(texts)
    single = [real[1].encode(t) for t in texts]
    assert first == again == single


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from([*"".join(SAMPLE)]) | st.text(max_size=3), max_size=40).map("".join))
def test_random_texts_identical_real(real, real_reference, text):
    _assert_same(real_reference, real[1], [text])


# ---------------------------------------------------- the synthetic tokenizer
def test_synthetic_sample_identical(synthetic):
    path, mine = synthetic
    ref = _reference(path)
    _assert_same(ref, mine, SAMPLE + FIDELITY)
    _assert_same(ref, mine, [p + t for p in PROMPTS[1:] for t in SAMPLE])
    _assert_same(_reference(path, max_length=24), mine.truncating(24), SAMPLE + FIDELITY, special=True)


_TRICKY = sorted({*"".join(SAMPLE), *map(chr, _RULES), "\r\n", " ", "\u0301", "\u0308", "<s>", "</s>", "<mask>"})


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(_TRICKY), max_size=30).map("".join))
def test_random_texts_identical_synthetic(synthetic, text):
    """Rules next to rules, deletions at the start, CR LF, ties between equal scores, specials."""
    path, mine = synthetic
    _assert_same(_reference(path), mine, [text])


def test_short_grapheme_rule_goes_to_tokenizers(synthetic):
    """A ruled character starting a short grapheme ("ﬁ" + accent): tokenizers applies the rule to
    the whole grapheme; the emulation refuses the text and asks tokenizers itself."""
    path = synthetic[0]
    fresh = unigram.compact_tokenizer(path, cache=path.parent / "cache")
    assert fresh is not None
    fresh.encode_batch(["plain text, no grapheme rule"])
    assert not fresh._reference
    _assert_same(_reference(path), fresh, ["la ﬁ\u0301n", "Ａ\u0301"])
    assert fresh._reference, "the text should have been handed to tokenizers"


def test_charsmap_decodes_to_the_rules_it_was_built_from():
    rules = {k: tuple(map(ord, v)) for k, v in _RULES.items()}
    decoded = unigram_tables.decode_charsmap(e5convert._precompiled_charsmap(rules))
    assert decoded == _RULES


def test_tables_are_derived_once(synthetic, tmp_path):
    path, _ = synthetic
    assert unigram.compact_tokenizer(path, cache=tmp_path) is not None
    (cached,) = tmp_path.glob("unigram-*.npz")
    stamp = cached.stat().st_mtime_ns
    assert unigram.compact_tokenizer(path, cache=tmp_path) is not None
    assert cached.stat().st_mtime_ns == stamp


def test_damaged_tables_are_derived_again(synthetic, tmp_path):
    path, _ = synthetic
    assert unigram.compact_tokenizer(path, cache=tmp_path) is not None
    (cached,) = tmp_path.glob("unigram-*.npz")
    cached.write_bytes(cached.read_bytes()[:1000])  # cut short, as by a full disk
    again = unigram.compact_tokenizer(path, cache=tmp_path)
    assert again is not None
    _assert_same(_reference(path), again, SAMPLE)


def test_unwritable_cache_still_works(synthetic, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    mine = unigram.compact_tokenizer(synthetic[0], cache=blocker / "cache")
    assert mine is not None
    _assert_same(_reference(synthetic[0]), mine, SAMPLE[:10])


# ------------------------------------------------- other models keep tokenizers
def _variant(path: Path, tmp_path: Path, change) -> Path:
    spec = json.loads(path.read_text(encoding="utf-8"))
    change(spec)
    out = tmp_path / "tokenizer.json"
    out.write_text(json.dumps(spec), encoding="utf-8")
    return out


@pytest.mark.parametrize(
    "change",
    [
        lambda s: s["model"].update(byte_fallback=True),
        lambda s: s.update(pre_tokenizer={"type": "Whitespace"}),
        lambda s: s["normalizer"]["normalizers"].append({"type": "Lowercase"}),
        lambda s: s.update(normalizer={"type": "NFKC"}),
        lambda s: s["added_tokens"][0].update(normalized=True),
        lambda s: s.update(post_processor={"type": "ByteLevel"}),
    ],
    ids=["byte-fallback", "whitespace-split", "lowercase", "nfkc", "normalized-special", "byte-level"],
)
def test_other_pipelines_are_refused(synthetic, tmp_path, change):
    path = _variant(synthetic[0], tmp_path, change)
    assert unigram.compact_tokenizer(path, cache=tmp_path / "cache") is None
    assert list((tmp_path / "cache").glob("*.unsupported")), "the refusal is remembered"


def test_wordpiece_model_keeps_tokenizers(tmp_path, monkeypatch):
    """Any other sentence-transformers model (here all-MiniLM, WordPiece) goes through tokenizers as before."""
    from indexer.models import resolve
    from tests.reliability_helpers import minilm_dir

    monkeypatch.setenv("INDEXER_CACHE", str(tmp_path))
    emb = Embedder(resolve(str(minilm_dir())))
    assert emb._compact_tokenizer is None
    assert isinstance(emb._tokenizer, Tokenizer)
    assert emb.count_tokens(["Hello world"]) == [4]


def test_default_model_embedder_uses_the_compact_tokenizer(e5_model, real_reference):
    emb = Embedder(e5_model)
    assert isinstance(emb._tokenizer, unigram.UnigramTokenizer)
    texts = SAMPLE + FIDELITY
    ref = real_reference.encode_batch(texts, add_special_tokens=False)
    assert emb.count_tokens(texts) == [len(e.ids) + 2 for e in ref]
    assert emb.token_spans(texts) == [[o for o in e.offsets if o[1] > o[0]] or [(0, 0)] * len(e.ids) for e in ref]


def test_environment_turns_it_off(synthetic, monkeypatch, tmp_path):
    monkeypatch.setenv("INDEXER_TOKENIZER", "tokenizers")
    assert unigram.compact_tokenizer(synthetic[0], cache=tmp_path) is None


def test_refuses_what_tokenizers_refuses(synthetic):
    with pytest.raises(TypeError):
        synthetic[1].encode_batch(["a lone surrogate \ud800"])


@pytest.mark.slow
def test_conversion_derives_the_tables(tmp_path, monkeypatch):
    """The converter derives the compact tables with the model, so no search process parses the JSON."""
    folder = e5convert.ensure_converted(tmp_path)
    (tables,) = (tmp_path / "tokenizers").glob("unigram-*.npz")
    stamp = tables.stat().st_mtime_ns
    monkeypatch.setattr(unigram_tables, "build_tables", lambda _: pytest.fail("tables derived again"))
    assert unigram.compact_tokenizer(folder / "tokenizer.json", tmp_path / "tokenizers") is not None
    assert tables.stat().st_mtime_ns == stamp


# ------------------------------------------------------------ at corpus scale
BENCH = Path(__file__).resolve().parents[2] / "shared" / "bench-data"


@pytest.mark.slow
@pytest.mark.skipif(not (BENCH / "xquad").is_dir(), reason="needs ../shared/bench-data")
def test_benchmark_corpora_identical(real, real_reference):
    """Every XQuAD (5 languages) and PIAF paragraph, question and title: ~580k tokens."""
    texts: list[str] = []
    for f in sorted((BENCH / "xquad").glob("*.json")) + sorted((BENCH / "piaf").glob("*.json")):
        for art in json.loads(f.read_text(encoding="utf-8"))["data"]:
            texts.append(art["title"])
            for p in art["paragraphs"]:
                texts += [p["context"], *(q["question"] for q in p["qas"])]
    for i in range(0, len(texts), 256):
        _assert_same(real_reference, real[1], texts[i : i + 256])


@pytest.mark.slow
def test_random_piece_strings_identical(real, real_reference):
    """Strings glued from random pieces split many ways with equal float64 scores (e.g.
    "cess|ive" and "ces|sive"): tokenizers keeps the first; SentencePiece's float32 often not."""
    vocab = json.loads(real[0].read_text(encoding="utf-8"))["model"]["vocab"]
    pieces = [p for p, _ in vocab[4:-1]]
    rng = random.Random(1)
    texts = ["".join(rng.choice(pieces) for _ in range(rng.randint(2, 12))) for _ in range(40_000)]
    texts = [t.replace("▁", " " if rng.random() < 0.5 else "") for t in texts]
    for i in range(0, len(texts), 1000):
        _assert_same(real_reference, real[1], texts[i : i + 1000])


@pytest.mark.slow
def test_every_character_alone_and_after_a_letter(real, real_reference):
    """All of Unicode, one character at a time and after "a": every charsmap rule, every quirk."""
    chars = [chr(c) for c in range(1, 0x110000) if not 0xD800 <= c <= 0xDFFF]
    assigned = [c for c in chars if unicodedata.category(c) != "Cn"]
    for i in range(0, len(chars), 4096):
        _assert_same(real_reference, real[1], chars[i : i + 4096])
    for i in range(0, len(assigned), 4096):
        _assert_same(real_reference, real[1], ["a" + c + "b" for c in assigned[i : i + 4096]])
