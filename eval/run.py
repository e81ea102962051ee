"""The retrieval eval suite: run a question set against the index, retrievers side by side.

Questions whose gold decisions are not indexed are skipped and counted (so a seeds-only index runs
the seeds part of the set), and negative questions are left to the answer-level checks.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from eval.metrics import METRICS, Judged, mean, per_question
from index.decision import passage_id

QUESTIONS = Path(__file__).resolve().parent / "questions.jsonl"
RETRIEVERS = ("bm25", "dense", "hybrid")


@dataclass(frozen=True)
class Question:
    id: str
    kind: str
    question: str
    gold: tuple[str, ...]  # passage ids
    set: str = ""
    outcome: str = ""

    @property
    def negative(self) -> bool:
        return not self.gold


def load_questions(path: Path = QUESTIONS) -> list[Question]:
    """Read a JSONL question set; a malformed line is an error naming the file and line."""
    out: list[Question] = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            q = json.loads(line)
            gold = tuple(passage_id(g["ref"], g["paragraph"]) for g in q.get("gold", ()))
            out.append(Question(q["id"], q["kind"], q["question"], gold, q.get("set", ""), q.get("outcome", "")))
        except (ValueError, KeyError, TypeError) as e:
            raise ValueError(f"{path}, line {n}: not a question ({type(e).__name__}: {e})") from None
    return out


@dataclass
class RetrieverResult:
    name: str
    overall: dict[str, float]
    by_kind: dict[str, dict[str, float]]
    by_set: dict[str, dict[str, float]]
    rows: dict[str, dict[str, float]]
    ranked: dict[str, tuple[str, ...]]
    seconds: float


@dataclass
class EvalReport:
    questions: int
    scored: int
    skipped: list[str] = field(default_factory=list)  # question ids whose gold is not indexed
    results: dict[str, RetrieverResult] = field(default_factory=dict)
    answers: dict[str, float] = field(default_factory=dict)  # answer-level checks, when run
    failures: list[dict] = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "questions": self.questions,
            "scored": self.scored,
            "skipped": len(self.skipped),
            "retrievers": {
                name: {"overall": r.overall, "by_kind": r.by_kind, "by_set": r.by_set,
                       "seconds": round(r.seconds, 2)}
                for name, r in self.results.items()
            },
            "answers": self.answers,
            "failures": self.failures,
        }


def evaluate(retriever, questions: list[Question], indexed_refs: set[str],
             retrievers: tuple[str, ...] = RETRIEVERS, k: int = 10) -> EvalReport:
    """Run every retriever over the questions whose gold decisions are all indexed."""
    scored = [q for q in questions if q.gold and all(g.split("#")[0].replace("-", " ") in indexed_refs for g in q.gold)]
    skipped = [q.id for q in questions if q.gold and q not in scored]
    report = EvalReport(questions=len(questions), scored=len(scored), skipped=skipped)
    for name in retrievers:
        start = time.perf_counter()
        ranked = {q.id: tuple(h.id for h in retriever.search(q.question, k=k, mode=name)) for q in scored}
        seconds = time.perf_counter() - start
        rows = per_question([Judged(q.id, q.gold, ranked[q.id]) for q in scored])
        by_kind: dict[str, list] = defaultdict(list)
        by_set: dict[str, list] = defaultdict(list)
        for q in scored:
            by_kind[q.kind].append(rows[q.id])
            by_set[q.set or "all"].append(rows[q.id])
        report.results[name] = RetrieverResult(
            name, mean(list(rows.values())), {k_: mean(v) for k_, v in sorted(by_kind.items())},
            {k_: mean(v) for k_, v in sorted(by_set.items())}, rows, ranked, seconds,
        )
    main = "hybrid" if "hybrid" in report.results else next(iter(report.results), None)
    if main:
        r = report.results[main]
        for q in scored:
            if r.rows[q.id]["recall@5"] == 0.0:
                report.failures.append({
                    "id": q.id, "kind": q.kind, "question": q.question, "gold": list(q.gold),
                    "retrieved": list(r.ranked[q.id][:5]),
                })
    return report


def format_table(report: EvalReport) -> str:
    """The metrics table as Markdown: overall, then per question kind."""
    lines = []
    head = "| retriever | " + " | ".join(METRICS) + " |"
    rule = "|---|" + "---|" * len(METRICS)
    lines += [f"Scored {report.scored} of {report.questions} questions"
              + (f" ({len(report.skipped)} skipped: gold decisions not indexed)" if report.skipped else ""), "",
              head, rule]
    for name, r in report.results.items():
        lines.append(f"| {name} | " + " | ".join(f"{r.overall[m]:.3f}" for m in METRICS) + " |")
    kinds = sorted({k for r in report.results.values() for k in r.by_kind})
    for kind in kinds:
        lines += ["", f"kind: {kind}", head, rule]
        for name, r in report.results.items():
            if kind in r.by_kind:
                lines.append(f"| {name} | " + " | ".join(f"{r.by_kind[kind][m]:.3f}" for m in METRICS) + " |")
    if report.answers:
        lines += ["", "Answer-level checks"]
        lines += [f"- {k}: {v:.3f}" if isinstance(v, float) else f"- {k}: {v}" for k, v in report.answers.items()]
    if report.failures:
        lines += ["", f"Failed questions (no gold passage in the hybrid top 5): {len(report.failures)}"]
        for f in report.failures:
            lines.append(f"- {f['id']} [{f['kind']}] {f['question']}")
            lines.append(f"    gold: {', '.join(f['gold'][:4])}{' …' if len(f['gold']) > 4 else ''}")
            lines.append(f"    got:  {', '.join(f['retrieved'])}")
    return "\n".join(lines)


def evaluate_archive(archive, questions: list[Question], retrievers: tuple[str, ...] = RETRIEVERS,
                     answers: bool = True) -> EvalReport:
    """Evaluate against an opened archive (the CLI's and the app's entry point), with the
    answer-level checks (outcome questions citing the gold decision, citations containing their
    sentences, negatives answered "not found") unless ``answers`` is false."""
    retriever = archive.retriever
    report = evaluate(retriever, questions, set(retriever.catalogue.decisions), retrievers)
    if answers:
        from rag.answer import answer_checks

        report.answers = answer_checks(archive, questions)
    return report
