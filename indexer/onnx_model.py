"""The ONNX side of embedding: exporting a model once, and running it directly with ONNX Runtime.

The export (fp32 and int8, by sentence-transformers' ONNX backend and
``export_dynamic_quantized_onnx_model``) is cached per model fingerprint; ``OrtRunner``
tokenises, runs, pools and normalises exactly as sentence-transformers would for a
Transformer + Pooling (+ Normalize) stack, and pools sentence spans from the same pass.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from .locking import FileLock
from .models import ResolvedModel
from .paths import cache_dir
from .unigram import UnigramTokenizer

ONNX_EXPORT_VERSION = 1


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


def read_json(path: Path) -> Any:
    """A JSON file's content, or {} when it is missing or unreadable."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def quiet_transformers() -> None:
    """Offline, and without the advisory warnings of transformers and the ONNX tracer."""
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


def int8_suffix() -> str:
    """The int8 file's suffix, named by us rather than by the library.

    sentence-transformers names the file after the preset's weight type, which is uint8 for avx2
    ("model_quint8_avx2.onnx"): a name assumed from another CPU's preset is not found on an AVX2-only machine.
    """
    return f"qint8_{quantization_config()}"


def onnx_file(backend: str) -> str:
    """The ONNX file of a backend inside an export folder."""
    return "onnx/model.onnx" if backend == "onnx" else f"onnx/model_{int8_suffix()}.onnx"


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
        modules = read_json(model_dir / "modules.json")
        if not isinstance(modules, list) or not (model_dir / "tokenizer.json").exists():
            return None
        kinds = [str(m.get("type", "")).rsplit(".", 1)[-1] for m in modules]
        if kinds not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]):
            return None
        pool = read_json(model_dir / modules[1].get("path", "1_Pooling") / "config.json")
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
    int8 = target / onnx_file("int8")
    if int8.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(target.parent / f".{target.name}.lock"):
        if int8.exists():
            return target
        quiet_transformers()
        from sentence_transformers import SentenceTransformer, export_dynamic_quantized_onnx_model

        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            st = SentenceTransformer(
                str(model.path), backend="onnx", device="cpu", processor_kwargs={"fix_mistral_regex": False}
            )
            st.save_pretrained(str(tmp))
            export_dynamic_quantized_onnx_model(st, cfg, str(tmp), file_suffix=int8_suffix())
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
