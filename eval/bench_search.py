"""Benchmark: search latency at archive-like sizes, beside the time to embed one question.

    python -m eval.bench_search [--sizes 10000,100000] [--encoder auto] [--out eval/results/search.json]

For each size a fresh local index is filled with synthetic decisions recombined from the corpus
(see ``eval.synthetic``), then every question of the eval set is searched (hybrid, k=10). Reported:
search latency p50/p95 (whole search, and without the question embedding), question embedding
p50, ``ask`` latency when the answerer is available, fill time, index size on disk and peak RSS.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from index.config import PROJECT_ROOT, SEEDS_DIR, StoreConfig
from index.embedder import load_embedder
from index.catalogue import refresh
from index.store import Store
from eval.run import load_questions
from eval.synthetic import Recombiner, fill, real_decisions

CORPUS = PROJECT_ROOT.parent / "shared" / "corpus"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def folder_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def measure(size: int, recombiner: Recombiner, embedder, questions: list[str], root: Path) -> dict:
    from rag.archive import Archive

    folder = root / f"index-{size}"
    store = Store(StoreConfig(index_dir=folder))
    start = time.perf_counter()
    step, shown = max(size // 10, 1), [0]

    def progress(done: int) -> None:
        if done // step != shown[0] // step or done >= size:
            shown[0] = done
            print(f"  {size:,}: {done:,} paragraphs stored in {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)

    n = fill(store, recombiner, size, embedder.label, progress=progress)
    fill_s = time.perf_counter() - start
    start = time.perf_counter()
    refresh(store, force=True)
    lexical_s = time.perf_counter() - start

    archive = Archive(StoreConfig(index_dir=folder), encoder=embedder.encoder, embedder=embedder)
    retriever = archive.retriever
    start = time.perf_counter()
    retriever.search("warm up: open the store and load the catalogue")
    open_s = time.perf_counter() - start

    embed_ms, search_ms = [], []
    for q in questions:
        t = time.perf_counter()
        embedder.embed_query(q)
        embed_ms.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        retriever.search(q, k=10)
        search_ms.append((time.perf_counter() - t) * 1000)
    retrieval_ms = [s - e for s, e in zip(search_ms, embed_ms)]

    ask_ms: list[float] = []
    try:
        from rag.answer import Answerer

        answerer = Answerer(archive)
        for q in questions[:40]:
            t = time.perf_counter()
            answerer.answer(q)
            ask_ms.append((time.perf_counter() - t) * 1000)
    except ImportError:
        pass
    return {
        "paragraphs": n,
        "fill_seconds": round(fill_s, 1),
        "lexical_build_seconds": round(lexical_s, 1),
        "open_and_first_search_seconds": round(open_s, 2),
        "question_embedding_ms_p50": round(statistics.median(embed_ms), 2),
        "search_ms_p50": round(statistics.median(search_ms), 2),
        "search_ms_p95": round(percentile(search_ms, 0.95), 2),
        "retrieval_without_embedding_ms_p50": round(statistics.median(retrieval_ms), 2),
        "retrieval_without_embedding_ms_p95": round(percentile(retrieval_ms, 0.95), 2),
        "ask_ms_p50": round(statistics.median(ask_ms), 1) if ask_ms else None,
        "index_mb": round(folder_mb(folder), 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--encoder", default="auto")
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "eval" / "results" / "search.json")
    parser.add_argument("--set", type=Path, default=None, help="questions to search (default: the tuning questions)")
    args = parser.parse_args()
    if not CORPUS.is_dir():
        raise SystemExit(f"the corpus is not at {CORPUS}: this benchmark recombines its paragraphs")
    embedder = load_embedder(args.encoder)
    questions = [q.question for q in (load_questions(args.set) if args.set else load_questions())]
    recombiner = Recombiner(real_decisions([SEEDS_DIR, CORPUS]), embedder)
    root = Path(tempfile.mkdtemp(prefix="ombudsman-bench-"))
    results = {"encoder": embedder.label, "questions": len(questions), "sizes": []}
    try:
        for size in (int(s) for s in args.sizes.split(",")):
            row = measure(size, recombiner, embedder, questions, root)
            results["sizes"].append(row)
            print(json.dumps(row), flush=True)
            shutil.rmtree(root / f"index-{size}", ignore_errors=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\n{results['encoder']}, {results['questions']} questions, hybrid k=10")
    print("| paragraphs | search p50 / p95 ms | retrieval without embedding p50 / p95 ms | question embedding p50 ms | ask p50 ms | index MB | peak RSS MB |")
    print("|---|---|---|---|---|---|---|")
    for r in results["sizes"]:
        print(f"| {r['paragraphs']:,} | {r['search_ms_p50']} / {r['search_ms_p95']} | "
              f"{r['retrieval_without_embedding_ms_p50']} / {r['retrieval_without_embedding_ms_p95']} | "
              f"{r['question_embedding_ms_p50']} | {r['ask_ms_p50']} | {r['index_mb']} | {r['peak_rss_mb']} |")


if __name__ == "__main__":
    main()
