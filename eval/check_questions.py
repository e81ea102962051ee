"""Check a question set against the decisions as the parser reads them.

Every gold reference must parse from the seeds or the corpus, every gold paragraph must exist, an
``answer`` line must be copied exactly from one of the gold passages, and a negative must say
which kind it is. Run it after writing or editing questions:

    python -m eval.check_questions eval/questions.jsonl eval/unseen.jsonl
    python -m eval.check_questions --overlap eval/questions.jsonl eval/unseen.jsonl

``--overlap`` embeds the questions of the first set and of the second and lists every pair
closer than ``OVERLAP_COSINE``: a tuning question that close to an unseen one would make the
unseen figures a measure of tuning. Such tuning questions are removed from the tuning set, down
to 0.78, so that the small differences of int8 vectors computed in other batches never bring a
pair back over the line.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

from index.config import PROJECT_ROOT, SEEDS_DIR
from index.decision import Decision, normalise_reference
from index.parse import parse_file
from index.passage import SUMMARY

KINDS = ("why", "fact", "paraphrase", "reference", "law", "negative")
# Questions of two sets this close (cosine of their all-MiniLM-L6-v2 vectors) count as one question
# asked twice. Pairs at 0.80 and above, read side by side, were rewordings of each other (the same
# detail of the same decision asked the same way); below it they ask different things.
OVERLAP_COSINE = 0.80
NEGATIVE_KINDS = ("council", "topic", "mismatch")


def corpus_dir() -> Path:
    """The development corpus: ``OMBUDSMAN_CORPUS`` or ``../shared/corpus`` beside the project."""
    return Path(os.environ.get("OMBUDSMAN_CORPUS") or PROJECT_ROOT.parent / "shared" / "corpus")


def decisions() -> dict[str, Decision]:
    """Every seed and corpus decision, parsed, by reference."""
    files = sorted(SEEDS_DIR.glob("*.txt")) + sorted(corpus_dir().glob("*.txt"))
    return {d.reference: d for d in map(parse_file, files)}


def passage_text(d: Decision, paragraph: int | str) -> str | None:
    if paragraph == SUMMARY:
        return d.summary or None
    if isinstance(paragraph, int) and 1 <= paragraph <= len(d.paragraphs):
        return d.paragraphs[paragraph - 1].text
    return None


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def problems(path: Path, known: dict[str, Decision]) -> list[str]:
    """Every problem of the question set at ``path``, each naming the line."""
    out: list[str] = []
    ids: set[str] = set()
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path.name}:{n}"
        try:
            q = json.loads(line)
        except ValueError as e:
            out.append(f"{where}: not JSON ({e})")
            continue
        qid = q.get("id")
        if not qid or qid in ids:
            out.append(f"{where}: missing or repeated id {qid!r}")
        ids.add(qid)
        if q.get("kind") not in KINDS:
            out.append(f"{where}: kind {q.get('kind')!r} is not one of {', '.join(KINDS)}")
        if not str(q.get("question", "")).strip():
            out.append(f"{where}: empty question")
        gold = q.get("gold", [])
        if q.get("kind") == "negative":
            if gold:
                out.append(f"{where}: a negative question has gold passages")
            if q.get("negative") not in NEGATIVE_KINDS:
                out.append(f"{where}: a negative needs \"negative\": one of {', '.join(NEGATIVE_KINDS)}")
            continue
        if not gold:
            out.append(f"{where}: no gold passages")
        texts = []
        for g in gold:
            try:
                ref = normalise_reference(str(g["ref"]))
            except (KeyError, ValueError) as e:
                out.append(f"{where}: bad gold reference ({e})")
                continue
            d = known.get(ref)
            if d is None:
                out.append(f"{where}: gold decision {ref} is not in the seeds or the corpus")
                continue
            text = passage_text(d, g.get("paragraph"))
            if text is None:
                out.append(f"{where}: {ref} has no paragraph {g.get('paragraph')!r}")
            else:
                texts.append(text)
        answer = q.get("answer")
        if answer is not None and texts and not any(_squash(answer) in _squash(t) for t in texts):
            out.append(f"{where}: the answer line is not copied exactly from a gold passage: {answer[:60]!r}")
        if q.get("kind") == "why" and not q.get("outcome"):
            out.append(f"{where}: a why question needs its decision's \"outcome\"")
    return out


def overlaps(first: Path, second: Path, embedder=None) -> list[tuple[float, str, str]]:
    """(cosine, id in ``first``, id in ``second``) for every pair of questions closer than
    ``OVERLAP_COSINE``, closest first."""
    import numpy as np

    from index.embedder import load_embedder

    def questions(path: Path) -> list[tuple[str, str]]:
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        return [(q["id"], q["question"]) for q in rows]

    a, b = questions(first), questions(second)
    embedder = embedder or load_embedder("auto")
    sims = embedder.embed([q for _, q in a]) @ embedder.embed([q for _, q in b]).T
    pairs = [(float(sims[i, j]), a[i][0], b[j][0]) for i, j in zip(*np.nonzero(sims >= OVERLAP_COSINE))]
    return sorted(pairs, reverse=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sets", nargs="+", type=Path)
    parser.add_argument("--overlap", action="store_true", help="list near-copies across two sets instead")
    args = parser.parse_args(argv)
    if args.overlap:
        if len(args.sets) != 2:
            parser.error("--overlap compares two sets")
        pairs = overlaps(*args.sets)
        for cos, x, y in pairs:
            print(f"{cos:.3f} {x} {y}")
        print(f"{len(pairs)} pairs at cosine {OVERLAP_COSINE} or more")
        return 1 if pairs else 0
    known = decisions()
    found = [p for path in args.sets for p in problems(path, known)]
    for p in found:
        print(p)
    print(f"{len(found)} problems in {', '.join(str(s) for s in args.sets)}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
