"""Benchmark: opening, searching and answering at archive-like sizes.

    python -m eval.bench_search [--sizes 10000,100000] [--encoder auto] [--keep DIR]
                                [--out eval/results/search.json]

For each size a local index is filled with synthetic decisions recombined from the corpus (see
``eval.synthetic``); with ``--keep DIR`` the index of each size is kept in ``DIR/index-SIZE`` and a
later run reuses it (a fill that stopped resumes where it stopped). Then a fresh process, as
``serve`` would be, opens the index and answers a first question (timed from its start), and
searches every question of the eval set (hybrid, k=10), without filters and with each kind of
filter; its peak RSS is the serving process's. Reported: fill time, first answer after start,
RSS after open, search p50/p95 (whole search, and per filter), ``ask`` p50, index size on disk,
and the share of exact dense search's 100 nearest passages the clustered search finds.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from index.config import PROJECT_ROOT, SEEDS_DIR, StoreConfig

CORPUS = PROJECT_ROOT.parent / "shared" / "corpus"
ASKED = 40  # questions answered for ask latency
RECALL_QUESTIONS = 20  # questions whose dense search is compared with exact search


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def peak_rss_mb() -> float:
    """This process's peak resident memory since it started its program (``VmHWM``). Not
    ``getrusage``'s ``ru_maxrss``: Linux carries the parent's peak over into a child it starts,
    so a measuring process started after a fill of 1.5 million paragraphs reported the filler's
    gigabytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def folder_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def fill_index(folder: Path, size: int, encoder: str) -> tuple[int, float]:
    """Fill (or finish filling) the index at ``folder`` to about ``size`` paragraphs."""
    from eval.synthetic import Recombiner, fill, real_decisions
    from index.embedder import load_embedder
    from index.store import Store, StoreError

    store = Store(StoreConfig(index_dir=folder))
    try:
        if store.exists():
            store.passages_collection()  # checks the layout: a kept index may be of an older one
    except StoreError as e:
        raise SystemExit(f"{folder}: {e}; remove the folder to fill it again") from None
    have = store.counts() if store.exists() else (0, 0)
    if have[1] >= size:
        print(f"  {size:,}: reusing the index at {folder} ({have[1]:,} paragraphs)", file=sys.stderr, flush=True)
        return have[1], 0.0
    for ref, record in (store.records() if store.exists() else {}).items():
        if not record.complete:
            store.delete_decision(ref)  # a fill stopped mid-batch: that batch is made again
    embedder = load_embedder(encoder)
    recombiner = Recombiner(real_decisions([SEEDS_DIR, CORPUS]), embedder)
    start = time.perf_counter()
    step, shown = max(size // 20, 1), [have[1]]

    def progress(done: int) -> None:
        if done // step != shown[0] // step or done >= size:
            shown[0] = done
            rate = (done - have[1]) / max(time.perf_counter() - start, 1e-9)
            print(f"  {size:,}: {done:,} paragraphs stored, {rate:.0f}/s", file=sys.stderr, flush=True)

    n = fill(store, recombiner, size, embedder.label, progress=progress, start=(have[1], have[0]))
    return n, time.perf_counter() - start


def measure(folder: Path, encoder: str, questions_file: str) -> dict:
    """Run in a fresh process: open the index as ``serve`` does, answer, search; timings from start."""
    started = time.perf_counter()
    from eval.run import load_questions
    from rag.answer import Answerer
    from rag.archive import Archive
    from rag.retriever import Filters

    archive = Archive(StoreConfig(index_dir=folder), encoder=encoder)
    answerer = Answerer(archive)
    answerer.answer("Why did the Ombudsman not investigate the complaint about the council's delay?")
    first_answer_s = time.perf_counter() - started
    retriever = archive.retriever
    open_rss = rss_mb()
    questions = [q.question for q in (load_questions(Path(questions_file)) if questions_file else load_questions())]
    cat = retriever.catalogue
    authority = max(cat.by_authority, key=lambda a: len(cat.by_authority[a]))
    outcome = max(cat.by_outcome, key=lambda o: len(cat.by_outcome[o]))
    year = max({d["decision_date"][:4] for d in cat.decisions.values() if d["decision_date"]})
    filters = {
        "none": Filters(),
        "authority": Filters(authority=authority),
        "outcome": Filters(outcome=outcome),
        "date_range": Filters(since=date(int(year), 1, 1), until=date(int(year), 6, 30)),
    }
    def phase(name: str) -> None:
        print(f"    {name}: {time.perf_counter() - started:.1f} s, peak RSS {peak_rss_mb():.0f} MB", file=sys.stderr, flush=True)

    phase("opened and answered")
    embed_ms: list[float] = []
    per_filter: dict[str, list[float]] = {k: [] for k in filters}
    for q in questions:
        t = time.perf_counter()
        retriever.embedder.embed_query(q)
        embed_ms.append((time.perf_counter() - t) * 1000)
        for name, f in filters.items():
            t = time.perf_counter()
            retriever.search(q, k=10, filters=f)
            per_filter[name].append((time.perf_counter() - t) * 1000)
    phase("searched")
    ask_ms = []
    for q in questions[:ASKED]:
        t = time.perf_counter()
        answerer.answer(q)
        ask_ms.append((time.perf_counter() - t) * 1000)
    phase("answered")
    peak = peak_rss_mb()  # the serving process's; the exact search below is the benchmark's own
    recall = []
    import numpy as np

    from rag.parameters import DENSE_PROBES

    everything = np.flatnonzero(cat.live)
    for q in questions[:RECALL_QUESTIONS]:
        v = retriever.question_vector(q)
        exact = {p for p, _ in cat.exact_nearest(v, everything, 100)}
        found = {p for p, _ in cat.nearest(v, 100, DENSE_PROBES)}
        recall.append(len(exact & found) / max(len(exact), 1))
    search_ms = per_filter["none"]
    return {
        "paragraphs": int(cat.live.sum()),
        "segments": len(cat.segments),
        "first_answer_after_start_seconds": round(first_answer_s, 2),
        "open_and_first_search_seconds": round(first_answer_s, 2),
        "rss_after_open_mb": round(open_rss, 1),
        "question_embedding_ms_p50": round(statistics.median(embed_ms), 2),
        "search_ms_p50": round(statistics.median(search_ms), 2),
        "search_ms_p95": round(percentile(search_ms, 0.95), 2),
        "search_ms_by_filter": {k: {"p50": round(statistics.median(v), 2), "p95": round(percentile(v, 0.95), 2),
                                    "filter": str(filters[k])} for k, v in per_filter.items()},
        "ask_ms_p50": round(statistics.median(ask_ms), 1),
        "dense_recall_at_100": round(statistics.mean(recall), 3),
        "peak_rss_mb": round(peak, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--encoder", default="auto")
    parser.add_argument("--keep", type=Path, default=None, help="keep (and reuse) the filled indexes here")
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "eval" / "results" / "search.json")
    parser.add_argument("--set", default="", help="questions to search (default: the tuning questions)")
    parser.add_argument("--measure", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.encoder, args.set)))
        return
    if not CORPUS.is_dir():
        raise SystemExit(f"the corpus is not at {CORPUS}: this benchmark recombines its paragraphs")
    root = args.keep or Path(tempfile.mkdtemp(prefix="ombudsman-bench-"))
    previous = json.loads(args.out.read_text()) if args.out.exists() else {}
    results = {"encoder": "", "questions": 0, "sizes": []}
    try:
        for size in (int(s) for s in args.sizes.split(",")):
            folder = root / f"index-{size}"
            n, fill_s = fill_index(folder, size, args.encoder)
            print(f"  {size:,}: measuring in a fresh process", file=sys.stderr, flush=True)
            got = subprocess.run([sys.executable, "-m", "eval.bench_search", "--measure", str(folder),
                                  "--encoder", args.encoder, "--set", args.set],
                                 stdout=subprocess.PIPE, text=True, cwd=PROJECT_ROOT, env=os.environ.copy())
            if got.returncode != 0:
                raise SystemExit(f"measuring {folder} failed (its errors are above)")
            row = {**json.loads(got.stdout.strip().splitlines()[-1]), "index_mb": round(folder_mb(folder), 1)}
            if fill_s:
                row["fill_seconds"] = round(fill_s, 1)
            results["sizes"].append(row)
            print(json.dumps(row), flush=True)
            if args.keep is None:
                shutil.rmtree(folder, ignore_errors=True)
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    from index.embedder import label_for

    results["encoder"] = label_for(args.encoder) if args.encoder != "auto" else previous.get("encoder", "auto")
    from eval.run import load_questions

    results["questions"] = len(load_questions(Path(args.set)) if args.set else load_questions())
    sizes = {r["paragraphs"]: r for r in previous.get("sizes", [])}  # other sizes' rows are kept
    for r in results["sizes"]:
        sizes = {p: x for p, x in sizes.items() if abs(p - r["paragraphs"]) > r["paragraphs"] * 0.01}
        sizes[r["paragraphs"]] = r
    results["sizes"] = [sizes[p] for p in sorted(sizes)]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))


def table(results: dict) -> str:
    """The README's table of these results."""
    lines = ["| paragraphs | first answer after start | search p50 / p95 ms: no filter · authority · outcome · dates "
             "| ask p50 ms | RSS after open / peak MB | index on disk MB |", "|---|---|---|---|---|---|"]
    for r in results["sizes"]:
        f = r.get("search_ms_by_filter", {})
        per = " · ".join(f"{f[k]['p50']:.0f} / {f[k]['p95']:.0f}" for k in ("none", "authority", "outcome", "date_range") if k in f)
        per = per or f"{r['search_ms_p50']} / {r['search_ms_p95']}"
        first = r.get("first_answer_after_start_seconds", r["open_and_first_search_seconds"])
        lines.append(f"| {r['paragraphs']:,} | {first} s | {per} | {r['ask_ms_p50']} "
                     f"| {r.get('rss_after_open_mb', '?')} / {r['peak_rss_mb']} | {r['index_mb']} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
