"""The int8 export is found under the name the loader asks for, whatever the CPU's quantisation preset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from indexer import models, onnx_model
from indexer.embedding import Embedder

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("preset", ["avx2", "avx512_vnni"])
def test_int8_export_is_where_the_loader_looks(preset: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # avx2 quantises weights as uint8: sentence-transformers' own name for that file
    # (model_quint8_avx2.onnx) was not the one the loader opened, so AVX2-only machines could not build.
    monkeypatch.setattr(onnx_model, "quantization_config", lambda: preset)
    monkeypatch.setenv("INDEXER_CACHE", str(tmp_path / "cache"))
    model = models.resolve(None)
    folder = onnx_model.onnx_export(model)
    assert (folder / onnx_model.onnx_file("onnx-int8")).is_file()
    assert sorted(p.name for p in (folder / "onnx").glob("*.onnx")) == sorted(
        ["model.onnx", Path(onnx_model.onnx_file("onnx-int8")).name]
    )
    vectors = Embedder(model, backend="onnx-int8").embed_queries(["coopération dans l'Arctique"])
    assert vectors.shape[0] == 1 and np.isclose(np.linalg.norm(vectors[0]), 1.0, atol=1e-3)
