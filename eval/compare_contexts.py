"""Passages in context: embed and BM25-index each paragraph bare, with its section heading, or
with its decision's context (authority, category, the Summary's first sentence, the heading),
and compare the three on the tuning questions (cross-validated) and the unseen questions.

    python -m eval.compare_contexts [--contexts bare,heading,decision] [--corpus DIR]

For each context the seeds and the corpus are indexed afresh in a temporary folder, the ranking
function is chosen and fitted on the tuning questions exactly as ``eval.fit_ranker`` does, and
the unseen questions are ranked with those weights. Writes ``eval/results/contexts.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

from eval.check_questions import corpus_dir
from eval.fit_ranker import REPORTED, choose, collect
from eval.run import QUESTIONS, UNSEEN, evaluate, load_questions
from index.config import SEEDS_DIR, StoreConfig
from index.embedder import load_embedder
from index.passage import CONTEXTS
from rag.archive import Archive

RESULTS = Path(__file__).resolve().parent / "results" / "contexts.json"


def measure(context: str, root: Path, embedder, corpus: Path, folds: int) -> dict:
    os.environ["OMBUDSMAN_PASSAGE_CONTEXT"] = context
    archive = Archive(StoreConfig(index_dir=root / context), embedder=embedder)
    start = time.perf_counter()
    report = archive.ingest([SEEDS_DIR, corpus])
    ingest_seconds = time.perf_counter() - start
    samples, _ = collect(archive.retriever, load_questions(QUESTIONS))
    fit = choose(archive.retriever, samples, folds)
    fitted = Archive(StoreConfig(index_dir=root / context), embedder=embedder, ranker=fit.ranker)
    retriever = fitted.retriever
    unseen = evaluate(retriever, load_questions(UNSEEN), set(retriever.catalogue.decisions), ("hybrid",))
    result = unseen.results["hybrid"]
    return {
        "context": context,
        "model": fit.model,
        "C": fit.strength,
        "tuning_cross_validated": {m: round(fit.overall[m], 4) for m in REPORTED},
        "unseen": {m: round(result.overall["unseen"][m], 4) for m in REPORTED},
        "unseen_by_kind": {k: {m: round(v[m], 4) for m in REPORTED} for k, v in result.by_kind["unseen"].items()},
        "ingest_seconds": round(ingest_seconds, 1),
        "windows_embedded": report.embedded_passages,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contexts", default=",".join(CONTEXTS))
    parser.add_argument("--corpus", type=Path, default=corpus_dir())
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--encoder", default="auto")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if not args.corpus.is_dir():
        parser.error(f"no corpus at {args.corpus}; give --corpus DIR or set OMBUDSMAN_CORPUS")
    embedder = load_embedder(args.encoder)
    rows = []
    with tempfile.TemporaryDirectory(prefix="ombudsman-contexts-") as tmp:
        for context in args.contexts.split(","):
            row = measure(context, Path(tmp), embedder, args.corpus, args.folds)
            rows.append(row)
            print(json.dumps(row), flush=True)
    print()
    print("| context | tuning (cross-validated) " + " / ".join(REPORTED) + " | unseen " + " / ".join(REPORTED) + " |")
    print("|---|---|---|")
    for r in rows:
        print(f"| {r['context']} | " + " / ".join(f"{r['tuning_cross_validated'][m]:.3f}" for m in REPORTED)
              + " | " + " / ".join(f"{r['unseen'][m]:.3f}" for m in REPORTED) + " |")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"encoder": embedder.label, "rows": rows}, indent=1) + "\n")
    print(f"\nwrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
