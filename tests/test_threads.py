"""indexer.threads applies its settings: ONNX Runtime session options and FAISS's OpenMP threads."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from indexer import threads
from indexer.threads import SETTINGS, ThreadSettings

faiss = pytest.importorskip("faiss")
ort = pytest.importorskip("onnxruntime")


def test_session_options_carry_the_settings() -> None:
    for kind in ("query", "build"):
        opts = threads.ort_session_options(kind)
        assert opts.intra_op_num_threads == SETTINGS.ort_intra_op
        assert opts.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL
        assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "1"
    custom = threads.ort_session_options("query", settings=ThreadSettings(ort_intra_op=1, ort_spinning=False))
    assert custom.intra_op_num_threads == 1
    assert custom.get_session_config_entry("session.intra_op.allow_spinning") == "0"


def test_session_options_are_accepted_by_onnx_runtime() -> None:
    pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "relu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    opts = threads.ort_session_options("query", settings=ThreadSettings(ort_intra_op=1, ort_spinning=False))
    session = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    x = np.array([[-1.0, 0.0, 2.0, -3.0]], np.float32)
    assert session.run(None, {"x": x})[0].tolist() == [[0.0, 0.0, 2.0, 0.0]]


def test_faiss_threads_are_set_for_the_block_and_restored() -> None:
    faiss.omp_set_num_threads(2)
    with threads.faiss_threads("query"):
        assert faiss.omp_get_max_threads() == SETTINGS.faiss_search == 1
        index = faiss.IndexFlatIP(8)
        index.add(np.eye(8, dtype=np.float32))
        _, ids = index.search(np.eye(8, dtype=np.float32)[:1], 1)
        assert ids[0, 0] == 0
    assert faiss.omp_get_max_threads() == 2


def test_faiss_threads_are_restored_after_an_error() -> None:
    faiss.omp_set_num_threads(2)
    with pytest.raises(RuntimeError), threads.faiss_threads("query"):
        raise RuntimeError("search failed")
    assert faiss.omp_get_max_threads() == 2


def test_faiss_build_keeps_openmp_default() -> None:
    faiss.omp_set_num_threads(2)
    with threads.faiss_threads("build"):
        assert faiss.omp_get_max_threads() == 2
    with threads.faiss_threads("build", settings=ThreadSettings(faiss_build=1)):
        assert faiss.omp_get_max_threads() == 1
    assert faiss.omp_get_max_threads() == 2


def test_openmp_setting_is_per_thread() -> None:
    # why the setting is scoped around each search rather than made once: a thread of its own
    # (each page session searches from one) starts from OpenMP's default, whatever this one set
    def in_new_thread() -> int:
        seen: list[int] = []
        worker = threading.Thread(target=lambda: seen.append(faiss.omp_get_max_threads()))
        worker.start()
        worker.join()
        return seen[0]

    default = in_new_thread()
    with threads.faiss_threads("query"):
        assert faiss.omp_get_max_threads() == 1
        assert in_new_thread() == default


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown kind"):
        threads.ort_session_options("serve")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown kind"), threads.faiss_threads("serve"):  # type: ignore[arg-type]
        pass
