"""Benchmark: the CPU Chroma takes to add window vectors, with and without metadata on each window.

    python -m eval.chroma_costs [--windows 16384] [--rounds 2]

Adds ``--windows`` random unit vectors, 4,096 at a time, to a fresh collection with the store's
graph settings (``index.store.GRAPH``), once with the two fields schema 3 kept on every window
(its decision's reference and content hash) and once with none, as schema 4 writes them; the
layouts alternate for ``--rounds`` rounds. CPU is this process's (Chroma writes in the caller's
threads), which is what an ingest's encoder loses to the writes.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time

import numpy as np

from index import config  # noqa: F401  (offline environment first)
from index.store import GRAPH

BATCH = 4096
WINDOWS_PER_DECISION = 6  # about the corpus's paragraphs per decision


def cpu_to_add(windows: int, with_metadata: bool, seed: int) -> float:
    """CPU seconds to add ``windows`` vectors to a new collection in batches of ``BATCH``."""
    import chromadb
    from chromadb.config import Settings

    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory(prefix="ombudsman-chroma-") as folder:
        client = chromadb.PersistentClient(path=folder, settings=Settings(anonymized_telemetry=False))
        col = client.create_collection("windows", embedding_function=None, configuration={"hnsw": GRAPH})
        spent = 0.0
        for start in range(0, windows, BATCH):
            n = min(BATCH, windows - start)
            vectors = rng.standard_normal((n, 384)).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            ids = [f"{start + i}" for i in range(n)]
            metadatas = [{"ref": f"{(start + i) // WINDOWS_PER_DECISION:08d}", "decision_hash": f"{seed:016x}"}
                         for i in range(n)] if with_metadata else None
            before = time.process_time()
            col.add(ids=ids, embeddings=vectors, metadatas=metadatas)
            spent += time.process_time() - before
        client.clear_system_cache()
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=16_384)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    cpu: dict[str, list[float]] = {"reference_and_hash": [], "none": []}
    for r in range(args.rounds):
        for name in cpu:
            cpu[name].append(cpu_to_add(args.windows, name != "none", seed=r))
            print(f"round {r + 1}: {name}: {cpu[name][-1]:.2f} s of CPU", flush=True)
    print(json.dumps({"windows": args.windows, "rounds": args.rounds,
                      **{f"cpu_seconds_{k}": round(statistics.median(v), 2) for k, v in cpu.items()}}, indent=2))


if __name__ == "__main__":
    main()
