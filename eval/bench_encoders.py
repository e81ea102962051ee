"""Encoder benchmark: speed of each embedding backend, and how close its vectors are to torch's,
measured on the same texts in one run (the machines are shared and noisy: compare within a run).

    .venv/bin/python -m eval.bench_encoders [--out eval/results/encoders.json] [--repeats 3]

Texts: every paragraph of the shared corpus (``OMBUDSMAN_CORPUS`` or ``../shared/corpus``, skipped
with a message when absent) and of the seeds; questions: 50 from ``eval/questions.jsonl``.
Prints a Markdown table and writes the numbers as JSON.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from index import config
from index.embedder import ENCODERS, Embedder, load_embedder
from index.onnx_encoder import cpu_supports_int8
from index.parse import parse_file

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "encoders.json"
QUESTIONS = Path(__file__).resolve().parent / "questions.jsonl"
CORPUS_DIR = Path(os.environ.get("OMBUDSMAN_CORPUS", config.PROJECT_ROOT.parent / "shared" / "corpus"))


def paragraphs(corpus_dir: Path, seeds_dir: Path = config.SEEDS_DIR) -> tuple[list[str], list[str]]:
    """The paragraph texts of every ``.txt`` decision in the corpus and the seeds, and notes on what was read."""
    seeds = sorted(seeds_dir.glob("*.txt"))
    notes = [f"{len(seeds)} seed decisions from {seeds_dir}"]
    corpus: list[Path] = []
    if corpus_dir.is_dir():
        corpus = sorted(corpus_dir.glob("*.txt"))
        notes.append(f"{len(corpus)} decisions from {corpus_dir}")
    else:
        notes.append(f"no corpus at {corpus_dir} (set OMBUDSMAN_CORPUS or --corpus): seeds only")
    files = corpus + seeds
    texts = [p.text for path in files for p in parse_file(path).paragraphs]
    return texts, notes


def questions(n: int = 50, path: Path = QUESTIONS) -> list[str]:
    """``n`` questions spread evenly over the eval set (its order groups them by kind)."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    step = max(1, len(rows) // n)
    return [r["question"] for r in rows[::step]][:n]


def rate(embedder: Embedder, texts: list[str], batch_size: int) -> tuple[float, np.ndarray]:
    """Paragraphs per second over ``texts`` in batches of ``batch_size``, and the vectors."""
    started = time.perf_counter()
    vectors = embedder.embed(texts, batch_size=batch_size)
    return len(texts) / (time.perf_counter() - started), vectors


def question_times_ms(embedder: Embedder, qs: list[str]) -> list[float]:
    """Milliseconds to embed each question on its own, as a search does."""
    out = []
    for q in qs:
        started = time.perf_counter()
        embedder.embed_query(q)
        out.append((time.perf_counter() - started) * 1000)
    return out


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def run(encoders: tuple[str, ...], texts: list[str], qs: list[str], batch_sizes: tuple[int, ...],
        repeats: int) -> list[dict]:
    """Measure every encoder; rounds alternate between encoders so that noise hits them alike."""
    loaded: dict[str, Embedder] = {}
    load_s: dict[str, float] = {}
    for name in encoders:
        started = time.perf_counter()
        loaded[name] = load_embedder(name)
        load_s[name] = time.perf_counter() - started
        loaded[name].embed(texts[:32])  # warm up: first runs allocate and pick kernels
        question_times_ms(loaded[name], qs[:5])

    rates: dict[tuple[str, int], list[float]] = {}
    vectors: dict[str, np.ndarray] = {}
    q_ms: dict[str, list[float]] = {name: [] for name in encoders}
    for _ in range(repeats):
        for batch_size in batch_sizes:
            for name in encoders:
                r, v = rate(loaded[name], texts, batch_size)
                rates.setdefault((name, batch_size), []).append(r)
                vectors.setdefault(name, v)
        for name in encoders:
            q_ms[name] += question_times_ms(loaded[name], qs)

    reference = vectors.get("torch")
    q_reference = loaded["torch"].embed([*qs], batch_size=1) if "torch" in loaded else None
    results = []
    for name in encoders:
        tokens = [loaded[name].count_model_tokens(t) for t in texts]
        row = {
            "encoder": name,
            "label": loaded[name].label,
            "load_s": round(load_s[name], 2),
            "paragraphs": len(texts),
            "median_tokens": float(statistics.median(tokens)),
            "share_over_window": round(sum(n > loaded[name].max_tokens - 2 for n in tokens) / len(tokens), 4),
            "paragraphs_per_s": {str(b): round(statistics.median(rates[(name, b)]), 1) for b in batch_sizes},
            "paragraphs_per_s_runs": {str(b): [round(r, 1) for r in rates[(name, b)]] for b in batch_sizes},
            "question_ms_p50": round(percentile(q_ms[name], 50), 2),
            "question_ms_p95": round(percentile(q_ms[name], 95), 2),
            "questions": len(qs),
        }
        if reference is not None:
            cos = (vectors[name] * reference).sum(axis=1)
            q_vectors = np.vstack([loaded[name].embed_query(q) for q in qs])
            q_cos = (q_vectors * q_reference).sum(axis=1)
            row |= {
                "cosine_to_torch_min": round(float(cos.min()), 5),
                "cosine_to_torch_mean": round(float(cos.mean()), 5),
                "question_cosine_to_torch_min": round(float(q_cos.min()), 5),
            }
        results.append(row)
    return results


def table(results: list[dict], batch_sizes: tuple[int, ...]) -> str:
    torch_row = next((r for r in results if r["encoder"] == "torch"), None)
    best = str(max(batch_sizes))
    head = ["encoder", *[f"paragraphs/s (batch {b})" for b in batch_sizes], f"vs torch (batch {best})",
            "median tokens", "question p50 ms", "question p95 ms", "cos to torch min", "cos mean"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        speed = r["paragraphs_per_s"]
        vs = f"{speed[best] / torch_row['paragraphs_per_s'][best]:.2f}x" if torch_row else "-"
        cells = [r["encoder"], *[f"{speed[str(b)]:.1f}" for b in batch_sizes], vs, f"{r['median_tokens']:.0f}",
                 f"{r['question_ms_p50']:.2f}", f"{r['question_ms_p95']:.2f}",
                 f"{r.get('cosine_to_torch_min', float('nan')):.4f}",
                 f"{r.get('cosine_to_torch_mean', float('nan')):.4f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def machine() -> dict:
    import onnxruntime
    import torch

    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    int8, why = cpu_supports_int8()
    return {
        "cpu": model or platform.processor(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "int8_supported": int8, "int8_reason": why, "python": platform.python_version(),
        "torch": torch.__version__, "onnxruntime": onnxruntime.__version__,
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eval.bench_encoders", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON results (default {DEFAULT_OUT})")
    parser.add_argument("--corpus", type=Path, default=CORPUS_DIR, help=f"decisions folder (default {CORPUS_DIR})")
    parser.add_argument("--encoders", default=",".join(ENCODERS), help="comma-separated (default: all)")
    parser.add_argument("--batch-sizes", default="16,32", help="comma-separated (default 16,32)")
    parser.add_argument("--repeats", type=int, default=3, help="rounds over all paragraphs; medians (default 3)")
    parser.add_argument("--questions", type=int, default=50, help="questions timed one by one (default 50)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    encoders = tuple(e.strip() for e in args.encoders.split(",") if e.strip())
    unknown = [e for e in encoders if e not in ENCODERS]
    if unknown:
        parser.error(f"unknown encoders {unknown}; choose from {', '.join(ENCODERS)}")
    batch_sizes = tuple(int(b) for b in args.batch_sizes.split(","))
    texts, notes = paragraphs(args.corpus)
    for note in notes:
        print(note, file=sys.stderr)
    qs = questions(args.questions)
    print(f"{len(texts)} paragraphs, {len(qs)} questions, {args.repeats} rounds", file=sys.stderr)

    started = time.perf_counter()
    results = run(encoders, texts, qs, batch_sizes, args.repeats)
    report = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine(),
        "texts": {"paragraphs": len(texts), "questions": len(qs), "notes": notes},
        "batch_sizes": list(batch_sizes),
        "repeats": args.repeats,
        "seconds": round(time.perf_counter() - started, 1),
        "results": results,
    }
    write_json(args.out, report)
    print(table(results, batch_sizes))
    m = report["machine"]
    print(f"\n{m['cpu']}, {m['cores']} cores, load average {m['load_average']}; int8: {m['int8_reason']}. "
          f"Medians of {args.repeats} rounds. JSON: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
