"""Embeddings through sentence-transformers, with cached ONNX (fp32 and int8) exports.

torch and sentence-transformers are imported only when a model is first used,
so ``indexer --help`` and the chunker's token counting stay instant.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import tempfile
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .errors import IndexerError, ModelNotFoundError
from .locking import FileLock
from .models import ResolvedModel
from .paths import cache_dir
from .settings import BACKENDS, DEFAULT_BACKEND
from .unigram import UnigramTokenizer, compact_tokenizer

__all__ = ["BACKENDS", "DEFAULT_BACKEND", "Embedder", "Encoder", "body_offset", "passage_text"]

ONNX_EXPORT_VERSION = 1
_TITLE_CHARS = 200  # a title longer than this is cut in the passage's context prefix only


class Encoder(Protocol):
    """What the build and search need from an embedding model (a fake one in unit tests).

    ``load`` and ``embed_passages_with_sentences`` are capabilities with defaults:
    an encoder that subclasses this protocol and cannot pool sentence vectors from
    its passage pass inherits "no sentence vectors" (highlights then embed sentences
    at query time).
    """

    @property
    def dimension(self) -> int:
        """Length of the vectors."""
        ...

    @property
    def max_seq_length(self) -> int:
        """Tokens the model reads at most (its window)."""
        ...

    def token_spans(self, texts: list[str]) -> list[list[tuple[int, int]]]:
        """Character spans of each text's tokens, as the model's own tokenizer cuts them."""
        ...

    def embed_passages(self, texts: list[str]) -> np.ndarray:
        """Unit vectors of passages (with the model's passage prompt)."""
        ...

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        """Unit vectors of queries (with the model's query prompt)."""
        ...

    def load(self) -> None:
        """Load the model now, so loading is not counted as embedding time."""
        return None

    def embed_passages_with_sentences(
        self, texts: list[str], spans: list[list[tuple[int, int]]]
    ) -> tuple[np.ndarray, list[np.ndarray] | None]:
        """Passage vectors and, per passage, one vector per character span (None: not supported)."""
        return self.embed_passages(texts), None


def _context_title(title: str) -> str:
    title = title.strip()
    return title[:_TITLE_CHARS].rsplit(" ", 1)[0] if len(title) > _TITLE_CHARS else title


def passage_text(title: str, body: str) -> str:
    """The text embedded for a passage: its article's title as context, then the passage."""
    title = _context_title(title)
    return f"{title}\n{body}" if title else body


def body_offset(title: str) -> int:
    """Where the passage itself starts inside ``passage_text(title, body)``."""
    title = _context_title(title)
    return len(title) + 1 if title else 0


def quantization_config() -> str:
    """The ONNX dynamic-quantisation preset for this CPU (VNNI where present)."""
    if platform.machine().lower() in ("arm64", "aarch64"):
        return "arm64"
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        flags = ""
    if "avx512_vnni" in flags:
        return "avx512_vnni"
    if "avx512f" in flags:
        return "avx512"
    return "avx2"


class Embedder(Encoder):
    """A sentence-transformers model on one backend (``torch``, ``onnx`` or ``onnx-int8``)."""

    def __init__(self, model: ResolvedModel, *, backend: str = DEFAULT_BACKEND, batch_size: int | None = None):
        if backend not in BACKENDS:
            raise IndexerError(f"unknown backend {backend!r}: choose one of {', '.join(BACKENDS)}")
        self.model = model
        self.backend = backend
        self.batch_size = batch_size or (8 if backend.startswith("onnx") else 32)  # fastest measured
        st_cfg = _read_json(model.path / "config_sentence_transformers.json")
        prompts = st_cfg.get("prompts") or {}
        self.query_prompt: str = prompts.get("query", "")
        self.passage_prompt: str = next(
            (prompts[k] for k in ("passage", "document", "doc", "corpus") if k in prompts), ""
        )

    # ------------------------------------------------------------ tokenizer
    @cached_property
    def _compact_tokenizer(self) -> UnigramTokenizer | None:
        """The compact Unigram tokenizer where it reproduces this model's tokenizer.json exactly."""
        return compact_tokenizer(self.model.path / "tokenizer.json")

    @cached_property
    def _tokenizer(self) -> Any:
        if self._compact_tokenizer is not None:
            return self._compact_tokenizer
        path = self.model.path / "tokenizer.json"
        if path.exists():
            from tokenizers import Tokenizer

            tok = Tokenizer.from_file(str(path))
        else:  # a slow-only tokenizer: let transformers convert it
            from transformers import AutoTokenizer

            tok = AutoTokenizer.from_pretrained(str(self.model.path), use_fast=True)._tokenizer
        tok.no_truncation()  # saved tokenizers often carry a truncation setting
        tok.no_padding()
        return tok

    def token_spans(self, texts: list[str]) -> list[list[tuple[int, int]]]:
        """Character spans of each text's tokens, as the model's own tokenizer cuts them."""
        encs = self._tokenizer.encode_batch(texts, add_special_tokens=False)
        return [[o for o in e.offsets if o[1] > o[0]] or [(0, 0)] * len(e.ids) for e in encs]

    def count_tokens(self, texts: list[str]) -> list[int]:
        """Tokens of each text as the model reads it, its two special tokens included."""
        return [len(e.ids) + 2 for e in self._tokenizer.encode_batch(texts, add_special_tokens=False)]

    # ---------------------------------------------------------------- model
    @cached_property
    def _st(self) -> Any:
        return load_sentence_transformer(self.model, self.backend)

    @cached_property
    def dimension(self) -> int:
        """Length of the vectors, from the model's configuration when it says."""
        pooling = _read_json(self.model.path / "1_Pooling" / "config.json")
        dim = pooling.get("word_embedding_dimension")
        modules = _read_json(self.model.path / "modules.json")
        has_dense = any("Dense" in str(m.get("type", "")) for m in modules) if isinstance(modules, list) else True
        if isinstance(dim, int) and not has_dense:
            return dim
        return int(self._st.get_sentence_embedding_dimension())

    @cached_property
    def max_seq_length(self) -> int:
        """The model's window in tokens."""
        cfg = _read_json(self.model.path / "sentence_bert_config.json")
        if isinstance(cfg.get("max_seq_length"), int):
            return int(cfg["max_seq_length"])
        return int(self._st.max_seq_length)

    @cached_property
    def _runner(self) -> OrtRunner | None:
        """Direct ONNX Runtime inference where the model is a plain encoder + pooling stack."""
        if not self.backend.startswith("onnx"):
            return None
        spec = OrtRunner.spec(self.model.path)
        if spec is None:
            return None
        folder = onnx_export(self.model)
        # the export's tokenizer.json is a copy of the model's, so the compact tokenizer serves both
        tokenizer = self._compact_tokenizer or folder / "tokenizer.json"
        return OrtRunner(folder / onnx_file(self.backend), tokenizer, max_length=self.max_seq_length, **spec)

    def load(self) -> None:
        """Load the model now (exporting ONNX on first use) rather than on the first batch."""
        if self._runner is None:
            _ = self._st

    def _encode(self, texts: list[str], prompt: str) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        if self._runner is not None:
            return self._runner.encode([prompt + t for t in texts], batch_size=self.batch_size)
        vecs = self._st.encode(
            [prompt + t for t in texts],
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(vecs, dtype=np.float32)

    def embed_passages(self, texts: list[str]) -> np.ndarray:
        """Unit vectors of passages, with the passage prompt."""
        return self._encode(texts, self.passage_prompt)

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        """Unit vectors of queries, with the query prompt."""
        return self._encode(texts, self.query_prompt)

    def embed_passages_with_sentences(
        self, texts: list[str], spans: list[list[tuple[int, int]]]
    ) -> tuple[np.ndarray, list[np.ndarray] | None]:
        """Passage vectors, and for each passage one vector per character span (its sentences).

        The span vectors are pooled from the same forward pass; None where the backend cannot.
        """
        self.load()
        if self._runner is None or not texts:
            return self.embed_passages(texts), None
        shift = len(self.passage_prompt)
        vecs = self._runner.encode(
            [self.passage_prompt + t for t in texts],
            batch_size=self.batch_size,
            spans=[[(s + shift, e + shift) for s, e in sp] for sp in spans],
        )
        return vecs, list(self._runner.last_spans)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _quiet_transformers() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing here may reach a model hub
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import logging
    import warnings

    for name in ("transformers", "optimum", "sentence_transformers"):
        logging.getLogger(name).setLevel(logging.ERROR)
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # transformers logs through its own handler
    # ONNX export traces the model; torch's tracer warnings are about that, not about us
    warnings.filterwarnings("ignore", category=UserWarning, module="transformers")
    warnings.filterwarnings("ignore", message=".*TracerWarning.*")
    try:
        from torch.jit import TracerWarning

        warnings.filterwarnings("ignore", category=TracerWarning)
    except ImportError:  # pragma: no cover
        pass


@lru_cache(maxsize=4)
def load_sentence_transformer(model: ResolvedModel, backend: str) -> Any:
    """A ``SentenceTransformer`` for ``model`` on ``backend``, exporting ONNX once if needed.

    Cached per process: the page, the CLI's query loop and the tests share one copy.
    """
    _quiet_transformers()
    import torch
    from sentence_transformers import SentenceTransformer

    # The tokenizer-config check of transformers 4.57 warns about a Mistral regex for
    # every local folder; passing the flag explicitly is its documented opt-out.
    common: dict[str, Any] = {"device": "cpu", "processor_kwargs": {"fix_mistral_regex": False}}
    try:
        if backend == "torch":
            return SentenceTransformer(str(model.path), **common)
        # ONNX Runtime brings its own threads; torch only pools, and its idle
        # threads otherwise compete with ORT's for the same cores (measured -15%).
        torch.set_num_threads(1)
        folder = onnx_export(model)
        file_name = "onnx/model.onnx" if backend == "onnx" else f"onnx/model_qint8_{quantization_config()}.onnx"
        return SentenceTransformer(str(folder), backend="onnx", model_kwargs={"file_name": file_name}, **common)
    except (OSError, ValueError) as exc:
        raise ModelNotFoundError(f"cannot load model {model.name!r} from {model.path}: {exc}") from exc


def onnx_file(backend: str) -> str:
    return "onnx/model.onnx" if backend == "onnx" else f"onnx/model_qint8_{quantization_config()}.onnx"


class OrtRunner:
    """Tokenise, run the exported ONNX encoder, pool and normalise, as sentence-transformers does.

    That is, for a Transformer + Pooling (+ Normalize) model, without its per-batch overhead.
    Measured on 2 cores: ~7,000 tokens/s and ~4 ms per query for int8, against
    ~4,100 and ~8.6 ms through ``SentenceTransformer.encode`` on the same file.
    ``tokenizer`` is a tokenizer.json for ``tokenizers``, or a ``UnigramTokenizer``.
    """

    def __init__(
        self, onnx_path: Path, tokenizer: Path | UnigramTokenizer, *, max_length: int, pooling: str, normalize: bool
    ):
        import onnxruntime as ort

        from .threads import ort_session_options

        opts = ort_session_options("query")
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
        self.inputs = {i.name for i in self.session.get_inputs()}
        self.tok: Any
        if isinstance(tokenizer, UnigramTokenizer):
            self.tok = tokenizer.truncating(max_length)
        else:
            from tokenizers import Tokenizer

            self.tok = Tokenizer.from_file(str(tokenizer))
            self.tok.no_padding()
            self.tok.enable_truncation(max_length=max_length)  # as sentence-transformers truncates
        self.pooling = pooling
        self.normalize = normalize

    @staticmethod
    def spec(model_dir: Path) -> dict[str, Any] | None:
        """Pooling settings when the model is a stack this runner reproduces exactly, else None."""
        modules = _read_json(model_dir / "modules.json")
        if not isinstance(modules, list) or not (model_dir / "tokenizer.json").exists():
            return None
        kinds = [str(m.get("type", "")).rsplit(".", 1)[-1] for m in modules]
        if kinds not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]):
            return None
        pool = _read_json(model_dir / modules[1].get("path", "1_Pooling") / "config.json")
        modes = [k for k, v in pool.items() if k.startswith("pooling_mode") and v is True]
        if pool.get("include_prompt") is False or modes not in (
            ["pooling_mode_mean_tokens"],
            ["pooling_mode_cls_token"],
        ):
            return None
        return {
            "pooling": "mean" if modes == ["pooling_mode_mean_tokens"] else "cls",
            "normalize": kinds[-1] == "Normalize",
        }

    def encode(
        self, texts: list[str], *, batch_size: int, spans: list[list[tuple[int, int]]] | None = None
    ) -> np.ndarray:
        """Embeddings of ``texts``; with ``spans``, also each character span of each text pooled.

        The spans are pooled from the same token states into ``self.last_spans`` ("late
        chunking": sentence vectors in their passage's context, at no extra model cost).
        """
        encs = self.tok.encode_batch(texts)
        out = np.zeros((len(texts), 0), dtype=np.float32)
        self.last_spans: list[np.ndarray] = [np.zeros((0, 0), np.float32)] * len(texts)
        order = np.argsort([len(e.ids) for e in encs], kind="stable")  # similar lengths pad little
        for b in range(0, len(order), batch_size):
            idx = order[b : b + batch_size]
            width = max(len(encs[i].ids) for i in idx)
            ids = np.zeros((len(idx), width), dtype=np.int64)
            mask = np.zeros((len(idx), width), dtype=np.int64)
            for row, i in enumerate(idx):
                n = len(encs[i].ids)
                ids[row, :n] = encs[i].ids
                mask[row, :n] = 1
            feed = {"input_ids": ids, "attention_mask": mask}
            if "token_type_ids" in self.inputs:
                feed["token_type_ids"] = np.zeros_like(ids)
            hidden = self.session.run(None, feed)[0]
            if self.pooling == "cls":
                pooled = hidden[:, 0, :]
            else:
                m = mask[:, :, None].astype(np.float32)
                pooled = (hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)
            if spans is not None:
                for row, i in enumerate(idx):
                    self.last_spans[i] = _pool_spans(hidden[row], encs[i].offsets, spans[i])
            if out.shape[1] == 0:
                out = np.zeros((len(texts), pooled.shape[1]), dtype=np.float32)
            out[idx] = pooled
        if self.normalize:
            out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out


def _pool_spans(hidden: np.ndarray, offsets: list[tuple[int, int]], spans: list[tuple[int, int]]) -> np.ndarray:
    """Mean of the token states inside each character span, L2-normalised (zeros if none)."""
    starts = np.array([o[0] for o in offsets])
    ends = np.array([o[1] for o in offsets])
    real = ends > starts  # special tokens have empty offsets
    out = np.zeros((len(spans), hidden.shape[1]), dtype=np.float32)
    for k, (s, e) in enumerate(spans):
        sel = real & (starts < e) & (ends > s)
        if sel.any():
            v = hidden[: len(offsets)][sel].mean(axis=0)
            out[k] = v / max(float(np.linalg.norm(v)), 1e-12)
    return out


def onnx_export(model: ResolvedModel) -> Path:
    """Folder holding fp32 and int8 ONNX exports of ``model``, built once per fingerprint."""
    slug = "".join(c if c.isalnum() or c in "-_." else "-" for c in Path(model.name).name)[:60]
    digest = model.fingerprint.split(":")[-1][:16]
    cfg = quantization_config()
    target = cache_dir() / "onnx" / f"{slug}-{digest}-v{ONNX_EXPORT_VERSION}"
    int8 = target / "onnx" / f"model_qint8_{cfg}.onnx"
    if int8.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(target.parent / f".{target.name}.lock"):
        if int8.exists():
            return target
        _quiet_transformers()
        from sentence_transformers import SentenceTransformer, export_dynamic_quantized_onnx_model

        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            st = SentenceTransformer(
                str(model.path), backend="onnx", device="cpu", processor_kwargs={"fix_mistral_regex": False}
            )
            st.save_pretrained(str(tmp))
            export_dynamic_quantized_onnx_model(st, cfg, str(tmp))
            # save_pretrained re-serialises the tokenizer; keep the source's exact files
            for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
                if (model.path / name).exists():
                    shutil.copyfile(model.path / name, tmp / name)
            if target.exists():
                shutil.rmtree(target)
            os.replace(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target
