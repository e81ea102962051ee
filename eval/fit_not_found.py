"""Where "not found" should start: the relevance of the tuning negatives against the positives.

    python -m eval.fit_not_found [--index DIR] [--set eval/questions.jsonl]

Questions naming a reference are left out (they are answered by lookup), and so are those that
the rules already refuse (a council that is not indexed; a complainant no relevant decision has),
since no threshold changes them. For the rest, two measures of relevance are compared:

- ``probability``: the ranking function's calibrated probability that its first passage answers
  (what ``rag.plan`` compares with ``ANSWERABLE_FROM``);
- ``sentence``: the best cosine between the question and any sentence of the retrieved paragraphs;
- ``coverage``: the share of the question's words (IDF-weighted) its first decision contains.

For each, every threshold between observed values is tried, and two are reported: the lowest
at which the negatives refused in all (by the rules and by the threshold) reach ``TARGET`` (the
product's target: that answers as few answerable questions as it can while refusing nine
negatives in ten), and the one with the largest share of negatives refused minus share of
positives lost. The unseen questions are never read here.
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
from rag.parameters import ANSWERABLE_FROM, SENTENCE_FLOOR
from rag.plan import COUNCIL, MISMATCH

TARGET = 0.9  # share of all negative questions refused
FLOOR_LOSS = 0.01  # share of answerable questions the sentence floor may refuse


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
        relevance = answerer.similarity.relevance(plan.query, plan.hits)
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


def lowest_reaching(values: list[tuple[float, bool]], ruled: int, negatives: int) -> tuple[float, int, int] | None:
    """(threshold, negatives below it, positives below it): the lowest threshold at which ``ruled``
    plus the negatives below it reach ``TARGET`` of ``negatives``; None if none does."""
    points = sorted({round(v, 4) for v, _ in values})
    for a, b in zip(points, points[1:] + [points[-1] + 2e-3]):
        t = round((a + b) / 2, 3)
        caught = sum(v < t for v, neg in values if neg)
        if (ruled + caught) / negatives >= TARGET:
            return t, caught, sum(v < t for v, neg in values if not neg)
    return None


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
    ruled_negatives = sum(r["negative"] for r in ruled)
    all_negatives = sum(r["negative"] for r in table)
    for measure in ("sentence", "probability", "coverage"):
        values = [(r[measure], r["negative"]) for r in free]
        t, caught, negatives, lost, positives = best_threshold(values)
        current = f" (current ANSWERABLE_FROM {ANSWERABLE_FROM})" if measure == "probability" else ""
        reach = lowest_reaching(values, ruled_negatives, all_negatives)
        reached = (f"lowest reaching {TARGET} of all {all_negatives} negatives refused: {reach[0]} "
                   f"({reach[1]} of {negatives} refused by it, {reach[2]} of {positives} positives lost)"
                   if reach else f"no threshold reaches {TARGET} of all negatives refused")
        print(f"- {measure}{current}: {reached}; largest (refused share - lost share): {t} ({caught} refused, "
              f"{lost} lost)")
        if measure == "probability":
            caught_now = sum(r["probability"] < ANSWERABLE_FROM for r in free if r["negative"])
            lost_now = sum(r["probability"] < ANSWERABLE_FROM for r in free if not r["negative"])
            print(f"  at {ANSWERABLE_FROM}: {caught_now} negatives refused, {lost_now} positives lost")
    answered = sorted(r["sentence"] for r in free if not r["negative"] and r["probability"] >= ANSWERABLE_FROM)
    if answered:
        spare = int(FLOOR_LOSS * len(answered))
        floor = answered[spare] if spare < len(answered) else answered[-1]
        print(f"- sentence floor: the highest that loses at most {FLOOR_LOSS:.0%} ({spare}) of the {len(answered)} "
              f"answerable questions the probability answers: {floor:.3f} (SENTENCE_FLOOR {SENTENCE_FLOOR}: "
              f"{sum(v < SENTENCE_FLOOR for v in answered)} below it; the lowest is {answered[0]:.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
