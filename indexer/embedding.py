"""Embeddings through sentence-transformers, with cached ONNX (fp32 and int8) exports.

torch and sentence-transformers are imported only when a model is first used,
so ``indexer --help`` and the chunker's token counting stay instant.
"""

from __future__ import annotations

from functools import cached_property, lru_cache
from typing import Any, Protocol

import numpy as np

from .errors import IndexerError, ModelNotFoundError
from .models import ResolvedModel
from .onnx_model import OrtRunner, onnx_export, onnx_file, quantization_config, quiet_transformers, read_json
from .settings import BACKENDS, DEFAULT_BACKEND
from .unigram import UnigramTokenizer, compact_tokenizer

__all__ = [
    "BACKENDS",
    "DEFAULT_BACKEND",
    "Embedder",
    "Encoder",
    "body_offset",
    "onnx_export",
    "onnx_file",
    "passage_text",
    "quantization_config",
]

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


def context_title(title: str) -> str:
    """The part of an article's title prefixed to each of its passages."""
    title = title.strip()
    return title[:_TITLE_CHARS].rsplit(" ", 1)[0] if len(title) > _TITLE_CHARS else title


def passage_text(title: str, body: str) -> str:
    """The text embedded for a passage: its article's title as context, then the passage."""
    title = context_title(title)
    return f"{title}\n{body}" if title else body


def body_offset(title: str) -> int:
    """Where the passage itself starts inside ``passage_text(title, body)``."""
    title = context_title(title)
    return len(title) + 1 if title else 0


class Embedder(Encoder):
    """A sentence-transformers model on one backend (``torch``, ``onnx`` or ``onnx-int8``)."""

    def __init__(self, model: ResolvedModel, *, backend: str = DEFAULT_BACKEND, batch_size: int | None = None):
        if backend not in BACKENDS:
            raise IndexerError(f"unknown backend {backend!r}: choose one of {', '.join(BACKENDS)}")
        self.model = model
        self.backend = backend
        self.batch_size = batch_size or (8 if backend.startswith("onnx") else 32)  # fastest measured
        st_cfg = read_json(model.path / "config_sentence_transformers.json")
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
        pooling = read_json(self.model.path / "1_Pooling" / "config.json")
        dim = pooling.get("word_embedding_dimension")
        modules = read_json(self.model.path / "modules.json")
        has_dense = any("Dense" in str(m.get("type", "")) for m in modules) if isinstance(modules, list) else True
        if isinstance(dim, int) and not has_dense:
            return dim
        return int(self._st.get_sentence_embedding_dimension())

    @cached_property
    def max_seq_length(self) -> int:
        """The model's window in tokens."""
        cfg = read_json(self.model.path / "sentence_bert_config.json")
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


@lru_cache(maxsize=4)
def load_sentence_transformer(model: ResolvedModel, backend: str) -> Any:
    """A ``SentenceTransformer`` for ``model`` on ``backend``, exporting ONNX once if needed.

    Cached per process: the page, the CLI's query loop and the tests share one copy.
    """
    quiet_transformers()
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
        return SentenceTransformer(
            str(folder), backend="onnx", model_kwargs={"file_name": onnx_file(backend)}, **common
        )
    except (OSError, ValueError) as exc:
        raise ModelNotFoundError(f"cannot load model {model.name!r} from {model.path}: {exc}") from exc


