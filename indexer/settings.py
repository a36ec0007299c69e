"""Names and limits shared by the engine and its shells.

It imports nothing, so the CLI's choice lists come from here and ``--help`` stays instant.
"""

from __future__ import annotations

#: Rankings a search can use.
MODES = ("hybrid", "dense", "bm25")
#: The most results one search returns (paging included).
MAX_K = 1000
#: The model runtimes an index can be built with.
BACKENDS = ("torch", "onnx", "onnx-int8")
#: Measured fastest without a loss of retrieval quality (see bench/embed_throughput.py).
DEFAULT_BACKEND = "onnx-int8"
