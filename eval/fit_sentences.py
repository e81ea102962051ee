"""Fit the sentence selection's weights on the tuning questions' marked lines, cross-validated.

    python -m eval.fit_sentences [--index DIR] [--set eval/questions.jsonl] [--folds 5] [--write]

Every tuning question with a marked answering line (the sentence of the decision that best
answers it, marked by its writer) is planned once as ``ombudsman ask`` plans it. When the answer
is about a gold decision, the thoughts of the paragraphs it may quote (``rag.selection``) are
labelled: a thought answers when its main piece lies within the marked line, or the line within
it. Questions whose line is in none of those paragraphs cannot be helped by any weights and are
counted apart.

Pairwise logistic regression (each answering thought against each other thought of the same
question, each question weighing the same) is fitted at three regularisation strengths; for each,
k-fold cross-validation over questions composes every held-out answer as ``ask`` would, with each
margin and minimum number of thoughts tried, and counts the answers that contain their line. The
strength and margin with the best cross-validated share are kept, preferring the smallest margin
within ``NEAR`` of the best (shorter answers when they lose almost nothing; then the fewest
thoughts at least, then the strongest regularisation); the weights are then
fitted on every question and, with ``--write``, saved to ``rag/selection.json`` with this command,
the date and the figures. The unseen questions are never read here.
"""

from __future__ import annotations

import datetime as dt
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from eval.answers import contains_line, gold_refs, line_key, normalised, opens_with_fragment
from eval.run import Question, fit_arguments, load_questions
from index.config import StoreConfig
from rag.answer import Answerer
from rag.archive import Archive
from rag.compose import Composer, asked
from rag.parameters import SELECTION_FILE
from rag.plan import Plan
from rag.ranker import Ranker
from rag.selection import FEATURES, features, thoughts

STRENGTHS = (0.01, 0.1, 1.0)  # logistic regression's C: smaller is a stronger pull towards zero
MARGINS = (0.5, 1.0, 1.5, 2.0, 3.0)  # log-odds below the best thought's score
MINIMUMS = (1, 2)  # thoughts a single-decision answer quotes at least
NEAR = 0.01  # a smaller margin is preferred when its share is within this of the best


@dataclass
class Sample:
    question: Question
    plan: Plan
    ref: str  # the gold decision the answer is about
    matrix: np.ndarray | None  # the thoughts' features (None: the line is in none of them)
    answers: np.ndarray | None  # bool per thought


def answering(thought, line: str) -> bool:
    """Whether a thought is (part of) the marked line."""
    want = line_key(line)
    main = normalised(thought.main).rstrip(".")
    return len(main.split()) >= 4 and (main in want or want in normalised(thought.text))


def collect(answerer: Answerer, questions: list[Question]) -> tuple[list[Sample], dict[str, int]]:
    """The samples, and how many questions were left out for each reason."""
    samples: list[Sample] = []
    left = {"not answered": 0, "answered from another decision": 0, "paragraph asked by number": 0,
            "line in no quotable paragraph": 0}
    indexed = set(answerer.retriever.catalogue.decisions)
    composer = Composer(answerer.planner, answerer.similarity)
    for q in questions:
        if q.negative or not q.answer or not gold_refs(q) <= indexed:
            continue
        plan = answerer.plan(q.question)
        if not plan.found or not plan.decisions:
            left["not answered"] += 1
            continue
        ref = next((r for r in plan.decisions if r in gold_refs(q)), None)
        if ref is None:
            left["answered from another decision"] += 1
            continue
        if plan.paragraph is not None:
            left["paragraph asked by number"] += 1
            continue
        what = asked(plan, answerer.planner.residual(plan.query.content, plan.query), answerer.retriever.catalogue.lexical)
        passages = list(plan.passages.get(ref, []))
        composer.lead(ref, what, passages)
        pool = [t for h in passages for t in thoughts(h)]
        labels = np.array([answering(t, q.answer) for t in pool], dtype=bool)
        if not labels.any():
            left["line in no quotable paragraph"] += 1
            samples.append(Sample(q, plan, ref, None, None))
            continue
        sims = answerer.similarity.embed([t.main for t in pool]) @ answerer.similarity.question(plan.query)
        samples.append(Sample(q, plan, ref, features(pool, sims, what), labels))
    return samples, left


def fit(samples: list[Sample], strength: float) -> Ranker:
    """Pairwise logistic regression over the labelled samples (standardised features)."""
    from sklearn.linear_model import LogisticRegression

    usable = [s for s in samples if s.matrix is not None and (~s.answers).any()]
    rows = np.vstack([s.matrix for s in usable])
    mean_, scale = rows.mean(axis=0), rows.std(axis=0)
    scale[scale < 1e-9] = 1.0
    diffs, weights = [], []
    for s in usable:
        x = (s.matrix - mean_) / scale
        d = (x[s.answers][:, None, :] - x[~s.answers][None, :, :]).reshape(-1, x.shape[1])
        diffs.append(d)
        weights.append(np.full(len(d), 1.0 / len(d)))
    d, w = np.vstack(diffs), np.concatenate(weights) * len(diffs)
    lr = LogisticRegression(C=strength, fit_intercept=False, max_iter=3000)
    lr.fit(np.vstack([d, -d]), np.concatenate([np.ones(len(d)), np.zeros(len(d))]), sample_weight=np.concatenate([w, w]))
    return Ranker(FEATURES, mean_, scale, lr.coef_[0])


def compose_all(answerer: Answerer, samples: list[Sample], selector: Ranker) -> dict[str, tuple[bool, bool, int]]:
    """Per question id: (answer contains its line, answer opens with a fragment, thoughts quoted)."""
    composer = Composer(answerer.planner, answerer.similarity, selector)
    out = {}
    for s in samples:
        text, citations = composer.compose(s.plan)
        a = SimpleNamespace(found=bool(text), text=text, citations=citations)
        out[s.question.id] = (contains_line(a, s.question.answer), opens_with_fragment(a),
                              text.count("] ") + text.endswith("]"))
    return out


def with_choice(ranker: Ranker, margin: float, minimum: int, meta: dict | None = None) -> Ranker:
    return replace(ranker, meta={**(meta or {}), "margin": margin, "min_sentences": minimum})


def folds_of(samples: list[Sample], k: int) -> list[list[int]]:
    """``k`` folds of question indices dealt in id order; with ``k == 0``, one fold per writer
    (fitted on the other writers' questions: how the weights carry over to someone else's)."""
    if k == 0:
        writers: dict[str, list[int]] = {}
        for i, s in enumerate(samples):
            writers.setdefault(s.question.writer or "?", []).append(i)
        return list(writers.values())
    order = sorted(range(len(samples)), key=lambda i: samples[i].question.id)
    return [order[f::k] for f in range(k)]


def main(argv: list[str] | None = None) -> int:
    args = fit_arguments(__doc__.splitlines()[0], SELECTION_FILE, argv)

    archive = Archive(StoreConfig.from_env(args.index, args.chroma_url))
    answerer = Answerer(archive, llm=None)
    samples, left = collect(answerer, load_questions(Path(args.set)))
    labelled = [s for s in samples if s.matrix is not None]
    print(f"{len(samples)} tuning questions with a marked line answered from a gold decision "
          f"({len(labelled)} with the line among the quotable thoughts); left out: "
          + ", ".join(f"{n} {why}" for why, n in left.items()) + f"; {len(FEATURES)} features")
    grid: dict[tuple[float, float, int], list[bool]] = {}
    for c in STRENGTHS:
        for test in folds_of(samples, args.folds):
            held = set(test)
            weights = fit([s for i, s in enumerate(samples) if i not in held], c)
            for m in MARGINS:
                for k in MINIMUMS:
                    got = compose_all(answerer, [samples[i] for i in test], with_choice(weights, m, k))
                    grid.setdefault((c, m, k), []).extend(v[0] for v in got.values())
        print(f"C={c:g}: " + ", ".join(f"margin {m:g}/min {k}: {np.mean(grid[(c, m, k)]):.3f}"
                                       for m in MARGINS for k in MINIMUMS), flush=True)
    best = max(np.mean(v) for v in grid.values())
    c, m, k = min((key for key, v in grid.items() if np.mean(v) >= best - NEAR), key=lambda t: (t[1], t[2], t[0]))
    cross = float(np.mean(grid[(c, m, k)]))
    print(f"\nchosen: C={c:g}, margin {m:g}, at least {k} thought(s): cross-validated share of answers "
          f"containing their line {cross:.3f} (best of the grid {best:.3f})")
    across: dict[str, list[bool]] = {}
    for test in folds_of(samples, 0):
        held = set(test)
        got = compose_all(answerer, [samples[i] for i in test],
                          with_choice(fit([s for i, s in enumerate(samples) if i not in held], c), m, k))
        for i in test:
            across.setdefault(samples[i].question.kind, []).append(got[samples[i].question.id][0])
    every = [v for vs in across.values() for v in vs]
    print(f"across writers (fitted on the others' questions): {np.mean(every):.3f}; per kind: "
          + ", ".join(f"{kind} {np.mean(v):.3f}" for kind, v in sorted(across.items())))
    weights = fit(samples, c)
    final = compose_all(answerer, samples, with_choice(weights, m, k))
    kinds: dict[str, list[bool]] = {}
    for s in samples:
        kinds.setdefault(s.question.kind, []).append(final[s.question.id][0])
    print("fitted on all, per kind: " + ", ".join(f"{kind} {np.mean(v):.3f} ({len(v)})" for kind, v in sorted(kinds.items()))
          + f"; opening with a fragment: {sum(v[1] for v in final.values())}; "
          f"mean thoughts quoted {np.mean([v[2] for v in final.values()]):.2f}")
    print("\nweights (standardised features), largest first:")
    for name, w in sorted(zip(FEATURES, weights.weights), key=lambda nw: -abs(nw[1])):
        print(f"  {name:38s} {w:+.3f}")
    if args.write:
        command = "python -m eval.fit_sentences --write" + (f" --folds {args.folds}" if args.folds != 5 else "")
        meta = {
            "command": command,
            "date": dt.date.today().isoformat(),
            "fitted_on": f"{len(labelled)} questions of {Path(args.set).name} over "
                         f"{len(answerer.retriever.catalogue.decisions)} decisions",
            "model": "pairwise", "C": c,
            "cross_validated_contains_line": round(cross, 4),
            "across_writers_contains_line": round(float(np.mean(every)), 4),
            "grid": {f"C={key[0]:g} margin={key[1]:g} min={key[2]}": round(float(np.mean(v)), 4)
                     for key, v in sorted(grid.items())},
        }
        with_choice(weights, m, k, meta).save(args.out)
        print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
