"""The retrieval eval suite: question sets run against the index, retrievers side by side, the
tuning and the unseen questions side by side.

Two sets ship with the project: ``questions.jsonl`` (the tuning questions: the ranking function is
fitted and every constant chosen on them) and ``unseen.jsonl`` (written by someone who never saw
the ranking code, never fitted or tuned on: the figures to quote). Questions whose gold decisions
are not indexed are skipped and counted (so a seeds-only index runs the seeds part), and negative
questions are left to the answer-level checks. Failing questions are listed for the tuning set
only: reading the unseen failures would be tuning on them.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from eval.metrics import METRICS, Judged, mean, per_question
from index.decision import passage_id

HERE = Path(__file__).resolve().parent
QUESTIONS = HERE / "questions.jsonl"  # the tuning questions
UNSEEN = HERE / "unseen.jsonl"
SETS = (QUESTIONS, UNSEEN)
RETRIEVERS = ("bm25", "dense", "hybrid")
TUNING = "tuning"


def fit_arguments(description: str, weights: Path, argv: list[str] | None = None) -> argparse.Namespace:
    """The options every fit on the tuning questions takes (``eval.fit_ranker``,
    ``eval.fit_sentences``): the index, the question set (the unseen questions are refused: they
    are never fitted on), the folds, and whether and where to write the ``weights``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--index", help="the index to fit on (default: OMBUDSMAN_INDEX or data/index)")
    parser.add_argument("--chroma-url", default=None)
    parser.add_argument("--set", type=str, default=str(QUESTIONS), help="the tuning questions")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--write", action="store_true", help=f"save the chosen weights to {weights.name}")
    parser.add_argument("--out", type=Path, default=weights, help="where --write saves them")
    args = parser.parse_args(argv)
    if "unseen" in Path(args.set).name:
        parser.error("the unseen questions are never fitted on; give the tuning questions")
    logging.basicConfig(level=logging.WARNING)
    return args


@dataclass(frozen=True)
class Question:
    id: str
    kind: str
    question: str
    gold: tuple[str, ...]  # passage ids
    set: str = ""  # seeds or corpus
    outcome: str = ""
    split: str = TUNING  # tuning or unseen
    negative_kind: str = ""  # council, topic or mismatch (negatives only)
    answer: str = ""  # the sentence of a gold passage that best answers it
    alias: bool = False  # names a complainant that tells the right decision from a similar one
    writer: str = ""  # who wrote it (tuning questions: each writer's questions are a fold of their own)

    @property
    def negative(self) -> bool:
        return not self.gold


def load_questions(path: Path = QUESTIONS) -> list[Question]:
    """Read a JSONL question set; a malformed line is an error naming the file and line. A line's
    ``split`` defaults to ``unseen`` in a file named ``unseen*.jsonl``, else ``tuning``."""
    default_split = "unseen" if path.name.startswith("unseen") else TUNING
    out: list[Question] = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            q = json.loads(line)
            gold = tuple(passage_id(g["ref"], g["paragraph"]) for g in q.get("gold", ()))
            out.append(Question(q["id"], q["kind"], q["question"], gold, q.get("set", ""), q.get("outcome", ""),
                                q.get("split", default_split), q.get("negative", ""), q.get("answer", ""),
                                bool(q.get("alias")), q.get("writer", "")))
        except (ValueError, KeyError, TypeError) as e:
            raise ValueError(f"{path}, line {n}: not a question ({type(e).__name__}: {e})") from None
    return out


def load_sets(paths: tuple[Path, ...] | list[Path] = SETS) -> list[Question]:
    """Every question of the sets at ``paths`` (by default the tuning and the unseen questions)."""
    return [q for p in paths for q in load_questions(Path(p))]


@dataclass
class RetrieverResult:
    name: str
    overall: dict[str, dict[str, float]]  # split -> metric -> value
    by_kind: dict[str, dict[str, dict[str, float]]]  # split -> kind -> metric -> value
    by_set: dict[str, dict[str, dict[str, float]]]  # split -> seeds/corpus -> metric -> value
    rows: dict[str, dict[str, float]]
    ranked: dict[str, tuple[str, ...]]
    seconds: float


@dataclass
class EvalReport:
    questions: int
    scored: dict[str, int]  # per split
    skipped: list[str] = field(default_factory=list)  # question ids whose gold is not indexed
    results: dict[str, RetrieverResult] = field(default_factory=dict)
    answers: dict[str, dict[str, float]] = field(default_factory=dict)  # split -> answer-level checks
    failures: list[dict] = field(default_factory=list)  # tuning questions with no gold in the top 5
    unseen_failures: int = 0

    @property
    def splits(self) -> list[str]:
        return sorted(self.scored, key=lambda s: (s != TUNING, s))

    def to_json(self) -> dict:
        return {
            "questions": self.questions,
            "scored": self.scored,
            "skipped": len(self.skipped),
            "retrievers": {
                name: {"overall": r.overall, "by_kind": r.by_kind, "by_set": r.by_set, "seconds": round(r.seconds, 2)}
                for name, r in self.results.items()
            },
            "answers": self.answers,
            "failures": self.failures,
            "unseen_failures": self.unseen_failures,
        }


def evaluate(retriever, questions: list[Question], indexed_refs: set[str],
             retrievers: tuple[str, ...] = RETRIEVERS, k: int = 10) -> EvalReport:
    """Run every retriever over the questions whose gold decisions are all indexed."""
    scored = [q for q in questions if q.gold and all(g.split("#")[0].replace("-", " ") in indexed_refs for g in q.gold)]
    skipped = [q.id for q in questions if q.gold and q not in scored]
    counts: dict[str, int] = defaultdict(int)
    for q in scored:
        counts[q.split] += 1
    report = EvalReport(questions=len(questions), scored=dict(counts), skipped=skipped)
    for name in retrievers:
        start = time.perf_counter()
        ranked = {q.id: tuple(h.id for h in retriever.search(q.question, k=k, mode=name)) for q in scored}
        seconds = time.perf_counter() - start
        rows = per_question([Judged(q.id, q.gold, ranked[q.id]) for q in scored])
        groups: dict[tuple[str, str, str], list] = defaultdict(list)
        for q in scored:
            for key in (("all", q.split, ""), ("kind", q.split, q.kind), ("set", q.split, q.set or "all")):
                groups[key].append(rows[q.id])
        means = {key: mean(v) for key, v in groups.items()}
        overall = {s: m for (what, s, _), m in means.items() if what == "all"}
        by_kind: dict[str, dict[str, dict[str, float]]] = defaultdict(dict)
        by_set: dict[str, dict[str, dict[str, float]]] = defaultdict(dict)
        for (what, s, key), m in sorted(means.items()):
            if what == "kind":
                by_kind[s][key] = m
            elif what == "set":
                by_set[s][key] = m
        report.results[name] = RetrieverResult(name, overall, dict(by_kind), dict(by_set), rows, ranked, seconds)
    main = "hybrid" if "hybrid" in report.results else next(iter(report.results), None)
    if main:
        r = report.results[main]
        for q in scored:
            if r.rows[q.id]["recall@5"] == 0.0:
                if q.split != TUNING:
                    report.unseen_failures += 1
                    continue
                report.failures.append({
                    "id": q.id, "kind": q.kind, "question": q.question, "gold": list(q.gold),
                    "retrieved": list(r.ranked[q.id][:5]),
                })
    return report


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + ["| " + " | ".join(r) + " |" for r in rows]


def format_table(report: EvalReport) -> str:
    """The figures as Markdown: each retriever on each split, hybrid per question kind, the
    answer-level checks, and the failing tuning questions."""
    lines = ["Scored " + ", ".join(f"{n} {s}" for s, n in ((s, report.scored[s]) for s in report.splits))
             + " questions" + (f" ({len(report.skipped)} skipped: gold decisions not indexed)" if report.skipped else ""),
             ""]
    rows = [[name, s, *(f"{r.overall[s][m]:.3f}" for m in METRICS)]
            for name, r in report.results.items() for s in report.splits if s in r.overall]
    lines += _table(["retriever", "split", *METRICS], rows)
    main = report.results.get("hybrid") or next(iter(report.results.values()), None)
    if main:
        kinds = sorted({k for s in main.by_kind.values() for k in s})
        rows = [[kind, s, *(f"{main.by_kind[s][kind][m]:.3f}" for m in METRICS)]
                for kind in kinds for s in report.splits if kind in main.by_kind.get(s, {})]
        lines += ["", f"{main.name}, per question kind:"] + _table(["kind", "split", *METRICS], rows)
    if report.answers:
        checks = list(dict.fromkeys(c for s in report.answers.values() for c in s))
        splits = [s for s in report.splits if s in report.answers] + \
                 [s for s in report.answers if s not in report.scored]
        rows = [[c, *(_figure(report.answers[s].get(c)) for s in splits)]
                for c in checks]
        lines += ["", "Answer-level checks"] + _table(["check", *splits], rows)
    if report.failures:
        lines += ["", f"Failed tuning questions (no gold passage in the {main.name} top 5): {len(report.failures)}"]
        for f in report.failures:
            lines.append(f"- {f['id']} [{f['kind']}] {f['question']}")
            lines.append(f"    gold: {', '.join(f['gold'][:4])}{' …' if len(f['gold']) > 4 else ''}")
            lines.append(f"    got:  {', '.join(f['retrieved'])}")
    if report.unseen_failures:
        lines += ["", f"Unseen questions with no gold passage in the top 5: {report.unseen_failures} "
                      "(not listed: the unseen questions measure, they are not for tuning)"]
    return "\n".join(lines)


def _figure(value) -> str:
    """A share to three places, a count as it is, a check that does not apply as "-"."""
    if value is None:
        return "-"
    return str(value) if isinstance(value, int) else f"{value:.3f}"


def evaluate_archive(archive, questions: list[Question], retrievers: tuple[str, ...] = RETRIEVERS,
                     answers: bool = True) -> EvalReport:
    """Evaluate against an opened archive (the CLI's and the app's entry point), with the
    answer-level checks per split (``eval.answers``) unless ``answers`` is false."""
    retriever = archive.retriever
    report = evaluate(retriever, questions, set(retriever.catalogue.decisions), retrievers)
    if answers:
        from eval.answers import answer_all, score_answers

        made = answer_all(archive, questions)
        splits = sorted({q.split for q in questions})
        report.answers = {s: score_answers([q for q in questions if q.split == s and q.id in made], made)
                          for s in splits}
    return report
