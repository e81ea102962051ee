"""Where "not found" should start: the relevance of the tuning negatives against the positives.

    python -m eval.fit_not_found [--index DIR] [--set eval/questions.jsonl]

Questions naming a reference are left out (they are answered by lookup), and so are those that
the rules already refuse (a council that is not indexed; a complainant no relevant decision has),
since no threshold changes them. For the rest, two measures of relevance are compared:

- ``sentence``: the best cosine between the question and any sentence of the retrieved
  paragraphs (what ``rag.plan`` compares with ``NOT_FOUND_BELOW``);
- ``probability``: the ranking function's calibrated probability that its first passage answers.

For each, every threshold between observed values is tried; the one with the largest share of
negatives refused minus share of positives lost (ties: fewer positives lost) is reported with
its figures. The unseen questions are never read here.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from eval.run import QUESTIONS, load_questions
from index.config import StoreConfig
from rag.answer import Answerer
from rag.archive import Archive
from rag.parameters import NOT_FOUND_BELOW
from rag.plan import COUNCIL, MISMATCH


def rows(archive, questions) -> list[dict]:
    """Per usable question: whether it is negative, its two relevances, and whether a rule refused it."""
    answerer = Answerer(archive, llm=None)
    indexed = set(answerer.retriever.catalogue.decisions)
    out = []
    for q in questions:
        if q.gold and not {g.split("#")[0].replace("-", " ") for g in q.gold} <= indexed:
            continue
        plan = answerer.plan(q.question)
        if plan.query.references:
            continue
        relevance = plan.relevance or answerer.similarity.relevance(plan.query, plan.hits)
        out.append({"id": q.id, "negative": q.negative, "kind": q.negative_kind,
                    "sentence": relevance, "probability": plan.hits[0].score if plan.hits else 0.0,
                    "coverage": answerer.retriever.coverage(plan.query, plan.hits[0].ref) if plan.hits else 0.0,
                    "rule": plan.refused if plan.refused in (COUNCIL, MISMATCH) else ""})
    return out


def best_threshold(values: list[tuple[float, bool]]) -> tuple[float, int, int, int, int]:
    """(threshold, negatives below it, negatives, positives below it, positives) maximising the
    share of negatives below minus the share of positives below."""
    negatives = sorted(v for v, neg in values if neg)
    positives = sorted(v for v, neg in values if not neg)
    points = sorted({round(v, 4) for v, _ in values})
    cuts = [points[0] - 1e-3] + [(a + b) / 2 for a, b in zip(points, points[1:])] + [points[-1] + 1e-3]
    best = None
    for t in cuts:
        caught = sum(v < t for v in negatives)
        lost = sum(v < t for v in positives)
        score = (caught / max(len(negatives), 1) - lost / max(len(positives), 1), -lost)
        if best is None or score > best[0]:
            best = (score, (round(t, 3), caught, len(negatives), lost, len(positives)))
    return best[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index")
    parser.add_argument("--chroma-url", default=None)
    parser.add_argument("--set", default=str(QUESTIONS))
    args = parser.parse_args(argv)
    if "unseen" in Path(args.set).name:
        parser.error("the unseen questions are never tuned on; give the tuning questions")
    logging.basicConfig(level=logging.WARNING)
    archive = Archive(StoreConfig.from_env(args.index, args.chroma_url))
    table = rows(archive, load_questions(Path(args.set)))
    ruled = [r for r in table if r["rule"]]
    free = [r for r in table if not r["rule"]]
    print(f"{len(table)} questions without a reference: {sum(r['negative'] for r in ruled)} negatives and "
          f"{sum(not r['negative'] for r in ruled)} positives refused by a rule (council not indexed, complainant "
          f"not found); the threshold decides the other {len(free)} "
          f"({sum(r['negative'] for r in free)} negatives, {sum(not r['negative'] for r in free)} positives)")
    for measure in ("sentence", "probability", "coverage"):
        t, caught, negatives, lost, positives = best_threshold([(r[measure], r["negative"]) for r in free])
        current = f" (current NOT_FOUND_BELOW {NOT_FOUND_BELOW})" if measure == "sentence" else ""
        print(f"- {measure}: best threshold {t}{current}: {caught} of {negatives} negatives refused, "
              f"{lost} of {positives} positives lost")
        if measure == "sentence":
            caught_now = sum(r["sentence"] < NOT_FOUND_BELOW for r in free if r["negative"])
            lost_now = sum(r["sentence"] < NOT_FOUND_BELOW for r in free if not r["negative"])
            print(f"  at {NOT_FOUND_BELOW}: {caught_now} negatives refused, {lost_now} positives lost")
    return 0


if __name__ == "__main__":
    sys.exit(main())
