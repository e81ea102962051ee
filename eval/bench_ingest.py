"""Benchmark: ingest rate beside the raw encoder rate on the same texts, in the same run.

    python -m eval.bench_ingest [--encoder auto] [--repeat 20] [--rounds 4] [--also-with VAR=VALUE]
                                [--out eval/results/ingest-ENCODER.json]
    python -m eval.bench_ingest --additions 10000,1500000 --keep DIR [--rounds 2]

The texts are the seeds and the corpus, ``--repeat N`` renumbered copies of them. The default, 20
copies (3,000 decisions, 16,780 paragraphs, about nine minutes with four rounds), measures the rate
an archive is ingested at: an ingest of 750 files or more runs the model in a child process, and
what a short ingest costs beyond the encoder is largely its start (parsing the first files before
the encoder has anything to do) and its end (writing the last batch), which a long one spreads
over many paragraphs (one copy, 150 files, ``--repeat 1``: 0.85 to 0.86 of the encoder-alone
rate). Reported: the encoder alone on exactly the windows ingest embeds (paragraphs/s), a fresh
ingest (paragraphs/s, and its share of the raw rate), re-ingesting the unchanged files, and peak
RSS. Results go to ``eval/results/ingest-ENCODER.json``, or ``ingest-ENCODER-repeat-N.json`` for
another ``--repeat``. The headline share is the median ingest rate over the median encoder-alone
rate; beside it, each round's ingest against the mean of the encoder-alone runs on either side of
it (one more runs after the last round), which cancels the machine's steady drift within a round,
and the CPU each ingest took in its own process and in the encoder's child, which show where the
time went when the rates move with the machine.

``--also-with VAR=VALUE`` compares a setting read from the environment when an ingest starts
(``OMBUDSMAN_INGEST_BATCH=2048``, ``OMBUDSMAN_LAST_BATCH=512``): every round also ingests with the
variable set, the two ingests in turn (which goes first alternates), and reports that ingest's
share beside the other's, round by round: two runs of the same code move by 3 to 4 points of
share, so a setting is compared within rounds, not across runs. Results go to
``ingest-ENCODER-also-VAR-VALUE.json`` unless ``--out`` says otherwise.

``--additions`` measures instead what adding 1,000 decisions (renumbered copies of the corpus's)
costs an index of each size: the synthetic index of ``eval.bench_search`` (filled once in
``DIR/index-SIZE`` and reused) is copied, the decisions are ingested into the copy, and the copy
is removed; the sizes alternate for ``--rounds`` rounds and medians are reported, with the ratio
of the largest to the smallest (results in ``eval/results/additions.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from index.config import PROJECT_ROOT, SEEDS_DIR, StoreConfig
from index.embedder import load_embedder
from index.ingest import Batching, cut
from index.parse import parse_file

CORPUS = Path(os.environ.get("OMBUDSMAN_CORPUS") or PROJECT_ROOT.parent / "shared" / "corpus")  # as the tests find it
REPEAT = 20  # copies of the seeds and the corpus by default (see the docstring)


def copies(folder: Path, sources: list[Path], repeat: int) -> None:
    """Write ``repeat`` copies of every source file, each copy under new references, and each
    copy's paragraphs and Summary with a word of their own after their first ("c3"): the encoder runs a
    text given twice once, and copies alike word for word would measure that rather than the
    encoder. Standard paragraphs repeated within the sources stay repeated within each copy, as
    they recur across a real archive's decisions. (One source, 23 017 881a, parses one paragraph
    fewer with the word in it: its lists join differently.)"""
    for r in range(repeat):
        for src in sources:
            text = src.read_text(encoding="utf-8")
            text = re.sub(r"\((\d{2}) (\d{3}) (\d{3})([a-z]?)\)", lambda m: f"({int(m.group(1)) + 50 + r:02d} {m.group(2)} {m.group(3)}{m.group(4)})", text, count=1)
            text = re.sub(r"^URL:.*$", "", text, count=1, flags=re.M)
            if repeat > 1:
                text = re.sub(r"^([ \t]*(?:\d+\.|[-•]|Summary:)[ \t]+\S+)", rf"\1 c{r}", text, flags=re.M)
            (folder / f"{r}-{src.name}").write_text(text, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", default="auto")
    parser.add_argument("--repeat", type=int, default=REPEAT)
    parser.add_argument("--rounds", type=int, default=4,
                        help="alternate encoder-alone and ingest runs this many times; medians are reported")
    parser.add_argument("--also-with", default="", metavar="VAR=VALUE",
                        help="also ingest with this environment variable set, in every round")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON results (default eval/results/ingest-ENCODER[-repeat-N].json)")
    parser.add_argument("--additions", default="", help="index sizes (paragraphs) to add 1,000 decisions to")
    parser.add_argument("--keep", type=Path, default=None, help="with --additions: where the indexes are kept")
    args = parser.parse_args()
    if args.additions and args.also_with:
        raise SystemExit("--also-with compares ingests of the copies, not --additions")
    if args.additions:
        additions(args)
        return
    if not CORPUS.is_dir():
        raise SystemExit(f"the corpus is not at {CORPUS} (set OMBUDSMAN_CORPUS)")
    from rag.archive import Archive

    variable, _, value = args.also_with.partition("=")
    variable = variable.strip()
    if args.also_with and not (variable and "=" in args.also_with):
        raise SystemExit(f"--also-with takes VAR=VALUE, not {args.also_with!r}")
    with environment(variable, value if args.also_with else None):
        try:
            Batching.from_environment()  # a batch size ingest would refuse, refused before the rounds
        except ValueError as e:
            raise SystemExit(f"--also-with: {e}") from None
    embedder = load_embedder(args.encoder)
    root = Path(tempfile.mkdtemp(prefix="ombudsman-ingest-"))
    try:
        files = root / "files"
        files.mkdir()
        copies(files, sorted(SEEDS_DIR.glob("*.txt")) + sorted(CORPUS.glob("*.txt")), args.repeat)

        # The encoder alone, on exactly the windows ingest embeds, its rate in the paragraphs they
        # come from (a long paragraph has several windows), as ingest's is.
        windows, paragraphs = [], 0
        for path in sorted(files.glob("*.txt")):
            passages, cut_windows = cut(parse_file(path), embedder)
            windows.extend(w for ws in cut_windows for w in ws)
            paragraphs += len(passages)
        print(f"{paragraphs:,} paragraphs, {len(windows):,} windows; warming the encoder up", flush=True)
        # Warmed up on every window: cutting them kept their word pieces for embedding (as ingest
        # does), which would spare the first round alone the tokenising every other round does.
        embedder.embed(windows)

        # A shared machine's speed drifts by 10-20% over minutes, so the two are measured in
        # alternation and compared by their medians.
        raw_rates, raw_cpu, reports, cpu, others, again = [], [], [], [], [], None

        def encoder_alone() -> None:
            start, used = time.perf_counter(), _cpu(resource.RUSAGE_SELF)
            embedder.embed(windows)
            raw_rates.append(paragraphs / (time.perf_counter() - start))
            raw_cpu.append(_cpu(resource.RUSAGE_SELF) - used)

        for r in range(args.rounds):
            encoder_alone()
            for setting in ([False, True] if r % 2 == 0 else [True, False]) if args.also_with else [False]:
                with environment(variable, value if setting else None):
                    folder = root / f"index-{r}{'-also' if setting else ''}"
                    archive = Archive(StoreConfig(index_dir=folder), encoder=embedder.encoder, embedder=embedder)
                    archive.store.client  # importing chromadb and opening the folder: a start-up cost, not a rate
                    own, child = _cpu(resource.RUSAGE_SELF), _cpu(resource.RUSAGE_CHILDREN)
                    (others if setting else reports).append(archive.ingest([files]))
                    if not setting:  # the encoder's child is waited for when the ingest ends
                        cpu.append((_cpu(resource.RUSAGE_SELF) - own, _cpu(resource.RUSAGE_CHILDREN) - child))
                    if r == 0 and not setting:
                        again = archive.ingest([files])
                shutil.rmtree(folder, ignore_errors=True)
            print(f"  round {r + 1} of {args.rounds}: encoder alone {raw_rates[-1]:.1f} paragraphs/s, ingest "
                  f"{reports[-1].rate:.1f} ({reports[-1].rate / raw_rates[-1]:.3f} of it)"
                  + (f"; with {args.also_with} {others[-1].rate:.1f} ({others[-1].rate / raw_rates[-1]:.3f})"
                     if others else ""), flush=True)
        # The encoder alone once more, after the last ingest, so that each ingest has a run of it on
        # either side: the machine's drift within a round (up to 20% on a shared machine) then
        # shows as the two disagreeing, and a round's share against their mean cancels a steady one.
        encoder_alone()
        print(f"  and after the last: encoder alone {raw_rates[-1]:.1f} paragraphs/s", flush=True)
        raw = statistics.median(raw_rates[:-1])
        bracketed = [rep.rate / ((a + b) / 2) for rep, a, b in zip(reports, raw_rates, raw_rates[1:])]
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
            "raw_rates": [round(x, 1) for x in raw_rates[:-1]],
            "ingest_rates": [round(rep.rate, 1) for rep in reports],
            # Each round's ingest against the mean of the encoder-alone runs before and after it
            # (``raw_rate_after_last`` is the one after the last), and their median.
            "raw_rate_after_last": round(raw_rates[-1], 1),
            "shares_against_both_sides": [round(x, 3) for x in bracketed],
            "ingest_share_against_both_sides": round(statistics.median(bracketed), 3),
            # CPU seconds: the encoder alone (this process; the last, after the last round), and each
            # ingest's own process and the encoder's child process (none when the model ran here).
            "raw_cpu_seconds": [round(x, 1) for x in raw_cpu],
            "ingest_process_cpu_seconds": [round(own, 1) for own, _ in cpu],
            "encoder_process_cpu_seconds": [round(child, 1) for _, child in cpu],
            "reused_windows": report.reused_windows,
            "ingest_seconds": [round(rep.seconds, 2) for rep in reports],
            "ingest_embedding_seconds": [round(rep.embed_seconds, 2) for rep in reports],
            "ingest_seconds_before_embedding": [round(rep.seconds_before_embedding, 2) for rep in reports],
            "reingest_unchanged_seconds": round(again.seconds, 3),
            "reingest_embedded_paragraphs": again.embedded_passages,
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        }
        if others:
            result["also_with"] = {
                "setting": args.also_with,
                "ingest_share_of_raw_rate": round(statistics.median(o.rate for o in others) / raw, 3),
                "ingest_rates": [round(o.rate, 1) for o in others],
                "shares_in_each_round": [round(o.rate / x, 3) for o, x in zip(others, raw_rates)],
                "shares_without_it": [round(rep.rate / x, 3) for rep, x in zip(reports, raw_rates)],
            }
    finally:
        shutil.rmtree(root, ignore_errors=True)
    name = f"ingest-{embedder.encoder}" + ("" if args.repeat == REPEAT else f"-repeat-{args.repeat}")
    if args.also_with:  # a comparison, not the run of the code as it is
        name += "-also-" + re.sub(r"[^A-Za-z0-9_.-]+", "-", args.also_with)
    args.out = args.out or PROJECT_ROOT / "eval" / "results" / f"{name}.json"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


def _cpu(who: int) -> float:
    """User and system CPU seconds so far of this process or of its children waited for."""
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


@contextmanager
def environment(variable: str, value: str | None) -> Iterator[None]:
    """Within: ``variable`` set to ``value`` (left as it is when ``value`` is None)."""
    if value is None:
        yield
        return
    before = os.environ.get(variable)
    os.environ[variable] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(variable, None)
        else:
            os.environ[variable] = before


ADDED_DECISIONS = 1000


def additions(args) -> None:
    """Adding ``ADDED_DECISIONS`` decisions to indexes of several sizes, alternated (see the docstring)."""
    from eval.bench_search import fill_index
    from rag.archive import Archive

    if not CORPUS.is_dir():
        raise SystemExit(f"the corpus is not at {CORPUS} (set OMBUDSMAN_CORPUS)")
    sizes = [int(x) for x in args.additions.split(",")]
    keep = args.keep or Path(tempfile.mkdtemp(prefix="ombudsman-additions-"))
    embedder = load_embedder(args.encoder)
    root = Path(tempfile.mkdtemp(prefix="ombudsman-add-", dir=keep))
    try:
        files = root / "files"
        files.mkdir()
        sources = sorted(SEEDS_DIR.glob("*.txt")) + sorted(CORPUS.glob("*.txt"))
        copies(files, sources, -(-ADDED_DECISIONS // len(sources)))
        for extra in sorted(files.glob("*.txt"))[ADDED_DECISIONS:]:
            extra.unlink()
        for size in sizes:
            fill_index(keep / f"index-{size}", size, args.encoder)
        runs: dict[int, list[dict]] = {size: [] for size in sizes}
        for r in range(args.rounds):
            for size in sizes:
                folder = root / f"copy-{size}-{r}"  # a new path: Chroma keeps a client per path in a process
                print(f"  round {r + 1}: copying the index of {size:,} paragraphs", flush=True)
                shutil.copytree(keep / f"index-{size}", folder)
                os.sync()  # the copy's gigabytes written out now, not while the addition is timed
                archive = Archive(StoreConfig(index_dir=folder), encoder=embedder.encoder, embedder=embedder)
                archive.store.client
                start = time.perf_counter()
                report = archive.ingest([files])
                seconds = time.perf_counter() - start
                runs[size].append({"seconds": round(seconds, 2), "embedding_seconds": round(report.embed_seconds, 2),
                                   "paragraphs": report.embedded_passages, "added": report.count("added")})
                print(f"  round {r + 1}: {report.count('added')} decisions added to {size:,} paragraphs "
                      f"in {seconds:.1f} s", flush=True)
                shutil.rmtree(folder, ignore_errors=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    result = {"encoder": embedder.label, "decisions_added": ADDED_DECISIONS, "rounds": args.rounds, "sizes": [
        {"paragraphs": size, "median_seconds": statistics.median(x["seconds"] for x in runs[size]), "runs": runs[size]}
        for size in sizes]}
    first, last = result["sizes"][0], result["sizes"][-1]
    result["largest_over_smallest"] = round(last["median_seconds"] / first["median_seconds"], 3)
    out = args.out or PROJECT_ROOT / "eval" / "results" / "additions.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
