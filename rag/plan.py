"""Planning an answer: which decisions answer a question, from which paragraphs, or why none does.

Before a sentence is chosen, the planner settles
- follow-ups: "and paragraph 16?" or "what did the council apologise for?" after an answer are
  about the decision under discussion;
- references: a question naming decisions is answered from them, or says which do not exist;
- refusals: a council that is not indexed (``council``), nothing relevant enough (``topic``), or
  a complainant the question names whom no relevant decision has (``mismatch``: never answer about
  Mrs X when asked about Mrs D; the closest decisions are shown, labelled as not matching);
- ambiguity: a question whose only cues (an alias such as "Mr X", an outcome, a council) fit
  several decisions is answered for the best few in turn.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from index.lexical import tokenize
from index.passage import SUMMARY
from rag.citation import PARAGRAPH_RE, available
from rag.councils import unindexed_places
from rag.parameters import ANSWERABLE_FROM, MAX_DECISIONS, RETRIEVED, SENTENCE_FLOOR
from rag.query import Query, aliases_fit
from rag.retriever import Filters, Hit, Retriever
from rag.similarity import Similarity

COUNCIL, TOPIC, MISMATCH, MISSING = "council", "topic", "mismatch", "missing"

OUTCOME_SECTIONS = {"summary", "final decision", "decision", "conclusions"}

_OUTCOME_WORDS = re.compile(
    r"\b(?:why|outcome|result|decid\w*|decision|happened|about|conclu\w*|find|found|uphold|upheld|closed|reasons?"
    r"|investigat\w*|fault)\b", re.I)
_CASE_WORDS = re.compile(r"\b(?:the|my|his|her|their|this|that|our)\s+(?:complaint|case|decision|appeal|matter)\b", re.I)
_FOLLOW_UP = re.compile(
    r"^\s*(?:and|also|so|then|what about|how about|ok|okay)\b|\b(?:the council|the authority|they|them|their|it|its|"
    r"he|him|his|she|her|this|that|the complaint|the decision|the case|the complainant|the ombudsman)\b", re.I)
# Words that say nothing about which decision is meant: with only these (and an alias such as
# "Mr X", an outcome or a council) a question fits every decision that shares those cues.
_GENERIC = (
    "why what how when where which who whom whose did does do done was were is are be been has have had the a an "
    "about with for of to in on at by from and or but not no it its this that these those my his her their our your "
    "me him them they he she we you i complaint complaints complain complained complains ombudsman ombudsmen "
    "council councils authority decision decisions decide decided outcome outcomes result happened happen happens "
    "case reason reasons investigate investigated investigation investigating closed close closing upheld uphold "
    "fault find found say said conclude concluded end ended reject rejected refuse refused decline declined look "
    "looked take taken whi didn wasn won wouldn isn doesn couldn can could would should will explain mr mrs ms miss "
    "mx dr x y z b c d matter appeal tell me please one ones first second third last mean meant"
)
_GENERIC_TOKENS = frozenset(tokenize(_GENERIC)) | frozenset(_GENERIC.split())


def _norm(text: str) -> str:
    return " " + re.sub(r"\s+", " ", re.sub(r"[^a-z0-9 ]", " ", text.lower().replace("&", " and "))).strip() + " "


def relevance(hits: list[Hit]) -> float:
    """How likely the best retrieved passage answers the question: the ranking function's
    calibrated probability for it (0 with no hits)."""
    return hits[0].score if hits else 0.0


def join_notes(*notes: str) -> str:
    return "; ".join(n for n in notes if n)


@dataclass
class Turn:
    """One exchange of a conversation: what was asked and what was answered (an ``Answer``)."""

    question: str
    answer: object | None = None


@dataclass
class Plan:
    """What an answer will be made of."""

    question: str  # as the user asked it
    search: str  # after resolving a follow-up ("and paragraph 16?" -> "24 016 809 paragraph 16")
    query: Query  # of ``search``
    hits: list[Hit]  # the retrieved paragraphs, best first
    found: bool = True
    refused: str = ""  # why not found: council, topic, mismatch or missing
    decisions: list[str] = field(default_factory=list)  # answered in turn, best first
    passages: dict[str, list[Hit]] = field(default_factory=dict)  # per decision, with their weight in .score
    paragraph: int | str | None = None  # a paragraph asked for by number (or "summary")
    note: str = ""
    missing: str = ""
    candidates: list[dict] = field(default_factory=list)
    relevance: float = 0.0  # the ranking function's probability that its first passage answers

    def refuse(self, why: str, note: str) -> "Plan":
        self.found, self.refused, self.note = False, why, join_notes(note, self.note)
        return self

    @property
    def outcome_question(self) -> bool:
        """Whether the question asks about the outcome or its reasons ("why", "closed", "found")."""
        q = self.query
        return bool(q.why or q.outcomes or _OUTCOME_WORDS.search(self.question))


class Planner:
    """Plans answers over one retriever; ``decision`` reads a stored decision by reference."""

    def __init__(self, retriever: Retriever, similarity: Similarity, decision) -> None:
        self.retriever = retriever
        self.similarity = similarity
        self.decision = decision

    def plan(self, question: str, history: list[Turn], filters: Filters) -> Plan:
        retriever = self.retriever
        cat = retriever.catalogue
        search, scope, resolved = self.resolve(question, history, filters)
        if scope:
            filters = replace(filters, ref=scope)
        query = retriever.understand(search)
        if query.references:
            return self._plan_references(question, search, query, filters, resolved)

        hits = retriever.search(search, k=RETRIEVED, filters=filters, query=query)
        if scope and relevance(hits) < ANSWERABLE_FROM:
            # The follow-up was not about the decision under discussion after all: search everything.
            filters = replace(filters, ref="")
            scope, resolved = "", ""
            hits = retriever.search(search, k=RETRIEVED, filters=filters, query=query)
        plan = Plan(question, search, query, hits, note=resolved)
        unknown = self.unknown_places(question, query)
        if unknown:
            names = " and ".join(unknown)
            return plan.refuse(COUNCIL, f"{names} {'is' if len(unknown) == 1 else 'are'} not among the indexed "
                                        f"authorities ({len(cat.decisions)} decisions are indexed)")
        plan.relevance = relevance(hits)
        # A user who chose the decision (the reference filter) asks about it, however the question
        # is worded; a follow-up kept to the decision under discussion passed the test above.
        chosen = bool(filters.ref) and not scope
        if not hits:
            return plan.refuse(TOPIC, "no indexed paragraph shares a word or a meaning with the question")
        if plan.relevance < ANSWERABLE_FROM and not chosen:
            return plan.refuse(TOPIC, f"no indexed paragraph is close enough to the question (the best one answers "
                                      f"it with probability {plan.relevance:.2f}, needs {ANSWERABLE_FROM:.2f})")
        sentence = self.similarity.relevance(query, hits)
        if sentence < SENTENCE_FLOOR and not chosen:
            return plan.refuse(TOPIC, f"no indexed sentence is close enough to the question (best similarity "
                                      f"{sentence:.2f}, needs {SENTENCE_FLOOR:.2f})")
        if query.aliases and not scope and not filters.ref and not self._keep_to_alias(plan, filters):
            return plan
        if not scope and not filters.ref and self._ambiguous(plan, filters):
            return plan
        plan.decisions = [plan.hits[0].ref]
        self._gather(plan, filters)
        return plan

    # -- the decision the question names -----------------------------------------------------

    def _keep_to_alias(self, plan: Plan, filters: Filters) -> bool:
        """Answer from a decision that has the complainant the question names: the best retrieved
        one, or the best of those that have the alias; when none is relevant enough, refuse with
        the closest passages shown as not matching. False when the plan was refused."""
        cat = self.retriever.catalogue
        query = plan.query

        def fits(ref: str) -> bool:
            return aliases_fit(query.aliases, cat.decisions.get(ref, {}).get("aliases", ()))

        if fits(plan.hits[0].ref):
            return True
        named = " and ".join(query.aliases)
        holders = {r for r in (self.retriever.allowed_refs(query, filters) or cat.decisions) if fits(r)}
        if holders:
            hits = self.retriever.search(plan.search, k=RETRIEVED, filters=filters, query=query, within=holders)
            if hits and relevance(hits) >= ANSWERABLE_FROM:
                plan.hits, plan.relevance = hits, relevance(hits)
                return True
        plan.refuse(MISMATCH, f"no indexed decision about {named} matches the question; the closest decisions "
                              f"below are about other complainants")
        return False

    # -- ambiguity ----------------------------------------------------------------------------

    def _ambiguous(self, plan: Plan, filters: Filters) -> bool:
        """Whether several decisions fit the question's cues about equally; if so the plan answers
        the best of them in turn (or the closest, saying how many fit)."""
        fitting = self.fitting(plan.query, plan.search, filters)
        if len(fitting) <= 1:
            return False
        ranked = [r for r in dict.fromkeys(h.ref for h in plan.hits) if r in fitting]
        rest = [r for r in fitting if r not in ranked]
        plan.candidates = [self.candidate(r) for r in (ranked + rest)[:10]]
        if len(ranked) >= 2:
            plan.decisions = ranked[:MAX_DECISIONS]
            plan.note = join_notes(
                f"several decisions match about equally ({len(fitting)} fit the question's cues and "
                "nothing else in it tells them apart); each of the best is answered in turn", plan.note)
        else:
            plan.decisions = ranked[:1] or [plan.hits[0].ref]
            plan.note = join_notes(
                f"{len(fitting)} decisions fit the question's cues; this answers the closest. Name the "
                "council, the reference or a detail to choose another", plan.note)
            plan.candidates = [c for c in plan.candidates if c["ref"] in plan.decisions] + \
                [c for c in plan.candidates if c["ref"] not in plan.decisions]
        self._gather(plan, filters)
        return True

    def residual(self, question: str, query: Query) -> list[str]:
        """The words of the question that could tell decisions apart (not generic, not cues)."""
        skip = set(_GENERIC_TOKENS)
        for a in query.authorities:
            skip |= set(tokenize(a)) | set(_norm(a).split())
        text = _norm(question)
        for name, authority in self.retriever.authorities.names:
            if authority in query.authorities:
                text = text.replace(f" {name} ", " ")
        return [t for t in tokenize(text) if t not in skip and len(t) > 1]

    def fitting(self, query: Query, question: str, filters: Filters) -> list[str]:
        """The decisions a case question fits equally: it names a complainant ("Mr X") or "the
        complaint", and nothing but cues that several decisions share (alias, outcome, council).

        "About equally" is decided by the question's cues, not by score gaps: the ranking's scores
        of the two best decisions are often close when its first decision is the right one.
        """
        if query.law or query.provision is not None:
            return []
        if not query.aliases and not _CASE_WORDS.search(question):
            return []
        if self.residual(question, query):
            return []
        cat = self.retriever.catalogue
        allowed = self.retriever.allowed_refs(query, filters)
        out = []
        for ref, d in cat.decisions.items():
            if allowed is not None and ref not in allowed:
                continue
            if query.aliases and not aliases_fit(query.aliases, d.get("aliases", ())):
                continue
            if query.outcomes and d.get("outcome") not in query.outcomes:
                continue
            out.append(ref)
        return out

    def candidate(self, ref: str) -> dict:
        d = self.retriever.catalogue.decisions.get(ref, {})
        return {"ref": ref, "authority": d.get("authority", ""), "decision_date": d.get("decision_date", ""),
                "outcome": d.get("outcome", "")}

    def unknown_places(self, question: str, query: Query) -> list[str]:
        """Councils the question names that are not indexed (answering them would mislead)."""
        if query.authorities or query.references:
            return []
        authorities = [d["authority"] for d in self.retriever.catalogue.decisions.values()]
        return unindexed_places(question, authorities, self.retriever.is_word)

    # -- references and follow-ups ----------------------------------------------------------------

    def _plan_references(self, question: str, search: str, query: Query, filters: Filters, resolved: str) -> Plan:
        """A question naming decisions by reference: answer from them, or say which do not exist."""
        retriever = self.retriever
        cat = retriever.catalogue
        indexed = [r for r in query.references if r in cat.decisions]
        absent = [r for r in query.references if r not in cat.decisions]
        hits = retriever.search(search, k=RETRIEVED, filters=filters, query=query) if indexed else []
        plan = Plan(question, search, query, hits, note=resolved)
        if absent:
            from index.store import nearest_references

            near = nearest_references(absent[0], list(cat.decisions))
            plan.missing = (f"decision {absent[0]} is not indexed"
                            + (f"; the nearest indexed references are {', '.join(near)}" if near else ""))
        if not indexed:
            plan.found, plan.refused, plan.note = False, MISSING, plan.missing
            return plan
        plan.decisions = indexed[:MAX_DECISIONS]
        if query.paragraph is not None and len(indexed) == 1:
            ref = indexed[0]
            pid = f"{ref.replace(' ', '-')}#{query.paragraph}"
            if pid not in cat.passages:
                d = self.decision(ref)
                what = "Summary" if query.paragraph == SUMMARY else f"paragraph {query.paragraph}"
                plan.missing = f"{ref} has no {what}; it has {available(d)}"
                plan.found, plan.refused, plan.note, plan.decisions = False, MISSING, plan.missing, []
                return plan
            plan.paragraph = query.paragraph
        if len(indexed) > 1:
            plan.candidates = [self.candidate(r) for r in indexed]
            plan.note = join_notes("the question names several decisions; each is answered in turn", plan.note)
        if plan.missing:
            plan.note = join_notes(plan.missing, plan.note)
        self._gather(plan, filters)
        return plan

    def resolve(self, question: str, history: list[Turn], filters: Filters) -> tuple[str, str, str]:
        """(question to search, decision to keep to, note) for a follow-up in a conversation.

        "and paragraph 16?" becomes "24 016 809 paragraph 16"; "what did the council apologise
        for?" is searched within the decision under discussion (the last answer's main cited
        decision). After an answer covering several decisions, naming one of them ("the
        Leicestershire one", "24 016 809") asks the earlier question of that decision.
        """
        last = next((t for t in reversed(history) if t.answer is not None and t.answer.found), None)
        if last is None or filters.ref:
            return question, "", ""
        retriever = self.retriever
        query = retriever.understand(question)
        previous = last.answer
        if previous.decision is None and len(previous.candidates) > 1:
            refs = [c["ref"] for c in previous.candidates]
            chosen = [r for r in query.references if r in refs]
            if not chosen and query.authorities:
                chosen = [c["ref"] for c in previous.candidates if c["authority"] in query.authorities]
            if len(chosen) == 1 and not self.residual(question, query):
                return last.question, chosen[0], f"answering the earlier question for {chosen[0]}"
            return question, "", ""
        main = previous.decision
        if main is None or query.references:
            return question, "", ""
        decision = retriever.catalogue.decisions.get(main, {})
        if query.authorities and decision.get("authority") not in query.authorities:
            return question, "", ""
        if query.aliases and not aliases_fit(query.aliases, decision.get("aliases", ())):
            return question, "", ""
        if self.unknown_places(question, query):
            return question, "", ""
        about = f"following up on {main}"
        if PARAGRAPH_RE.search(question) or re.fullmatch(r"\W*(?:and\s+)?(?:the\s+)?summary\W*", question, re.I):
            return f"{main} {question}", "", about
        if _FOLLOW_UP.search(question):
            return question, main, about
        return question, "", ""

    def _gather(self, plan: Plan, filters: Filters) -> None:
        """The paragraphs each answered decision is quoted from: its retrieved paragraphs, its best
        paragraphs for the question, and for questions about the outcome its Summary and Final decision."""
        retriever = self.retriever
        cat = retriever.catalogue
        for ref in plan.decisions:
            chosen: dict[str, Hit] = {}
            if plan.paragraph is not None:
                pid = f"{ref.replace(' ', '-')}#{plan.paragraph}"
                hit = next((h for h in plan.hits if h.id == pid), None) or retriever.passage(pid)
                if hit is not None:
                    plan.passages[ref] = [replace(hit, score=1.0)]
                continue
            own = [h for h in plan.hits if h.ref == ref]
            more = retriever.search(plan.search, k=6, filters=replace(filters, ref=ref), query=plan.query,
                                    per_decision=0)
            top = max((h.score for h in own + more), default=1.0) or 1.0
            for h in own + more:
                if h.id not in chosen:
                    chosen[h.id] = replace(h, score=h.score / top)
            if plan.outcome_question or plan.query.references:
                for pid in cat.by_ref.get(ref, ()):
                    if pid.endswith(f"#{SUMMARY}") or cat.passages[pid].section.lower() in OUTCOME_SECTIONS:
                        if pid not in chosen:
                            hit = retriever.passage(pid)
                            if hit is not None:
                                chosen[pid] = replace(hit, score=0.0)
            plan.passages[ref] = list(chosen.values())
