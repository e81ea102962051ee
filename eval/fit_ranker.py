"""Fit the ranking function's weights on the tuning questions, with cross-validated figures.

    python -m eval.fit_ranker [--index DIR] [--set eval/questions.jsonl] [--folds 5] [--write]

For every tuning question that the ranking function orders (not the negatives, and not the
questions that rules answer: a reference alone, or a reference with its paragraph), the
candidates and their evidence rows are collected once (``Retriever.evidence``). Several models
are then compared by k-fold cross-validation over questions (a fold's questions are ranked by
weights fitted on the other folds, through the retriever's own selection): reciprocal rank fusion
alone (the baseline), pointwise logistic regression and pairwise logistic regression (gold
passage against each other candidate of the same question, each question weighing the same), at
three regularisation strengths. The model with the best cross-validated MRR@10 is fitted on all
the tuning questions, its scores calibrated to probabilities (Platt), and, with ``--write``,
saved to ``rag/ranker.json`` with this command, the date and the figures.

The unseen questions (``eval/unseen.jsonl``) are never read here.
"""

from __future__ import annotations

import datetime as dt
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from eval.metrics import Judged, mean, per_question
from eval.run import Question, fit_arguments, load_questions
from index.config import StoreConfig
from rag.archive import Archive
from rag.evidence import FEATURES, INDEX, Evidence
from rag.parameters import CANDIDATES, PER_DECISION, RANKER_FILE
from rag.query import Query
from rag.ranker import Ranker

log = logging.getLogger(__name__)

REPORTED = ("recall@1", "success@1", "recall@5", "mrr@10", "hit@1")
STRENGTHS = (0.01, 0.1, 1.0)  # logistic regression's C: smaller is a stronger pull towards zero


@dataclass
class Sample:
    """One tuning question's candidates: evidence rows and which are gold."""

    question: Question
    query: Query
    evidence: Evidence
    gold: np.ndarray  # bool per candidate


def collect(retriever, questions: list[Question], n: int = CANDIDATES) -> tuple[list[Sample], int]:
    """The samples of the questions the ranking function orders, and how many of them have no
    gold passage among their candidates (they cannot be ranked right by any weights)."""
    samples, unreachable = [], 0
    indexed = set(retriever.catalogue.decisions)
    for q in questions:
        if q.negative or not {g.split("#")[0].replace("-", " ") for g in q.gold} <= indexed:
            continue
        query = retriever.understand(q.question)
        if query.reference_only or (query.references and query.paragraph is not None):
            continue
        evidence = retriever.evidence(query, retriever.allowed_passages(query), n)
        gold = np.array([pid in q.gold for pid in evidence.pids], dtype=bool)
        unreachable += not gold.any()
        samples.append(Sample(q, query, evidence, gold))
    return samples, unreachable


def _standardise(samples: list[Sample]) -> tuple[np.ndarray, np.ndarray]:
    rows = np.vstack([s.evidence.matrix for s in samples])
    mean_, scale = rows.mean(axis=0), rows.std(axis=0)
    scale[scale < 1e-9] = 1.0
    return mean_, scale


def _fit_weights(samples: list[Sample], model: str, strength: float) -> Ranker:
    """Weights of ``model`` (``rrf``, ``pointwise`` or ``pairwise``) fitted on ``samples``,
    calibrated so that ``Ranker.probability`` estimates P(gold)."""
    from sklearn.linear_model import LogisticRegression

    mean_, scale = _standardise(samples)
    features = tuple(FEATURES)
    if model == "rrf":
        weights = np.zeros(len(FEATURES))
        weights[INDEX["rrf"]] = scale[INDEX["rrf"]]  # the raw fused score, unweighted
        return _calibrated(Ranker(features, mean_, scale, weights), samples)
    if model == "pointwise":
        xs, ys, ws = [], [], []
        for s in samples:
            x = (s.evidence.matrix - mean_) / scale
            pos = max(int(s.gold.sum()), 1)
            neg = max(len(s.gold) - pos, 1)
            xs.append(x)
            ys.append(s.gold.astype(int))
            ws.append(np.where(s.gold, 0.5 / pos, 0.5 / neg))  # each question weighs the same
        lr = LogisticRegression(C=strength, max_iter=2000)
        lr.fit(np.vstack(xs), np.concatenate(ys), sample_weight=np.concatenate(ws) * len(samples))
        # Weighing each question the same skews the probabilities: calibrate them like the others.
        return _calibrated(Ranker(features, mean_, scale, lr.coef_[0], float(lr.intercept_[0])), samples)
    diffs, weights_ = [], []
    for s in samples:
        x = (s.evidence.matrix - mean_) / scale
        pos, neg = x[s.gold], x[~s.gold]
        if not len(pos) or not len(neg):
            continue
        d = (pos[:, None, :] - neg[None, :, :]).reshape(-1, x.shape[1])
        diffs.append(d)
        weights_.append(np.full(len(d), 1.0 / len(d)))
    d = np.vstack(diffs)
    w = np.concatenate(weights_) * len(diffs)
    lr = LogisticRegression(C=strength, fit_intercept=False, max_iter=2000)
    lr.fit(np.vstack([d, -d]), np.concatenate([np.ones(len(d)), np.zeros(len(d))]), sample_weight=np.concatenate([w, w]))
    return _calibrated(Ranker(features, mean_, scale, lr.coef_[0]), samples)


def _calibrated(ranker: Ranker, samples: list[Sample]) -> Ranker:
    """The same order, with scale and bias fitted so that the sigmoid of a score estimates the
    probability that the passage is gold (Platt scaling over every candidate of ``samples``)."""
    from sklearn.linear_model import LogisticRegression

    raw = np.concatenate([ranker.score(s.evidence.matrix) for s in samples]).reshape(-1, 1)
    y = np.concatenate([s.gold for s in samples]).astype(int)
    lr = LogisticRegression(C=1e4, max_iter=2000).fit(raw, y)
    a, b = float(lr.coef_[0][0]), float(lr.intercept_[0])
    return Ranker(ranker.features, ranker.mean, ranker.scale, ranker.weights * a, ranker.bias * a + b)


def rank_all(retriever, samples: list[Sample], ranker: Ranker, per_decision: int = PER_DECISION) -> list[Judged]:
    return [Judged(s.question.id, s.question.gold,
                   tuple(pid for pid, _ in retriever.rank(s.query, s.evidence, 10, per_decision, ranker=ranker)))
            for s in samples]


def folds_of(samples: list[Sample], k: int) -> list[list[int]]:
    """``k`` folds of question indices, dealt in id order so every fold mixes every kind; with
    ``k == 0``, one fold per writer of the questions (fitted on one writer's questions, ranked on
    another's: how the weights carry over to questions written by someone else)."""
    if k == 0:
        writers: dict[str, list[int]] = {}
        for i, s in enumerate(samples):
            writers.setdefault(s.question.writer or "?", []).append(i)
        return list(writers.values())
    order = sorted(range(len(samples)), key=lambda i: samples[i].question.id)
    return [order[f::k] for f in range(k)]


def cross_validate(retriever, samples: list[Sample], model: str, strength: float, k: int,
                   per_decision: int = PER_DECISION) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Mean metrics over questions, each ranked by weights fitted without its fold; and per kind."""
    judged: list[Judged] = []
    for test in folds_of(samples, k):
        held = set(test)
        ranker = _fit_weights([s for i, s in enumerate(samples) if i not in held], model, strength)
        judged += rank_all(retriever, [samples[i] for i in test], ranker, per_decision)
    rows = per_question(judged)
    kinds: dict[str, list] = {}
    for s in samples:
        kinds.setdefault(s.question.kind, []).append(rows[s.question.id])
    return mean(list(rows.values())), {kind: mean(v) for kind, v in sorted(kinds.items())}


@dataclass
class Fit:
    """The model chosen by cross-validation, its figures, and its weights fitted on every sample."""

    model: str
    strength: float
    overall: dict[str, float]
    kinds: dict[str, dict[str, float]]
    ranker: Ranker
    table: list[tuple[str, float, dict[str, float]]]  # every model tried: (model, C, figures)
    across: dict[str, float] | None = None  # cross-writer figures of the chosen model


def choose(retriever, samples: list[Sample], folds: int, progress=None) -> Fit:
    """Cross-validate every model two ways: k-fold over questions, and across writers (fitted on
    one writer's questions, ranked on the other's, reported beside it). Keep the best k-fold
    MRR@10 (ties: the stronger regularisation), and fit it on all ``samples``. ``progress(model, C,
    k-fold figures, cross-writer figures)`` is called as each is measured."""
    table = []
    writers = len({s.question.writer for s in samples}) > 1
    for model, strengths in (("rrf", (1.0,)), ("pointwise", STRENGTHS), ("pairwise", STRENGTHS)):
        for c in strengths:
            overall, kinds = cross_validate(retriever, samples, model, c, folds)
            across = cross_validate(retriever, samples, model, c, 0)[0] if writers else overall
            table.append((model, c, overall, kinds, across))
            if progress:
                progress(model, c, overall, across)
    model, c, overall, kinds, across = max((t for t in table if t[0] != "rrf"), key=lambda t: (t[2]["mrr@10"], -t[1]))
    fit = Fit(model, c, overall, kinds, _fit_weights(samples, model, c), [(m, c_, o) for m, c_, o, _, _ in table])
    fit.across = across
    return fit


def main(argv: list[str] | None = None) -> int:
    args = fit_arguments(__doc__.splitlines()[0], RANKER_FILE, argv)

    archive = Archive(StoreConfig.from_env(args.index, args.chroma_url))
    retriever = archive.retriever
    samples, unreachable = collect(retriever, load_questions(Path(args.set)))
    print(f"{len(samples)} tuning questions ranked by the function ({unreachable} with no gold passage among "
          f"the {CANDIDATES}+{CANDIDATES} candidates); {len(FEATURES)} features; {args.folds}-fold cross-validation")
    decisions = retriever.catalogue.decisions
    stated = [s for s in samples if s.query.why and s.query.outcomes]
    kept = sum(any(decisions[g.split("#")[0].replace("-", " ")]["outcome"] in s.query.outcomes for g in s.question.gold)
               for s in stated)
    print(f"{len(stated)} are \"why\" questions naming an outcome; {kept} of them have a gold decision with that "
          "outcome (candidates contradicting it are ranked after the others)")
    print()
    print("| model | C | " + " | ".join(REPORTED) + " | across writers: " + " / ".join(REPORTED) + " |")
    print("|---|---|" + "---|" * len(REPORTED) + "---|")

    def show(model: str, c: float, overall: dict[str, float], across: dict[str, float]) -> None:
        shown = "-" if model == "rrf" else f"{c:g}"
        print(f"| {model} | {shown} | " + " | ".join(f"{overall[m]:.3f}" for m in REPORTED) + " | "
              + " / ".join(f"{across[m]:.3f}" for m in REPORTED) + " |", flush=True)

    fit = choose(retriever, samples, args.folds, show)
    print(f"\nchosen: {fit.model}, C={fit.strength:g} (best k-fold MRR@10); "
          "k-fold per kind:")
    print("| kind | " + " | ".join(REPORTED) + " |")
    print("|---|" + "---|" * len(REPORTED))
    for kind, row in fit.kinds.items():
        print(f"| {kind} | " + " | ".join(f"{row[m]:.3f}" for m in REPORTED) + " |")
    print("\nthe same model with other caps on passages per decision (cross-validated):")
    caps = {}
    for cap in (1, 2, 3, 5, 0):
        got, _ = cross_validate(retriever, samples, fit.model, fit.strength, args.folds, per_decision=cap)
        caps[str(cap)] = {m: round(got[m], 4) for m in REPORTED}
        print(f"  per_decision={cap or 'none'}: " + ", ".join(f"{m} {got[m]:.3f}" for m in REPORTED))
    print("\nweights (standardised features), largest first:")
    for name, w in sorted(zip(FEATURES, fit.ranker.weights), key=lambda nw: -abs(nw[1])):
        print(f"  {name:22s} {w:+.3f}")
    if args.write:
        command = "python -m eval.fit_ranker --write" + (f" --folds {args.folds}" if args.folds != 5 else "")
        meta = {
            "command": command,
            "date": dt.date.today().isoformat(),
            "fitted_on": f"{len(samples)} questions of {Path(args.set).name} over "
                         f"{len(retriever.catalogue.decisions)} decisions",
            "model": fit.model,
            "C": fit.strength,
            "cross_validated": {m: round(fit.overall[m], 4) for m in REPORTED},
            "across_writers": {m: round(v, 4) for m, v in (fit.across or {}).items() if m in REPORTED},
            "per_decision_caps": caps,
        }
        r = fit.ranker
        Ranker(r.features, r.mean, r.scale, r.weights, r.bias, meta).save(args.out)
        print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
