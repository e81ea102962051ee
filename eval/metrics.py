"""Retrieval metrics, computed by ir-measures (pytrec_eval) so that the figures are the standard ones.

Names follow sentence-transformers' evaluators: ``recall@5``, ``mrr@10``, ``ndcg@10``; plus
``success@1`` (is the top hit a gold passage?, which is what "the first paragraph is right" means
when a question has several gold paragraphs and Recall@1 cannot reach 1), and ``hit@1`` at
decision level (is the top hit from a gold decision?), which ir-measures has no name for.
"""

from __future__ import annotations

from dataclasses import dataclass

import ir_measures
from ir_measures import RR, R, Success, nDCG

CUTOFFS = (1, 3, 5, 10)
METRICS = [f"recall@{k}" for k in CUTOFFS] + ["success@1", "mrr@10", "ndcg@10", "hit@1"]
_MEASURES = {f"recall@{k}": R @ k for k in CUTOFFS} | {"success@1": Success @ 1, "mrr@10": RR @ 10,
                                                       "ndcg@10": nDCG @ 10}


@dataclass(frozen=True)
class Judged:
    """One question's gold passage ids and the ranked ids a retriever returned."""

    qid: str
    gold: tuple[str, ...]
    ranked: tuple[str, ...]


def decision_of(passage_id: str) -> str:
    return passage_id.split("#", 1)[0]


def per_question(judged: list[Judged]) -> dict[str, dict[str, float]]:
    """Every metric for every question that has gold passages: ``{qid: {metric: value}}``."""
    scored = [j for j in judged if j.gold]
    if not scored:
        return {}
    qrels = [ir_measures.Qrel(j.qid, pid, 1) for j in scored for pid in j.gold]
    run = [
        ir_measures.ScoredDoc(j.qid, pid, float(len(j.ranked) - i))
        for j in scored
        for i, pid in enumerate(j.ranked)
    ]
    out: dict[str, dict[str, float]] = {j.qid: {m: 0.0 for m in METRICS} for j in scored}
    names = {v: k for k, v in _MEASURES.items()}
    for m in ir_measures.iter_calc(list(_MEASURES.values()), qrels, run):
        out[m.query_id][names[m.measure]] = float(m.value)
    for j in scored:
        gold_decisions = {decision_of(g) for g in j.gold}
        out[j.qid]["hit@1"] = float(bool(j.ranked) and decision_of(j.ranked[0]) in gold_decisions)
    return out


def mean(rows: list[dict[str, float]]) -> dict[str, float]:
    """The mean of each metric over questions (a question missing from the run scores 0)."""
    if not rows:
        return {m: 0.0 for m in METRICS}
    return {m: sum(r[m] for r in rows) / len(rows) for m in METRICS}
