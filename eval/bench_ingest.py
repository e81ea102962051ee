"""Benchmark: ingest rate beside the raw encoder rate on the same texts, in the same run.

    python -m eval.bench_ingest [--encoder auto] [--repeat 1] [--rounds 3] [--out eval/results/ingest-ENCODER.json]

The texts are the seeds and the corpus (``--repeat N`` ingests N renumbered copies of them for a
longer run). Reported: the encoder alone on exactly the windows ingest embeds (paragraphs/s),
a fresh ingest (paragraphs/s, and its share of the raw rate), re-ingesting the unchanged files,
and peak RSS.
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from index.config import PROJECT_ROOT, SEEDS_DIR, StoreConfig
from index.embedder import load_embedder
from index.parse import parse_file
from index.passage import passages_of

CORPUS = PROJECT_ROOT.parent / "shared" / "corpus"


def copies(folder: Path, sources: list[Path], repeat: int) -> None:
    """Write ``repeat`` copies of every source file, each copy under new references."""
    for r in range(repeat):
        for src in sources:
            text = src.read_text(encoding="utf-8")
            text = re.sub(r"\((\d{2}) (\d{3}) (\d{3})([a-z]?)\)", lambda m: f"({int(m.group(1)) + 50 + r:02d} {m.group(2)} {m.group(3)}{m.group(4)})", text, count=1)
            text = re.sub(r"^URL:.*$", "", text, count=1, flags=re.M)
            (folder / f"{r}-{src.name}").write_text(text, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", default="auto")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3,
                        help="alternate encoder-alone and ingest runs this many times; medians are reported")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON results (default eval/results/ingest-ENCODER.json)")
    args = parser.parse_args()
    if not CORPUS.is_dir():
        raise SystemExit(f"the corpus is not at {CORPUS}")
    from rag.archive import Archive

    embedder = load_embedder(args.encoder)
    root = Path(tempfile.mkdtemp(prefix="ombudsman-ingest-"))
    try:
        files = root / "files"
        files.mkdir()
        copies(files, sorted(SEEDS_DIR.glob("*.txt")) + sorted(CORPUS.glob("*.txt")), args.repeat)

        # The encoder alone, on exactly the windows ingest embeds.
        windows = []
        for path in sorted(files.glob("*.txt")):
            for p in passages_of(parse_file(path)):
                windows.extend(embedder.windows(p.embedding_text()))
        embedder.embed(windows[:64])  # warm up

        # A shared machine's speed drifts by 10-20% over minutes, so the two are measured in
        # alternation and compared by their medians.
        raw_rates, reports, again = [], [], None
        for r in range(args.rounds):
            start = time.perf_counter()
            embedder.embed(windows)
            raw_rates.append(len(windows) / (time.perf_counter() - start))
            archive = Archive(StoreConfig(index_dir=root / f"index-{r}"), encoder=embedder.encoder, embedder=embedder)
            archive.store.client  # importing chromadb and opening the folder: a start-up cost, not a rate
            reports.append(archive.ingest([files]))
            if r == 0:
                again = archive.ingest([files])
            shutil.rmtree(root / f"index-{r}", ignore_errors=True)
        raw = statistics.median(raw_rates)
        ingest_rate = statistics.median(rep.rate for rep in reports)
        report = reports[0]
        result = {
            "encoder": embedder.label,
            "decisions": report.count("added"),
            "paragraphs": report.embedded_passages,
            "windows": len(windows),
            "rounds": args.rounds,
            "raw_encoder_paragraphs_per_second": round(raw, 1),
            "ingest_paragraphs_per_second": round(ingest_rate, 1),
            "ingest_share_of_raw_rate": round(ingest_rate / raw, 3),
            "raw_rates": [round(x, 1) for x in raw_rates],
            "ingest_rates": [round(rep.rate, 1) for rep in reports],
            "ingest_seconds": [round(rep.seconds, 2) for rep in reports],
            "ingest_embedding_seconds": [round(rep.embed_seconds, 2) for rep in reports],
            "reingest_unchanged_seconds": round(again.seconds, 3),
            "reingest_embedded_paragraphs": again.embedded_passages,
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        }
    finally:
        shutil.rmtree(root, ignore_errors=True)
    args.out = args.out or PROJECT_ROOT / "eval" / "results" / f"ingest-{embedder.encoder}.json"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
