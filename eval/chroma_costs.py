"""Benchmark: the CPU Chroma takes to write windows and decision records, by the fields they carry.

    python -m eval.chroma_costs [--windows 16384] [--rounds 2]

Windows: adds ``--windows`` random unit vectors, 4,096 at a time, to a fresh collection with the
store's graph settings (``index.store.GRAPH``), once with the two fields schema 3 kept on every
window (its decision's reference and content hash) and once with none, as schema 4 writes them
(with ``upsert``, which schema 4 uses, and with ``add``), and upserted into a graph with the
settings the store used before ``GRAPH`` (10 candidates, 8 links).
Records: writes one record per 5.6 windows (the corpus's decisions), 750 at a time, with schema
4's fields and with the five more schema 3 kept (authority, category, outcome, date, URL), then
marks them done, as ingest does. The layouts alternate for ``--rounds`` rounds. CPU is this
process's (Chroma writes in the caller's threads), which is what an ingest's encoder loses.
"""

from __future__ import annotations

import argparse
import base64
import json
import statistics
import tempfile
import time
import zlib
from contextlib import contextmanager
from typing import Iterator

import numpy as np

from index import config  # noqa: F401  (offline environment first)
from index.store import GRAPH

BATCH = 4096
WINDOWS_PER_DECISION = 6  # about the corpus's paragraphs per decision
RECORD_BATCH = 750  # decisions in an ingest batch of 4,096 windows
# The graph settings the store used before ``GRAPH`` (candidates while building, links per vector).
GRAPH_10_8 = {"ef_construction": 10, "max_neighbors": 8}
SCHEMA_3_ONLY = {"authority": "Example Borough Council", "category": "Adult care services > Charging",
                 "outcome": "Upheld: fault and injustice", "decision_date": "2024-02-01", "url": ""}


@contextmanager
def fresh_collection(name: str, **settings) -> Iterator:
    """A new collection in a Chroma folder of its own, removed afterwards."""
    import chromadb
    from chromadb.config import Settings

    with tempfile.TemporaryDirectory(prefix="ombudsman-chroma-") as folder:
        client = chromadb.PersistentClient(path=folder, settings=Settings(anonymized_telemetry=False))
        yield client.create_collection(name, embedding_function=None, **settings)
        client.clear_system_cache()


def cpu_to_add(windows: int, with_metadata: bool, seed: int, upsert: bool = False, graph: dict = GRAPH) -> float:
    """CPU seconds to add (or upsert) ``windows`` vectors to a new collection in batches of ``BATCH``."""
    rng = np.random.default_rng(seed)
    with fresh_collection("windows", configuration={"hnsw": graph}) as col:
        spent = 0.0
        for start in range(0, windows, BATCH):
            n = min(BATCH, windows - start)
            vectors = rng.standard_normal((n, 384)).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            ids = [f"{start + i}" for i in range(n)]
            metadatas = [{"ref": f"{(start + i) // WINDOWS_PER_DECISION:08d}", "decision_hash": f"{seed:016x}"}
                         for i in range(n)] if with_metadata else None
            before = time.process_time()
            (col.upsert if upsert else col.add)(ids=ids, embeddings=vectors, metadatas=metadatas)
            spent += time.process_time() - before
    return spent


def cpu_to_record(windows: int, schema_3_fields: bool, seed: int) -> float:
    """CPU seconds to write the records of the decisions of ``windows`` windows and mark them done."""
    rng = np.random.default_rng(seed)
    decisions = windows * 10 // 56
    with fresh_collection("records") as col:
        spent = 0.0
        for start in range(0, decisions, RECORD_BATCH):
            ids = [f"{i:08d}" for i in range(start, min(decisions, start + RECORD_BATCH))]
            packed = [base64.b64encode(zlib.compress(rng.bytes(1500))).decode("ascii") for _ in ids]
            metadatas = [{"ref": i, "content_hash": f"{seed:016x}", "source": f"/decisions/{i}.txt", "status": "writing",
                          "paragraphs": WINDOWS_PER_DECISION, "window_ids": "summary,1-5", "written": f"{seed:032x}",
                          "json": text, **(SCHEMA_3_ONLY if schema_3_fields else {})} for i, text in zip(ids, packed)]
            before = time.process_time()
            col.upsert(ids=ids, embeddings=[[1.0]] * len(ids), metadatas=metadatas)
            col.update(ids=ids, metadatas=[{"status": "done"} for _ in ids])
            spent += time.process_time() - before
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=16_384)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    runs = {
        "windows_with_reference_and_hash": lambda r: cpu_to_add(args.windows, True, seed=r),
        "windows_without_metadata": lambda r: cpu_to_add(args.windows, False, seed=r),
        "windows_upserted_without_metadata": lambda r: cpu_to_add(args.windows, False, seed=r, upsert=True),
        "windows_upserted_with_graph_10_8": lambda r: cpu_to_add(args.windows, False, seed=r, upsert=True,
                                                                  graph={**GRAPH, **GRAPH_10_8}),
        "records_with_schema_3_fields": lambda r: cpu_to_record(args.windows, True, seed=r),
        "records_with_schema_4_fields": lambda r: cpu_to_record(args.windows, False, seed=r),
    }
    cpu: dict[str, list[float]] = {name: [] for name in runs}
    for r in range(args.rounds):
        for name, run in runs.items():
            cpu[name].append(run(r))
            print(f"round {r + 1}: {name}: {cpu[name][-1]:.2f} s of CPU", flush=True)
    print(json.dumps({"windows": args.windows, "rounds": args.rounds,
                      **{f"cpu_seconds_{k}": round(statistics.median(v), 2) for k, v in cpu.items()}}, indent=2))


if __name__ == "__main__":
    main()
