"""Benchmark: how soon a serving process answers from a decision another process wrote to the store.

    python -m eval.bench_reconcile --keep DIR [--size 1500000] [--rounds 3] [--encoder auto]

The synthetic index of ``eval.bench_search`` (``DIR/index-SIZE``, filled there if absent) is
copied beside it. This process opens the copy as ``serve`` does and answers a question; then, as
another process sharing the store would, a second ``Store`` writes one new decision (it does not
touch this process's catalogue). Timed: from this process noticing the store changed to its next
search, which finds the new decision's paragraphs. Alternately the catalogue has taken in the store's change
log (a reconciliation reads the records the log names since) and has taken in none (it reads
every record, as every reconciliation did before the log). Medians of ``--rounds`` of each; the
copy is removed at the end. Results in ``eval/results/reconcile.json``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import time
from pathlib import Path

from eval.bench_ingest import CORPUS
from eval.bench_search import fill_index
from index.config import PROJECT_ROOT, StoreConfig
from index.embedder import load_embedder
from index.ingest import embedded
from index.parse import parse_text
from index.store import Store

NEW_DECISION = """Example Borough Council ({ref})

Category : Adult care services > Charging

Decision : Upheld

Decision date : 02 Mar 2025

Summary: Mr {name} complained the Council charged him £{amount} for respite care it never arranged.

The complaint

  1. Mr {name} complains the Council charged him £{amount} for respite care that it never arranged.

Final decision

  1. {name} was charged in error: the Council was at fault and has agreed to refund £{amount}.
"""
# A name per new decision, so that no two have paragraphs opening alike: three decisions whose
# paragraphs open with the same words make those paragraphs boilerplate, which searches pass over.
NAMES = ["Adams", "Baker", "Clarke", "Dixon", "Evans", "Fisher", "Green", "Hughes", "Irving", "Jones", "Khan",
         "Lewis", "Morgan", "Norris", "Owens", "Patel", "Quinn", "Reid", "Shaw", "Turner", "Usher"]


def write_elsewhere(folder: Path, ref: str, n: int, embedder) -> None:
    """``ref`` written to the store by another ``Store``, as another process's ingest would."""
    d = parse_text(NEW_DECISION.format(ref=ref, name=NAMES[n % len(NAMES)], amount=100 + n))
    Store(StoreConfig(index_dir=folder)).write_decisions([embedded(d, embedder)], embedder.label)


def forget_the_log(folder: Path) -> None:
    """Make the copy's catalogue one that has taken in no change (as before the log)."""
    path = folder / "catalogue" / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest.pop("changes", None)
    path.write_text(json.dumps(manifest))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, required=True, help="where eval.bench_search keeps its indexes")
    parser.add_argument("--size", type=int, default=1_500_000)
    parser.add_argument("--rounds", type=int, default=3, help=f"at most {(len(NAMES) - 1) // 2}")
    parser.add_argument("--encoder", default="auto")
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "eval" / "results" / "reconcile.json")
    args = parser.parse_args()
    if not 1 <= args.rounds <= (len(NAMES) - 1) // 2:
        raise SystemExit(f"--rounds must be 1 to {(len(NAMES) - 1) // 2}")
    if not CORPUS.is_dir():
        raise SystemExit(f"the corpus is not at {CORPUS}")
    from rag.archive import Archive

    kept = args.keep / f"index-{args.size}"
    fill_index(kept, args.size, args.encoder)
    copy = args.keep / f"reconcile-{args.size}"
    shutil.rmtree(copy, ignore_errors=True)
    print(f"copying {kept} to {copy}", flush=True)
    shutil.copytree(kept, copy)
    embedder = load_embedder(args.encoder)
    seconds: dict[str, list[float]] = {"log": [], "every_record": []}
    try:
        archive = Archive(StoreConfig(index_dir=copy), encoder=embedder.encoder, embedder=embedder)
        archive.retriever.search("respite care charges", k=10)
        paragraphs = len(archive.retriever.catalogue.passages)
        n = 0
        # The first round takes in the log whatever the catalogue had taken in: not timed.
        for way in ["warm-up"] + ["every_record", "log"] * args.rounds:
            n += 1
            ref = f"99 {n:03d} 001"
            if way == "every_record":
                forget_the_log(copy)
            write_elsewhere(copy, ref, n, embedder)
            start = time.perf_counter()
            assert archive.refresh_if_changed(every=0), "the write went unnoticed"
            hits = archive.retriever.search("charged for respite care it never arranged", k=3, within={ref})
            took = time.perf_counter() - start
            if not hits:
                raise SystemExit(f"round {n}: a search of {ref} found nothing")
            print(f"  {way}: {ref} answered {took:.2f} s after the change was noticed", flush=True)
            if way in seconds:
                seconds[way].append(round(took, 3))
    finally:
        shutil.rmtree(copy, ignore_errors=True)
    result = {"encoder": embedder.label, "paragraphs": paragraphs, "rounds": args.rounds,
              **{f"seconds_{way}": runs for way, runs in seconds.items()},
              **{f"median_seconds_{way}": statistics.median(runs) for way, runs in seconds.items()}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
