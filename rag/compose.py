"""Extractive composition: the answer's text made of sentences quoted word for word from the
planned paragraphs, each followed by its ``[n]``, under a label naming its decision.

Nothing is written but the quoted sentences, the labels (authority, reference, date, outcome) and
the fixed notes for "not found" and "several decisions match".
"""

from __future__ import annotations

import re

import numpy as np

from index.lexical import tokenize
from index.passage import SUMMARY
from rag.citation import Citation, format_date
from rag.evidence import section_role
from rag.plan import COUNCIL, MISMATCH, Plan, Planner
from rag.retriever import Hit
from rag.similarity import Similarity, sentences

MAX_SENTENCES = 4  # in a single-decision answer
MIN_SENTENCES = 2
PER_DECISION_SENTENCES = 2  # in an answer that covers several decisions
MARGIN = 0.12  # a sentence joins the answer when it scores within this of the best one
SECOND_MARGIN = 0.25  # ... or, to reach MIN_SENTENCES, within this
DUPLICATE = 0.92  # cosine above which two sentences say the same thing (Summary vs Final decision)
RANK_BONUS = 0.10  # for sentences of paragraphs the retriever ranked higher
LEXICAL_BONUS = 0.15  # times the share of the question's distinctive words the sentence contains
STRUCTURE_BONUS = 0.15  # Summary / Final decision, for questions about the outcome or its reasons
ASSESSMENT_BONUS = 0.05  # "My assessment" and similar, for "why" questions
FURNITURE_PENALTY = 0.10  # standard sections ("role and powers") unless the question is about the law
SUMMARY_FIRST_BONUS = 0.30  # a reference asked about with no paragraph: its Summary says what it decided
MAX_QUOTED_PARAGRAPH = 8  # sentences quoted from a paragraph asked for by number

_ANAPHOR = re.compile(r"^(?:This|That|These|Those|It|Its|They|Their|He|His|She|Her|However|But|So|Therefore|Also|"
                      r"And|As a result|In addition|Because of this)\b")


def label(decision: dict, ref: str) -> str:
    """``Leicestershire County Council (24 016 809), decided 9 April 2025 (Closed after initial enquiries)``."""
    text = f"{decision.get('authority') or 'Unknown authority'} ({ref})"
    if decision.get("decision_date"):
        text += f", decided {format_date(decision['decision_date'])}"
    if decision.get("outcome"):
        text += f" ({decision['outcome']})"
    return text


def restates(sentence: str, other: str) -> bool:
    """Whether ``sentence`` adds no words to ``other``: the Summary often repeats the Final decision
    in other order ("This is because there is not enough evidence ..."), which embeddings score
    as only moderately similar."""
    words = set(tokenize(sentence)) - {"mr", "mrs", "ms", "miss", "dr", "x"}
    return bool(words) and len(words - set(tokenize(other))) <= max(1, len(words) // 10)


def not_found_text(plan: Plan) -> str:
    """What an answer says when nothing indexed answers the question, and why."""
    if plan.missing:
        text = f"{plan.missing[0].upper()}{plan.missing[1:]}."
    elif plan.refused == COUNCIL:
        text = f"The indexed decisions do not cover this question: {plan.note}."
    elif plan.refused == MISMATCH:
        text = f"No indexed decision fits this question: {plan.note}."
    else:
        text = "The indexed decisions do not cover this question: no indexed paragraph is close enough to answer it."
    if plan.hits:
        text += (" The closest passages are listed below, labelled as not matching, for you to judge."
                 if plan.refused == MISMATCH else " The closest passages are listed below for you to judge.")
    return text


class Composer:
    """Chooses and quotes the sentences of an extractive answer."""

    def __init__(self, planner: Planner, similarity: Similarity) -> None:
        self.planner = planner
        self.similarity = similarity

    def compose(self, plan: Plan) -> tuple[str, list[Citation]]:
        """The answer's text and its citations (numbered in order of first use)."""
        several = len(plan.decisions) > 1
        chosen: list[tuple[str, Hit, str]] = []  # (decision ref, hit, sentence)
        for ref in plan.decisions:
            limit = PER_DECISION_SENTENCES if several else MAX_SENTENCES
            for hit, sentence in self.pick(plan, plan.passages.get(ref, []), limit):
                chosen.append((ref, hit, sentence))
        if not chosen:
            return "", []
        numbers: dict[str, int] = {}
        quoted: dict[str, list[str]] = {}
        hits: dict[str, Hit] = {}
        lines: list[str] = []
        if several:
            lines.append("Several indexed decisions match this question; here is what each says "
                         "(name the council, the reference or a detail to choose one):"
                         if len(plan.candidates) > len(plan.decisions) or plan.query.aliases
                         else "The question names several decisions; here is what each says:")
        decisions = self.planner.retriever.catalogue.decisions
        for i, ref in enumerate(plan.decisions, start=1):
            mine = [(h, s) for r, h, s in chosen if r == ref]
            if not mine:
                continue
            body = []
            for hit, sentence in mine:
                n = numbers.setdefault(hit.id, len(numbers) + 1)
                hits[hit.id] = hit
                quoted.setdefault(hit.id, [])
                if sentence not in quoted[hit.id]:
                    quoted[hit.id].append(sentence)
                body.append(f"{sentence} [{n}]")
            head = label(decisions.get(ref, {}), ref)
            lines.append(f"{f'{i}. ' if several else ''}{head}:\n{' '.join(body)}")
        citations = [Citation(n, hits[pid], quoted[pid]) for pid, n in numbers.items()]
        return "\n\n".join(lines), citations

    def pick(self, plan: Plan, passages: list[Hit], limit: int) -> list[tuple[Hit, str]]:
        """The sentences of ``passages`` that best answer the question, in the decision's order."""
        if not passages:
            return []
        if plan.paragraph is not None:
            hit = passages[0]
            return [(hit, s) for s in sentences(hit.text)[:MAX_QUOTED_PARAGRAPH]]
        query = plan.query
        summary_first = bool(query.references) and query.paragraph is None
        items: list[tuple[Hit, int, str]] = []
        for hit in passages:
            for i, s in enumerate(sentences(hit.text)):
                items.append((hit, i, s))
        if not items:
            return []
        vectors = self.similarity.embed([s for _, _, s in items])
        sims = vectors @ self.similarity.question(query)
        words = set(self.planner.residual(query.content, query))
        scores = []
        for (hit, _, s), sim in zip(items, sims):
            role = section_role(hit.section, hit.paragraph)
            score = float(sim) + RANK_BONUS * hit.score
            if words:
                score += LEXICAL_BONUS * len(words & set(tokenize(s))) / len(words)
            if plan.outcome_question and role in ("summary", "decision"):
                score += STRUCTURE_BONUS
            if query.why and role == "assessment":
                score += ASSESSMENT_BONUS
            if summary_first and hit.paragraph == SUMMARY:
                score += SUMMARY_FIRST_BONUS
            if not query.law and role in ("powers", "procedure"):
                score -= FURNITURE_PENALTY
            if s.startswith(("•", "(")) or len(s.split()) < 4:
                score -= 0.2  # list items and bare citations read badly on their own
            scores.append(score)
        order = sorted(range(len(items)), key=lambda k: -scores[k])
        best = scores[order[0]]
        chosen: list[int] = []

        def add(k: int) -> bool:
            need = [k]
            hit, i, s = items[k]
            if _ANAPHOR.match(s) and i > 0:
                prev = next((j for j, it in enumerate(items) if it[0].id == hit.id and it[1] == i - 1), None)
                if prev is not None and prev not in chosen:
                    need.insert(0, prev)
            if len(chosen) + len(need) > limit:
                return False
            if any(float(vectors[k] @ vectors[c]) > DUPLICATE or restates(s, items[c][2]) for c in chosen):
                return False
            chosen.extend(need)
            return True

        for k in order:
            if len(chosen) >= limit:
                break
            if scores[k] >= best - MARGIN or (len(chosen) < MIN_SENTENCES and scores[k] >= best - SECOND_MARGIN):
                add(k)
            elif len(chosen) >= MIN_SENTENCES:
                break
        if not chosen:
            chosen = [order[0]]

        # Best paragraph first; within a paragraph, the decision's own order (so "This is because ..."
        # follows what it refers to).
        first: dict[str, float] = {}
        for k in chosen:
            pid = items[k][0].id
            first[pid] = max(first.get(pid, -9.0), scores[k])
        ordered = sorted(chosen, key=lambda k: (-first[items[k][0].id], items[k][1]))
        return [(items[k][0], items[k][2]) for k in ordered]
