"""A search process for the concurrency tests: one long-lived ``Searcher`` querying in a loop.

python -m tests.reliability_reader INDEX QUERIES_JSON OUT_JSONL STOP_FILE MIN_QUERIES

Writes one JSON line per query: the version that answered it and the hits, or the
error. Stops after MIN_QUERIES once STOP_FILE exists (and 20 more queries after it
appeared), or after five minutes.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from pathlib import Path

from indexer.search import Searcher, SearchOptions

from .reliability_helpers import hit_keys


def main(index: str, queries_file: str, out_file: str, stop_file: str, min_queries: str) -> int:
    queries = json.loads(Path(queries_file).read_text(encoding="utf-8"))
    searcher = Searcher(index)
    deadline = time.monotonic() + 300
    after_stop = 0
    with open(out_file, "w", encoding="utf-8") as out:
        i = 0
        while time.monotonic() < deadline:
            q = queries[i % len(queries)]
            record: dict = {"i": i, "q": q}
            try:
                # the versions open before and after: if they differ, a switch happened during
                # this search and its answer may come from either (but wholly from one)
                before = searcher._snap.manifest.version if searcher._snap else None
                result = searcher.search(q, SearchOptions(k=10))
                assert searcher._snap is not None
                record["versions"] = sorted(
                    {before or searcher._snap.manifest.version, searcher._snap.manifest.version}
                )
                record["hits"] = [list(k) for k in hit_keys(result.hits)]
            except BaseException as exc:
                record["error"] = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
            out.flush()
            i += 1
            time.sleep(0.03)  # a brisk user's pace: leave the build some of the two cores
            if Path(stop_file).exists():
                after_stop += 1
                if i >= int(min_queries) and after_stop >= 20:
                    break
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
