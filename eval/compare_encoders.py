"""The encoder quality gate: the eval suite run with each encoder, side by side, in one run.

    python -m eval.compare_encoders [--encoders torch,onnx,onnx-int8] [--out eval/results/encoder_eval.json]

For each encoder a fresh index of the seeds and the corpus is built (timing the ingest), then the
question set is run with every retriever. An encoder passes the gate when its hybrid Recall@5 and
MRR@10 are within ``TOLERANCE`` of torch's (the reference backend).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from eval.run import evaluate, load_questions
from index.config import PROJECT_ROOT, SEEDS_DIR, StoreConfig
from index.embedder import ENCODERS, load_embedder

CORPUS = PROJECT_ROOT.parent / "shared" / "corpus"
TOLERANCE = 0.01


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoders", default=",".join(ENCODERS))
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "eval" / "results" / "encoder_eval.json")
    args = parser.parse_args()
    if not CORPUS.is_dir():
        raise SystemExit(f"the corpus is not at {CORPUS}")
    from rag.archive import Archive

    questions = load_questions()
    rows = []
    root = Path(tempfile.mkdtemp(prefix="ombudsman-encoders-"))
    try:
        for name in args.encoders.split(","):
            embedder = load_embedder(name)
            archive = Archive(StoreConfig(index_dir=root / name), encoder=name, embedder=embedder)
            report = archive.ingest([SEEDS_DIR, CORPUS])
            retriever = archive.retriever
            ev = evaluate(retriever, questions, set(retriever.catalogue.decisions))
            times = []
            for q in questions[:60]:
                t = time.perf_counter()
                embedder.embed_query(q.question)
                times.append((time.perf_counter() - t) * 1000)
            rows.append({
                "encoder": name,
                "ingest_paragraphs_per_second": round(report.rate, 1),
                "question_embedding_ms_p50": round(statistics.median(times), 2),
                "retrievers": {k: {m: round(v, 4) for m, v in r.overall.items()} for k, r in ev.results.items()},
            })
            print(json.dumps(rows[-1]), flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    reference = next((r for r in rows if r["encoder"] == "torch"), rows[0])
    for r in rows:
        h, ref = r["retrievers"]["hybrid"], reference["retrievers"]["hybrid"]
        r["passes_gate"] = all(h[m] >= ref[m] - TOLERANCE for m in ("recall@5", "mrr@10"))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"tolerance": TOLERANCE, "rows": rows}, indent=2) + "\n")
    print("\n| encoder | hybrid Recall@5 | hybrid MRR@10 | dense Recall@5 | dense MRR@10 | ingest paragraphs/s | question ms p50 | gate |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        h, d = r["retrievers"]["hybrid"], r["retrievers"]["dense"]
        print(f"| {r['encoder']} | {h['recall@5']:.3f} | {h['mrr@10']:.3f} | {d['recall@5']:.3f} | {d['mrr@10']:.3f} | "
              f"{r['ingest_paragraphs_per_second']} | {r['question_embedding_ms_p50']} | {'pass' if r['passes_gate'] else 'FAIL'} |")


if __name__ == "__main__":
    main()
