"""Extractive composition: the answer's text made of sentences quoted word for word from the
planned paragraphs, each followed by its ``[n]``, under a label naming its decision.

Nothing is written but the quoted sentences, the labels (authority, reference, date, outcome),
the fixed notes for "not found" and "several decisions match", and for a question about fault or
remedy a first line stated from the decision's facts (``index.facts``: "No: the Ombudsman found no
fault.", "£300 for the distress caused.") followed at once by the sentences it rests on.
"""

from __future__ import annotations

from dataclasses import replace

from index.decision import passage_id
from index.lexical import tokenize
from rag.citation import Citation, format_date
from rag.parameters import MAX_SENTENCES, PER_DECISION_SENTENCES
from rag.ranker import Ranker
from rag.plan import COUNCIL, MISMATCH, Plan, Planner
from rag.retriever import Hit
from rag.selection import (Asked, Thought, asks_fault, asks_remedy, features, leans_back, load_selector, states_finding,
                           thoughts)
from rag.similarity import Similarity, sentences

DUPLICATE = 0.92  # cosine above which two sentences say the same thing (Summary vs Final decision)
MAX_QUOTED_PARAGRAPH = 8  # sentences quoted from a paragraph asked for by number


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


def asked(plan: Plan, residual: list[str], lexical=None) -> Asked:
    """What the planned question asks, for the sentence features (``lexical``: the archive's BM25
    index, for how rare each of the question's words is)."""
    q = plan.query
    rarity: dict[str, float] = {}
    if lexical is not None and residual:
        words = list(dict.fromkeys(residual))
        for w in words:
            rarity[w] = lexical.rarity(w)
    return Asked(why=q.why, outcome=plan.outcome_question, complaint=q.complaint,
                 remedy=asks_remedy(plan.search) and not q.complaint, fault=asks_fault(plan.search) and not q.complaint,
                 law=q.law, reference=bool(q.references) and q.paragraph is None,
                 words=frozenset(residual),
                 rarity=tuple(sorted(rarity.items())))


def pounds(amount: int) -> str:
    return f"£{amount:,}"


class Composer:
    """Chooses and quotes the sentences of an extractive answer."""

    def __init__(self, planner: Planner, similarity: Similarity, selector: Ranker | None = None) -> None:
        self.planner = planner
        self.similarity = similarity
        self.selector = selector  # the fitted sentence weights (default: rag/selection.json)

    def compose(self, plan: Plan) -> tuple[str, list[Citation]]:
        """The answer's text and its citations (numbered in order of first use)."""
        several = len(plan.decisions) > 1
        what = asked(plan, self.planner.residual(plan.query.content, plan.query), self.planner.retriever.catalogue.lexical)
        chosen: dict[str, tuple[str, list[Thought]]] = {}  # ref -> (first line from the facts, thoughts)
        for ref in plan.decisions:
            passages = list(plan.passages.get(ref, []))
            lead, required = ("", []) if several or plan.paragraph is not None else self.lead(ref, what, passages)
            limit = PER_DECISION_SENTENCES if several else MAX_SENTENCES
            picked = self.pick(plan, passages, limit, what, required)
            if picked:
                chosen[ref] = (lead, picked)
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
            if ref not in chosen:
                continue
            lead, mine = chosen[ref]
            body = []
            for t in mine:
                hit = t.hit
                n = numbers.setdefault(hit.id, len(numbers) + 1)
                hits[hit.id] = hit
                quoted.setdefault(hit.id, [])
                for piece in t.pieces:
                    if piece not in quoted[hit.id]:
                        quoted[hit.id].append(piece)
                body.append(f"{t.text} [{n}]")
            head = label(decisions.get(ref, {}), ref)
            stated = f"{lead}\n" if lead else ""  # the facts' first line stands apart from the quotes
            lines.append(f"{f'{i}. ' if several else ''}{head}:\n{stated}{' '.join(body)}")
        citations = [Citation(n, hits[pid], quoted[pid]) for pid, n in numbers.items()]
        return "\n\n".join(lines), citations

    def lead(self, ref: str, what: Asked, passages: list[Hit]) -> tuple[str, list[Thought]]:
        """For a question about fault or remedy, the first line stated from the decision's facts and
        the thoughts it rests on (quoted right after it); ``("", [])`` for other questions, or when
        the facts say nothing on the point. The paragraphs those thoughts come from join
        ``passages`` when the search did not bring them."""
        if not (what.fault or what.remedy):
            return "", []
        facts = self.planner.retriever.catalogue.decisions.get(ref, {}).get("facts") or {}
        fault, closed = facts.get("fault"), facts.get("closed_because") or []
        payments = [r for r in facts.get("remedies") or [] if r.get("kind") == "payment" and r.get("amount")]
        if what.remedy and payments:
            line = "; ".join(pounds(r["amount"]) + (f" for {r['for']}" if r.get("for") else "") for r in payments)
            support = [self.sentence_of(ref, r["paragraph"], r["text"], passages) for r in payments]
            unique = {(t.hit.id, t.index): t for t in support if t is not None}
            return f"{line[:1].upper()}{line[1:]}.", list(unique.values())
        if what.remedy and fault not in ("found", "partly") and (fault == "not found" or closed):
            text = "Nothing: the Ombudsman found no fault." if fault == "not found" else \
                "Nothing: the Ombudsman did not investigate the complaint."
        elif what.fault and fault in ("found", "not found", "partly"):
            text = {"found": "Yes: the Ombudsman found fault.", "not found": "No: the Ombudsman found no fault.",
                    "partly": "In part: the Ombudsman found fault in some of what was complained about."}[fault]
        elif what.fault and fault is None and closed:
            text = "The Ombudsman did not investigate, so made no finding on fault."
        else:
            return "", []
        where = facts.get("fault_paragraph") if fault is not None else closed[0]["paragraph"]
        hint = "" if fault is not None else closed[0]["text"]
        support = self.sentence_of(ref, where, hint, passages) if where is not None else None
        return (text, [support]) if support is not None else ("", [])

    def sentence_of(self, ref: str, paragraph, text: str, passages: list[Hit]) -> Thought | None:
        """The thought of ``ref``'s ``paragraph`` holding ``text`` (or, with no text, the first stating
        a finding), the paragraph fetched into ``passages`` if missing."""
        pid = passage_id(ref, paragraph)
        hit = next((h for h in passages if h.id == pid), None)
        if hit is None:
            hit = self.planner.retriever.passage(pid)
            if hit is None:
                return None
            hit = replace(hit, score=0.0)
            passages.append(hit)
        found = thoughts(hit)
        if text:
            return next((t for t in found if text in t.text or t.main in text), None)
        return next((t for t in found if states_finding(t.text)), None)

    def pick(self, plan: Plan, passages: list[Hit], limit: int, what: Asked,
             required: list[Thought] = ()) -> list[Thought]:
        """The thoughts of ``passages`` that best answer the question: ``required`` first, then the
        best by the fitted selection within its margin, best paragraph first and each paragraph's
        in the decision's order."""
        if not passages:
            return []
        if plan.paragraph is not None:
            hit = passages[0]
            return [Thought(hit, i, (s,)) for i, s in enumerate(sentences(hit.text)[:MAX_QUOTED_PARAGRAPH])]
        pool = [t for hit in passages for t in thoughts(hit)]
        if not pool:
            return []
        # An item is compared with the question by itself (its lead-in is shared by every item).
        vectors = self.similarity.embed([t.main for t in pool])
        sims = vectors @ self.similarity.question(plan.query)
        selector = self.selector or load_selector()
        scores = selector.score(features(pool, sims, what))
        margin = float((selector.meta or {})["margin"])
        least = int((selector.meta or {})["min_sentences"])
        key = {(t.hit.id, t.index): k for k, t in enumerate(pool)}
        chosen: list[int] = [key[(t.hit.id, t.index)] for t in required if (t.hit.id, t.index) in key][:limit]
        fixed = len(chosen)  # the required thoughts lead, in their order
        order = sorted(range(len(pool)), key=lambda k: (-scores[k], k))
        best = scores[order[0]]

        def add(k: int) -> None:
            need = [k]
            t = pool[k]
            if t.index > 0 and leans_back(t.main):
                prev = key.get((t.hit.id, t.index - 1))
                if prev is not None and prev not in chosen:
                    need.insert(0, prev)
            if len(chosen) + len(need) > limit:
                return
            if any(float(vectors[k] @ vectors[c]) > DUPLICATE or restates(pool[k].text, pool[c].text) for c in chosen):
                return
            chosen.extend(need)

        for k in order:
            if len(chosen) >= limit:
                break
            if k in chosen:
                continue
            if scores[k] >= best - margin or len(chosen) < min(least, limit):
                add(k)
            else:
                break
        head, rest = chosen[:fixed], chosen[fixed:]
        first: dict[str, float] = {}
        for k in rest:
            first[pool[k].hit.id] = max(first.get(pool[k].hit.id, -1e9), float(scores[k]))
        rest = sorted(rest, key=lambda k: (-first[pool[k].hit.id], pool[k].index))
        return [pool[k] for k in head + rest]

