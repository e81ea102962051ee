"""Measure where "not found" should start: the relevance of negative questions vs positive ones.

Relevance is what ``rag.answer.Answerer`` compares with ``NOT_FOUND_BELOW``: the best cosine
similarity between the question and any sentence of its retrieved paragraphs. Questions naming a
reference are left out (they are answered by lookup), and so are negatives already caught because
they name a council that is not indexed (that rule does not depend on the threshold).

Measured on seeds + corpus (150 decisions, all-MiniLM-L6-v2 onnx-int8, 16 texts a model run),
eval/questions.jsonl (scores move by about 0.02 between encoders and batchings: re-measure after
changing either):

- 11 of the 15 negatives name a council that is not indexed and are "not found" by that rule alone
  (their relevance would not catch them: 0.27 to 0.47).
- The other 4 score 0.373 (dog fouling), 0.433 (Japanese knotweed), 0.463 (Gypsy and Traveller
  site) and 0.56 (allotment waiting list: its best match is standard wording about how the
  Ombudsman decides, shared by many decisions).
- The 120 positives without a reference range from 0.256 to 0.85 (median 0.636); 6 lie below
  0.47 (the lowest, 0.256, is "DFG delay bradford outcome?": the model does not know "DFG"; the
  others are paraphrases in everyday words and a question about the standard of proof). The next
  is 0.473.
- The classes overlap, so no threshold separates them. Between the highest of the three low
  negatives (0.463) and the next positive (0.473) any threshold gives the same result: 14 of 15
  negatives "not found", 6 of 120 positives (5%) lost. ``NOT_FOUND_BELOW = 0.47`` sits in that
  gap. 0.44 would catch 13 and lose 6; 0.50 would catch 14 and lose 10.

Run: ``OMBUDSMAN_INDEX=... python -m eval.tune_not_found`` (prints the table and the sweep).
"""

from __future__ import annotations

import argparse
import statistics

from eval.run import QUESTIONS, load_questions


def relevances(archive, questions) -> list[tuple[str, str, bool, float, bool]]:
    """(id, kind, negative, relevance, caught by the unknown-council rule) per usable question."""
    from rag.answer import Answerer

    answerer = Answerer(archive, llm=None)
    retriever = answerer.retriever
    indexed = set(retriever.catalogue.decisions)
    rows = []
    for q in questions:
        if q.gold and not {g.split("#")[0].replace("-", " ") for g in q.gold} <= indexed:
            continue
        query = retriever.understand(q.question)
        if query.references:
            continue
        hits = retriever.search(q.question, k=10, query=query)
        caught = bool(answerer._unknown_places(q.question, query))
        rows.append((q.id, q.kind, q.negative, answerer._relevance(query, hits), caught))
    return rows


def sweep(rows, thresholds=(0.35, 0.40, 0.42, 0.44, 0.46, 0.50, 0.55)) -> list[tuple[float, int, int, int, int]]:
    """(threshold, negatives not found, negatives, positives lost, positives) for each threshold."""
    negatives = [r for r in rows if r[2]]
    positives = [r for r in rows if not r[2]]
    out = []
    for t in thresholds:
        caught = sum(1 for r in negatives if r[4] or r[3] < t)
        lost = sum(1 for r in positives if r[3] < t)
        out.append((t, caught, len(negatives), lost, len(positives)))
    return out


def main() -> None:
    from index import config
    from rag.archive import Archive

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", help="index folder (default: OMBUDSMAN_INDEX or data/index)")
    args = parser.parse_args()
    archive = Archive(config.StoreConfig.from_env(args.index))
    rows = relevances(archive, load_questions(QUESTIONS))
    for r in sorted(rows, key=lambda r: r[3]):
        print(f"{r[0]}  {r[1]:<10} {'NEG' if r[2] else 'pos'}  {r[3]:.3f}{'  (council not indexed)' if r[4] else ''}")
    pos = [r[3] for r in rows if not r[2]]
    print(f"\npositives: {len(pos)}, median {statistics.median(pos):.3f}, min {min(pos):.3f}")
    print("threshold  negatives not found  positives lost")
    for t, caught, n_neg, lost, n_pos in sweep(rows):
        print(f"{t:.2f}       {caught}/{n_neg}                {lost}/{n_pos}")


if __name__ == "__main__":
    main()
