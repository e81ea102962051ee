"""Grounded answers: a few sentences, each quoting a retrieved paragraph and carrying its ``[n]``.

The default answerer is extractive and offline: it picks the sentences of the retrieved paragraphs
that best answer the question (embedding similarity, plus what the decision's structure says: the
Summary and "Final decision" state the outcome and the reason) and quotes them word for word. It
never writes a sentence of its own except the labels naming a decision (authority, reference,
date, outcome) and the fixed notes for "not found" and "several decisions match".

It says so instead of guessing when
- nothing indexed is close enough to the question (``NOT_FOUND_BELOW``), or the question names a
  council that is not indexed: the answer is "not found" with the closest passages to judge;
- the question fits several decisions equally (e.g. "Mr X" and nothing else that tells them
  apart): it answers for the best two or three in turn and lists the candidates;
- a reference or paragraph it names does not exist: ``missing`` says so with the valid choices.

With ``OMBUDSMAN_LLM_URL`` and ``OMBUDSMAN_LLM_MODEL`` set, a language model writes the answer from
the same numbered paragraphs (see ``rag.llm``); any failure falls back to the extractive answer.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass, field, replace
from typing import Iterator

import numpy as np

from index.passage import SUMMARY
from index.sentence import split_sentences
from rag.citation import PARAGRAPH_RE, available, citation_line, format_date
from rag.llm import LLMClient, LLMError, Source, build_messages, check_output, fit_sources
from rag.question import check_question
from rag.query import names_place
from rag.retriever import Filters, Hit

log = logging.getLogger(__name__)

EXTRACTIVE, GENERATED, FALLBACK = "extractive", "generated", "extractive-fallback"

# Tuned on eval/questions.jsonl with eval/tune_not_found.py (the measured separation is in its
# docstring): the best cosine similarity between the question and any sentence of the retrieved
# paragraphs. Below it, nothing indexed answers the question.
NOT_FOUND_BELOW = 0.47
K = 10  # paragraphs retrieved per question
MAX_SENTENCES = 4  # in a single-decision answer
MIN_SENTENCES = 2
PER_DECISION_SENTENCES = 2  # in an answer that covers several decisions
MAX_DECISIONS = 3  # answered in turn when several match equally
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

OUTCOME_SECTIONS = {"summary", "final decision", "decision", "conclusions"}
REASON_SECTIONS = {"my assessment", "assessment", "analysis", "what i found", "findings", "conclusions",
                   "agreed action", "my findings"}
FURNITURE_SECTIONS = ("role and powers", "how i considered", "what i have investigated",
                      "what i have and have not investigated", "how i considered this complaint")

_OUTCOME_WORDS = re.compile(
    r"\b(?:why|outcome|result|decid\w*|decision|happened|about|conclu\w*|find|found|uphold|upheld|closed|reasons?"
    r"|investigat\w*|fault)\b", re.I)
_ANAPHOR = re.compile(r"^(?:This|That|These|Those|It|Its|They|Their|He|His|She|Her|However|But|So|Therefore|Also|"
                      r"And|As a result|In addition|Because of this)\b")
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


# -- the answer ---------------------------------------------------------------------------------


@dataclass
class Citation:
    """One cited paragraph: the hit (whole paragraph and its metadata) and the sentences quoted from it."""

    n: int
    hit: Hit
    sentences: list[str]

    @property
    def citation(self) -> str:
        h = self.hit
        return citation_line(h.authority, h.ref, h.paragraph, h.decision_date, h.url)

    def to_json(self) -> dict:
        out = self.hit.to_json()
        out.update(n=self.n, sentences=list(self.sentences), citation=self.citation)
        return out


@dataclass
class Answer:
    """An answer as ARCHITECTURE.md's ``ask`` shape, plus how it was made.

    ``text`` carries ``[n]`` markers referring to ``citations[n-1]``. ``mode`` is ``extractive``,
    ``generated`` or ``extractive-fallback``; ``note`` says why it fell back, that several
    decisions match, or what validation removed. ``candidates`` lists the decisions considered when
    several match; ``closest`` the passages nearest a question that was not found. ``missing``
    is set when the question names a reference or paragraph that does not exist.
    """

    question: str
    text: str
    found: bool
    citations: list[Citation] = field(default_factory=list)
    mode: str = EXTRACTIVE
    note: str = ""
    candidates: list[dict] = field(default_factory=list)
    closest: list[Hit] = field(default_factory=list)
    missing: str = ""

    @property
    def decision(self) -> str | None:
        """The decision under discussion (for follow-up questions): None when not found or when
        several decisions were answered in turn."""
        if not self.found or not self.citations or len(self.candidates) > 1:
            return None
        return self.citations[0].hit.ref

    def to_json(self) -> dict:
        return {
            "question": self.question,
            "answer": self.text,
            "found": self.found,
            "citations": [c.to_json() for c in self.citations],
            "mode": self.mode,
            "note": self.note,
            "candidates": self.candidates,
            "closest": [h.to_json() for h in self.closest],
            "missing": self.missing,
        }


@dataclass
class Turn:
    """One exchange of a conversation: what was asked and what was answered."""

    question: str
    answer: Answer | None = None


# -- what the answerer decided to answer ----------------------------------------------------------


@dataclass
class _Plan:
    question: str  # as the user asked it
    search: str  # after resolving a follow-up ("and paragraph 16?" -> "24 016 809 paragraph 16")
    query: object  # rag.query.Query of ``search``
    hits: list[Hit]  # the retrieved paragraphs, best first
    found: bool = True
    decisions: list[str] = field(default_factory=list)  # answered in turn, best first
    passages: dict[str, list[Hit]] = field(default_factory=dict)  # per decision, with their weight in .score
    paragraph: int | str | None = None  # a paragraph asked for by number (or "summary")
    note: str = ""
    missing: str = ""
    candidates: list[dict] = field(default_factory=list)
    relevance: float = 0.0
    sources: dict = field(default_factory=dict)  # n -> (Source, Hit) given to the language model


def _norm(text: str) -> str:
    return " " + re.sub(r"\s+", " ", re.sub(r"[^a-z0-9 ]", " ", text.lower().replace("&", " and "))).strip() + " "


class Answerer:
    """Answers questions from an archive's retriever; thread-safe, one per archive.

    ``llm``: a ``rag.llm.LLMClient`` to generate answers, None for extractive only, or the default
    ``"env"``: generate when ``OMBUDSMAN_LLM_URL`` and ``OMBUDSMAN_LLM_MODEL`` are set.
    """

    def __init__(self, archive, llm: LLMClient | None | str = "env") -> None:
        self.archive = archive
        self.llm = LLMClient.from_env() if llm == "env" else llm
        self._vectors: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()
        self._generic: frozenset[str] | None = None

    @property
    def retriever(self):
        return self.archive.retriever

    # -- public API ---------------------------------------------------------------------------

    def answer(self, question: str, history: list[Turn] | None = None, filters: Filters | None = None) -> Answer:
        """The answer to ``question`` in the conversation ``history`` (earlier turns, oldest first).

        Raises ``ValueError`` (with a message for the user) when the question is empty or too long.
        """
        result = None
        for piece in self._run(question, history, filters, streaming=False):
            result = piece
        assert isinstance(result, Answer)
        return result

    def stream(self, question: str, history: list[Turn] | None = None,
               filters: Filters | None = None) -> Iterator[str | Answer]:
        """Yield the answer text as it grows, then the final ``Answer``.

        Each ``str`` is the whole text so far (each one extends the one before; a chat window can
        show it as is). Extractive answers grow sentence by sentence; generated ones as the model
        writes (the request uses ``stream: true``). The final ``Answer`` is authoritative: a
        generated text is validated before it is returned, and on failure the extractive answer
        replaces it (mode ``extractive-fallback``), so show the final ``Answer.text`` in place of
        what was streamed.
        """
        yield from self._run(question, history, filters, streaming=True)

    def _run(self, question: str, history: list[Turn] | None, filters: Filters | None,
             streaming: bool) -> Iterator[str | Answer]:
        question = check_question(question)
        plan = self._plan(question, history or [], filters or Filters())
        if self.llm is not None and plan.found and plan.decisions:
            try:
                shown = ""
                for text in self._generate(plan, history or [], streaming):
                    shown = text
                    if streaming:
                        yield text
                generated = self._generated_answer(plan, shown)
                if streaming:
                    yield generated.text
                yield generated
                return
            except LLMError as e:
                log.warning("generation failed, answering extractively: %s", e)
                extractive = self._extractive(plan)
                extractive.mode = FALLBACK
                extractive.note = _join_notes(f"{e}; this is the extractive answer instead", extractive.note)
                if streaming:
                    yield from _growing(extractive.text)
                yield extractive
                return
        answer = self._extractive(plan)
        if streaming:
            yield from _growing(answer.text)
        yield answer

    # -- planning -------------------------------------------------------------------------------

    def _plan(self, question: str, history: list[Turn], filters: Filters) -> _Plan:
        retriever = self.retriever
        cat = retriever.catalogue
        search, scope, resolved = self._resolve(question, history, filters)
        if scope:
            filters = replace(filters, ref=scope)
        query = retriever.understand(search)

        if query.references:
            return self._plan_references(question, search, query, filters, resolved)

        hits = retriever.search(search, k=K, filters=filters, query=query)
        if scope and self._relevance(query, hits) < NOT_FOUND_BELOW:
            # The follow-up was not about the decision under discussion after all: search everything.
            filters = replace(filters, ref="")
            scope, resolved = "", ""
            hits = retriever.search(search, k=K, filters=filters, query=query)
        plan = _Plan(question, search, query, hits, note=resolved)
        unknown = self._unknown_places(question, query)
        if unknown:
            names = " and ".join(unknown)
            plan.found = False
            plan.note = (f"{names} {'is' if len(unknown) == 1 else 'are'} not among the indexed authorities "
                         f"({len(cat.decisions)} decisions are indexed)")
            return plan
        plan.relevance = self._relevance(query, hits)
        if not hits or plan.relevance < NOT_FOUND_BELOW:
            plan.found = False
            plan.note = (f"no indexed paragraph is close enough to the question (best sentence similarity "
                         f"{plan.relevance:.2f}, needs {NOT_FOUND_BELOW:.2f})")
            return plan

        if not scope and not filters.ref:
            fitting = self._fitting(query, search, filters)
            if len(fitting) > 1:
                ranked = [r for r in dict.fromkeys(h.ref for h in hits) if r in fitting]
                rest = [r for r in fitting if r not in ranked]
                plan.candidates = [self._candidate(r) for r in (ranked + rest)[:10]]
                if len(ranked) >= 2:
                    plan.decisions = ranked[:MAX_DECISIONS]
                    plan.note = _join_notes(
                        f"several decisions match about equally ({len(fitting)} fit the question's cues and "
                        "nothing else in it tells them apart); each of the best is answered in turn", plan.note)
                else:
                    plan.decisions = ranked[:1] or [hits[0].ref]
                    plan.note = _join_notes(
                        f"{len(fitting)} decisions fit the question's cues; this answers the closest. Name the "
                        "council, the reference or a detail to choose another", plan.note)
                    plan.candidates = [c for c in plan.candidates if c["ref"] in plan.decisions] + \
                        [c for c in plan.candidates if c["ref"] not in plan.decisions]
                self._gather(plan, filters)
                return plan
        plan.decisions = [hits[0].ref]
        self._gather(plan, filters)
        return plan

    def _plan_references(self, question: str, search: str, query, filters: Filters, resolved: str) -> _Plan:
        """A question naming decisions by reference: answer from them, or say which do not exist."""
        retriever = self.retriever
        cat = retriever.catalogue
        indexed = [r for r in query.references if r in cat.decisions]
        absent = [r for r in query.references if r not in cat.decisions]
        hits = retriever.search(search, k=K, filters=filters, query=query) if indexed else []
        plan = _Plan(question, search, query, hits, note=resolved)
        if absent:
            from index.store import nearest_references

            near = nearest_references(absent[0], list(cat.decisions))
            plan.missing = (f"decision {absent[0]} is not indexed"
                            + (f"; the nearest indexed references are {', '.join(near)}" if near else ""))
        if not indexed:
            plan.found = False
            plan.note = plan.missing
            return plan
        plan.decisions = indexed[:MAX_DECISIONS]
        if query.paragraph is not None and len(indexed) == 1:
            ref = indexed[0]
            pid = f"{ref.replace(' ', '-')}#{query.paragraph}"
            if pid not in cat.passages:
                d = self.archive.decision(ref)
                what = "Summary" if query.paragraph == SUMMARY else f"paragraph {query.paragraph}"
                plan.missing = f"{ref} has no {what}; it has {available(d)}"
                plan.found = False
                plan.note = plan.missing
                plan.decisions = []
                return plan
            plan.paragraph = query.paragraph
        if len(indexed) > 1:
            plan.candidates = [self._candidate(r) for r in indexed]
            plan.note = _join_notes("the question names several decisions; each is answered in turn", plan.note)
        if plan.missing:
            plan.note = _join_notes(plan.missing, plan.note)
        self._gather(plan, filters)
        return plan

    def _resolve(self, question: str, history: list[Turn], filters: Filters) -> tuple[str, str, str]:
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
            if len(chosen) == 1 and not self._residual(question, query):
                return last.question, chosen[0], f"answering the earlier question for {chosen[0]}"
            return question, "", ""
        main = previous.decision
        if main is None or query.references:
            return question, "", ""
        decision = retriever.catalogue.decisions.get(main, {})
        if query.authorities and decision.get("authority") not in query.authorities:
            return question, "", ""
        if query.aliases and not set(query.aliases) & set(decision.get("aliases", ())):
            return question, "", ""
        if self._unknown_places(question, query):
            return question, "", ""
        about = f"following up on {main}"
        if PARAGRAPH_RE.search(question) or re.fullmatch(r"\W*(?:and\s+)?(?:the\s+)?summary\W*", question, re.I):
            return f"{main} {question}", "", about
        if _FOLLOW_UP.search(question):
            return question, main, about
        return question, "", ""

    def _gather(self, plan: _Plan, filters: Filters) -> None:
        """The paragraphs each answered decision is quoted from: its retrieved paragraphs, its best
        paragraphs for the question, and for questions about the outcome its Summary and Final decision."""
        retriever = self.retriever
        cat = retriever.catalogue
        outcome_question = bool(plan.query.why or plan.query.outcomes or _OUTCOME_WORDS.search(plan.question))
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
            if outcome_question or plan.query.references:
                for pid in cat.by_ref.get(ref, ()):
                    section = cat.passages[pid].section.lower()
                    if pid.endswith(f"#{SUMMARY}") or section in OUTCOME_SECTIONS:
                        if pid not in chosen:
                            hit = retriever.passage(pid)
                            if hit is not None:
                                chosen[pid] = replace(hit, score=0.0)
            plan.passages[ref] = list(chosen.values())

    def _candidate(self, ref: str) -> dict:
        d = self.retriever.catalogue.decisions.get(ref, {})
        return {"ref": ref, "authority": d.get("authority", ""), "decision_date": d.get("decision_date", ""),
                "outcome": d.get("outcome", "")}

    # -- cues, relevance and places ------------------------------------------------------------------

    def _residual(self, question: str, query) -> list[str]:
        """The words of the question that could tell decisions apart (not generic, not cues)."""
        from index.lexical import tokenize

        if self._generic is None:
            self._generic = frozenset(tokenize(_GENERIC)) | frozenset(_GENERIC.split())
        skip = set(self._generic)
        for a in query.authorities:
            skip |= set(tokenize(a)) | set(_norm(a).split())
        text = _norm(question)
        for name, authority in self.retriever.authorities.names:
            if authority in query.authorities:
                text = text.replace(f" {name} ", " ")
        return [t for t in tokenize(text) if t not in skip and len(t) > 1]

    def _fitting(self, query, question: str, filters: Filters) -> list[str]:
        """The decisions a case question fits equally: it names a complainant ("Mr X") or "the
        complaint", and nothing but cues shared by several decisions (alias, outcome, council).

        "About equally" is decided by the question's cues, not by score gaps. Measured on
        eval/questions.jsonl over seeds + corpus (the 104 why/fact/paraphrase questions): the
        retriever's fused scores of the two best decisions are within 5% for 18 of them, yet its
        best decision is the gold one for 16 of those 18 (99 of 104 overall), so a score gap would
        mostly flag questions that are not ambiguous.
        With this rule exactly one positive question is flagged, q001 "why was Mr X's complaint
        closed?" (20 decisions have a Mr X whose complaint was closed; the seeds alone have one).
        """
        if query.law or query.provision is not None:
            return []
        if not query.aliases and not _CASE_WORDS.search(question):
            return []
        if self._residual(question, query):
            return []
        cat = self.retriever.catalogue
        allowed = self.retriever.allowed_refs(query, filters)
        out = []
        for ref, d in cat.decisions.items():
            if allowed is not None and ref not in allowed:
                continue
            if query.aliases and not set(query.aliases) & set(d.get("aliases", ())):
                continue
            if query.outcomes and d.get("outcome") not in query.outcomes:
                continue
            out.append(ref)
        return out

    def _relevance(self, query, hits: list[Hit]) -> float:
        """How well the best retrieved sentence matches the question (cosine, 0 with no hits)."""
        sentences = [s for h in hits for s in _sentences(h.text)]
        if not sentences:
            return 0.0
        q = self._question_vector(query)
        return float(np.max(self._embed(sentences) @ q))

    def _unknown_places(self, question: str, query) -> list[str]:
        """Councils the question names that are not indexed (answering them would mislead)."""
        if query.authorities or query.references:
            return []
        known = " ".join(_norm(d["authority"]) for d in self.retriever.catalogue.decisions.values())
        return [place for place in named_places(question) if f" {_norm(place).strip()} " not in known]

    # -- embeddings -----------------------------------------------------------------------------

    def _question_vector(self, query) -> np.ndarray:
        return self._embed([query.content])[0]

    def _embed(self, texts: list[str]) -> np.ndarray:
        with self._lock:
            todo = list(dict.fromkeys(t for t in texts if t not in self._vectors))
        if todo:
            vectors = self.archive.embedder.embed(todo)
            with self._lock:
                if len(self._vectors) > 100_000:
                    self._vectors.clear()
                self._vectors.update(zip(todo, vectors))
        with self._lock:
            return np.stack([self._vectors[t] for t in texts])

    # -- extractive composition -------------------------------------------------------------------

    def _extractive(self, plan: _Plan) -> Answer:
        if not plan.found:
            return self._not_found(plan)
        several = len(plan.decisions) > 1
        sentences: list[tuple[str, Hit, str]] = []  # (decision ref, hit, sentence)
        for ref in plan.decisions:
            limit = PER_DECISION_SENTENCES if several else MAX_SENTENCES
            for hit, sentence in self._pick(plan, plan.passages.get(ref, []), limit):
                sentences.append((ref, hit, sentence))
        if not sentences:
            return self._not_found(plan)
        numbers: dict[str, int] = {}
        quoted: dict[str, list[str]] = {}
        hits: dict[str, Hit] = {}
        lines: list[str] = []
        if several:
            lines.append("Several indexed decisions match this question; here is what each says "
                         "(name the council, the reference or a detail to choose one):"
                         if len(plan.candidates) > len(plan.decisions) or plan.query.aliases
                         else "The question names several decisions; here is what each says:")
        for i, ref in enumerate(plan.decisions, start=1):
            mine = [(h, s) for r, h, s in sentences if r == ref]
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
            head = self._label(ref)
            lines.append(f"{f'{i}. ' if several else ''}{head}:\n{' '.join(body)}")
        citations = [Citation(n, hits[pid], quoted[pid]) for pid, n in numbers.items()]
        return Answer(plan.question, "\n\n".join(lines), True, citations, EXTRACTIVE, plan.note,
                      plan.candidates, [], plan.missing)

    def _label(self, ref: str) -> str:
        """``Leicestershire County Council (24 016 809), decided 9 April 2025 (Closed after initial enquiries)``."""
        d = self.retriever.catalogue.decisions.get(ref, {})
        label = f"{d.get('authority') or 'Unknown authority'} ({ref})"
        if d.get("decision_date"):
            label += f", decided {format_date(d['decision_date'])}"
        if d.get("outcome"):
            label += f" ({d['outcome']})"
        return label

    def _pick(self, plan: _Plan, passages: list[Hit], limit: int) -> list[tuple[Hit, str]]:
        """The sentences of ``passages`` that best answer the question, in the decision's order."""
        if not passages:
            return []
        if plan.paragraph is not None:
            hit = passages[0]
            return [(hit, s) for s in _sentences(hit.text)[:MAX_QUOTED_PARAGRAPH]]
        query = plan.query
        outcome_question = bool(query.why or query.outcomes or _OUTCOME_WORDS.search(plan.question))
        summary_first = bool(query.references) and query.paragraph is None
        items: list[tuple[Hit, int, str]] = []
        for hit in passages:
            for i, s in enumerate(_sentences(hit.text)):
                items.append((hit, i, s))
        if not items:
            return []
        vectors = self._embed([s for _, _, s in items])
        sims = vectors @ self._question_vector(query)
        words = set(self._residual(query.content, query))
        scores = []
        for (hit, _, s), sim in zip(items, sims):
            section = hit.section.lower()
            score = float(sim) + RANK_BONUS * hit.score
            if words:
                score += LEXICAL_BONUS * len(words & set(_tokens(s))) / len(words)
            if outcome_question and (hit.paragraph == SUMMARY or section in OUTCOME_SECTIONS):
                score += STRUCTURE_BONUS
            if query.why and any(section.startswith(r) for r in REASON_SECTIONS):
                score += ASSESSMENT_BONUS
            if summary_first and hit.paragraph == SUMMARY:
                score += SUMMARY_FIRST_BONUS
            if not query.law and any(f in section for f in FURNITURE_SECTIONS):
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
            if any(float(vectors[k] @ vectors[c]) > DUPLICATE or _restates(s, items[c][2]) for c in chosen):
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
        first = {}
        for k in chosen:
            pid = items[k][0].id
            first[pid] = max(first.get(pid, -9.0), scores[k])
        ordered = sorted(chosen, key=lambda k: (-first[items[k][0].id], items[k][1]))
        return [(items[k][0], items[k][2]) for k in ordered]

    def _not_found(self, plan: _Plan) -> Answer:
        closest = plan.hits[:5]
        if plan.missing:
            text = f"{plan.missing[0].upper()}{plan.missing[1:]}."
        else:
            text = ("The indexed decisions do not cover this question: no indexed paragraph is close enough to "
                    "answer it.")
            if plan.note and "not among the indexed authorities" in plan.note:
                text = f"The indexed decisions do not cover this question: {plan.note}."
        if closest:
            text += " The closest passages are listed below for you to judge."
        return Answer(plan.question, text, False, [], EXTRACTIVE, plan.note, plan.candidates, closest, plan.missing)

    # -- generation -----------------------------------------------------------------------------

    def _sources(self, plan: _Plan) -> list[tuple[Source, Hit]]:
        """The numbered paragraphs the model may cite: each answered decision's best, in order."""
        per = 3 if len(plan.decisions) > 1 else 6
        out: list[tuple[Source, Hit]] = []
        for ref in plan.decisions:
            passages = sorted(plan.passages.get(ref, []), key=lambda h: -h.score)[:per]
            passages.sort(key=lambda h: -1 if h.paragraph == SUMMARY else int(h.paragraph))
            for h in passages:
                n = len(out) + 1
                where = f"{h.label} ({h.section}{' > ' + h.subsection if h.subsection else ''})"
                label = (f"{h.authority} ({h.ref}), {where}, decided {format_date(h.decision_date) or 'date unknown'}, "
                         f"outcome: {h.outcome or 'unknown'}")
                out.append((Source(n, label, h.text), h))
        return out

    def _generate(self, plan: _Plan, history: list[Turn], streaming: bool) -> Iterator[str]:
        """The model's text so far (once, whole, when not streaming)."""
        sources = self._sources(plan)
        fitted = fit_sources([s for s, _ in sources], self.llm.config.context_tokens)
        plan.sources = {s.n: (s, h) for (s, h) in sources if any(f.n == s.n for f in fitted)}
        turns = [(t.question, t.answer.text) for t in history[-3:] if t.answer is not None]
        messages = build_messages(plan.question, fitted, turns)
        text = ""
        if streaming:
            for piece in self.llm.stream(messages):
                text += piece
                yield text
        else:
            text = self.llm.complete(messages)
            yield text
        if not text.strip():
            raise LLMError(f"the language model at {self.llm.config.endpoint} returned an empty answer")

    def _generated_answer(self, plan: _Plan, text: str) -> Answer:
        supplied: dict[int, tuple[Source, Hit]] = plan.sources
        checked = check_output(text, set(supplied))
        if not checked.sentences:
            raise LLMError("the language model's answer had no sentence citing a supplied paragraph"
                           + (f" ({checked.problems})" if checked.problems else ""))
        renumber: dict[int, int] = {}
        for s in checked.sentences:
            for n in s.sources:
                renumber.setdefault(n, len(renumber) + 1)
        support: dict[int, list[str]] = {n: [] for n in renumber}
        for s in checked.sentences:
            vector = self._embed([s.text])[0]
            for n in s.sources:
                own = _sentences(supplied[n][1].text)
                if not own:
                    continue
                best = own[int(np.argmax(self._embed(own) @ vector))]
                if best not in support[n]:
                    support[n].append(best)
        body = " ".join(s.text + " " + "".join(f"[{renumber[n]}]" for n in s.sources) for s in checked.sentences)
        citations = []
        for old, new in sorted(renumber.items(), key=lambda kv: kv[1]):
            hit = supplied[old][1]
            order = _sentences(hit.text)
            quoted = sorted(support[old], key=lambda x: order.index(x) if x in order else 0)
            citations.append(Citation(new, hit, quoted))
        note = _join_notes(f"written by {self.llm.config.model} from {len(supplied)} numbered paragraphs; "
                           "each citation lists the paragraph sentences closest to what it supports",
                           checked.problems, plan.note)
        return Answer(plan.question, body, True, citations, GENERATED, note, plan.candidates, [], plan.missing)


# -- helpers ------------------------------------------------------------------------------------


def _sentences(text: str) -> list[str]:
    """The sentences of a paragraph that can be quoted: verbatim substrings of ``text``."""
    return [s for s in split_sentences(text) if s in text and re.search(r"[A-Za-z]{2}", s)]


def _tokens(text: str) -> list[str]:
    from index.lexical import tokenize

    return tokenize(text)


def _restates(sentence: str, other: str) -> bool:
    """Whether ``sentence`` adds no words to ``other``: the Summary often repeats the Final decision
    in other order ("This is because there is not enough evidence ..."), which embeddings score
    as only moderately similar."""
    words = set(_tokens(sentence)) - {"mr", "mrs", "ms", "miss", "dr", "x"}
    return bool(words) and len(words - set(_tokens(other))) <= max(1, len(words) // 10)


def _growing(text: str) -> Iterator[str]:
    """``text`` revealed a sentence (ending in its marker) or a line at a time."""
    shown = ""
    for piece in re.findall(r"[^\[\n]*(?:\[\d+\])+|[^\n]+|\n", text):
        shown += piece
        yield shown
    if shown != text:
        yield text


def _join_notes(*notes: str) -> str:
    return "; ".join(n for n in notes if n)


# -- councils that users may name ------------------------------------------------------------------

# English local authorities (current and recently merged away, since older decisions name them),
# plus the largest councils elsewhere in the UK that the LGSCO does not cover. A question naming one
# that is not indexed is "not found", however well its topic matches another council's decision.
_PLACES = """
Bedfordshire; Berkshire; Buckinghamshire; Cambridgeshire; Cheshire; Cornwall; Cumbria; Derbyshire; Devon;
Dorset; Durham; East Sussex; Essex; Gloucestershire; Hampshire; Herefordshire; Hertfordshire; Isle of Wight;
Kent; Lancashire; Leicestershire; Lincolnshire; Norfolk; Northamptonshire; Northumberland; North Yorkshire;
Nottinghamshire; Oxfordshire; Rutland; Shropshire; Somerset; Staffordshire; Suffolk; Surrey; Warwickshire;
West Sussex; Wiltshire; Worcestershire; Cumberland; Westmorland; Barking; Dagenham; Barnet; Bexley; Brent;
Bromley; Camden; Croydon; Ealing; Enfield; Greenwich; Hackney; Hammersmith; Fulham; Haringey; Harrow;
Havering; Hillingdon; Hounslow; Islington; Kensington; Chelsea; Kingston upon Thames; Lambeth; Lewisham;
Merton; Newham; Redbridge; Richmond; Southwark; Sutton; Tower Hamlets; Waltham Forest; Wandsworth;
Westminster; City of London; Bolton; Bury; Manchester; Oldham; Rochdale; Salford; Stockport; Tameside;
Trafford; Wigan; Knowsley; Liverpool; St Helens; Sefton; Wirral; Barnsley; Doncaster; Rotherham; Sheffield;
Gateshead; Newcastle; North Tyneside; South Tyneside; Sunderland; Birmingham; Coventry; Dudley; Sandwell;
Solihull; Walsall; Wolverhampton; Bradford; Calderdale; Kirklees; Leeds; Wakefield; Bath; Bedford;
Blackburn; Blackpool; Bournemouth; Christchurch; Poole; Bracknell; Brighton; Hove; Bristol; Darlington;
Derby; Halton; Hartlepool; Hull; East Riding; Leicester; Luton; Medway; Middlesbrough; Milton Keynes;
North East Lincolnshire; North Lincolnshire; Nottingham; Peterborough; Plymouth; Portsmouth; Reading;
Redcar; Slough; Southampton; Southend; Stockton; Stoke; Swindon; Telford; Thurrock; Torbay; Warrington;
Windsor; Maidenhead; Wokingham; York; Scilly; Adur; Allerdale; Amber Valley; Arun; Ashfield; Ashford;
Aylesbury; Babergh; Barrow; Basildon; Basingstoke; Bassetlaw; Blaby; Bolsover; Boston; Braintree;
Breckland; Brentwood; Broadland; Bromsgrove; Broxbourne; Broxtowe; Burnley; Cambridge; Cannock; Canterbury;
Carlisle; Castle Point; Charnwood; Chelmsford; Cheltenham; Cherwell; Chesterfield; Chichester; Chiltern;
Chorley; Colchester; Copeland; Corby; Cotswold; Craven; Crawley; Dacorum; Dartford; Daventry; Dover;
East Devon; East Lindsey; East Suffolk; Eastbourne; Eastleigh; Eden; Elmbridge; Epping; Epsom; Erewash;
Exeter; Fareham; Fenland; Folkestone; Forest of Dean; Fylde; Gedling; Gloucester; Gosport; Gravesham;
Great Yarmouth; Guildford; Hambleton; Harborough; Harlow; Harrogate; Hart; Hastings; Havant; Hertsmere;
High Peak; Hinckley; Horsham; Huntingdonshire; Hyndburn; Ipswich; Kettering; King's Lynn; Lancaster;
Lewes; Lichfield; Lincoln; Maidstone; Maldon; Malvern; Mansfield; Melton; Mendip; Mid Devon; Mid Suffolk;
Mid Sussex; Mole Valley; New Forest; Newark; Northampton; Norwich; Nuneaton; Oadby; Wigston; Oxford;
Pendle; Preston; Redditch; Reigate; Ribble Valley; Richmondshire; Rochford; Rossendale; Rother; Rugby;
Runnymede; Rushcliffe; Rushmoor; Ryedale; Scarborough; Sedgemoor; Selby; Sevenoaks; South Hams;
South Holland; South Kesteven; North Kesteven; South Lakeland; Spelthorne; St Albans; Stafford; Stevenage;
Stratford; Stroud; Swale; Tamworth; Tandridge; Teignbridge; Tendring; Test Valley; Tewkesbury; Thanet;
Three Rivers; Tonbridge; Torridge; Tunbridge Wells; Uttlesford; Vale of White Horse; Warwick; Watford;
Waveney; Waverley; Wealden; Wellingborough; Welwyn; West Devon; West Lancashire; West Lindsey; Winchester;
Woking; Worthing; Wychavon; Wycombe; Wyre; Forest Heath; St Edmundsbury; Purbeck; Weymouth; Taunton;
Cardiff; Swansea; Newport; Wrexham; Glasgow; Edinburgh; Aberdeen; Dundee; Belfast
"""
PLACES = tuple(p.strip() for p in _PLACES.replace("\n", " ").split(";") if p.strip())


def named_places(text: str) -> list[str]:
    """The councils in ``PLACES`` that ``text`` names, longest names first, without repeats."""
    hay = _norm(text)
    found: list[str] = []
    taken: list[tuple[int, int]] = []
    for place in sorted(PLACES, key=len, reverse=True):
        if not names_place(text, place):
            continue
        needle = _norm(place)
        i = hay.find(needle)
        if i < 0:
            continue
        span = (i, i + len(needle))
        if any(s <= span[0] and span[1] <= e for s, e in taken):
            continue
        taken.append(span)
        found.append(place)
    return found


# -- eval integration ------------------------------------------------------------------------------


def answer_checks(archive, questions) -> dict[str, float]:
    """Answer-level figures over ``eval.run.Question`` objects whose gold decisions are indexed
    (and every negative question), answered extractively:

    - ``outcome_questions_citing_gold_decision``: share of outcome ("why") questions whose answer
      cites a gold decision;
    - ``citations_containing_their_sentence``: share of citations whose paragraph text contains
      every sentence it is cited for (must be 1.0);
    - ``negatives_answered_not_found``: share of negative questions answered "not found";
    - ``positives_answered``: share of questions with gold that got an answer (found).
    """
    answerer = Answerer(archive, llm=None)
    usable = scorable(questions, set(answerer.retriever.catalogue.decisions))
    return score_answers(usable, {q.id: answerer.answer(q.question) for q in usable})


def scorable(questions, indexed: set[str]) -> list:
    """The questions whose gold decisions are all indexed, and the negatives."""
    return [q for q in questions if not q.gold or {g.split("#")[0].replace("-", " ") for g in q.gold} <= indexed]


def score_answers(questions, answers: dict[str, Answer]) -> dict[str, float]:
    """``answer_checks``'s figures from answers already made (``answers[q.id]``)."""
    outcome = outcome_hits = citations = contained = negatives = negatives_ok = positives = positives_ok = 0
    for q in questions:
        a = answers[q.id]
        gold_refs = {g.split("#")[0].replace("-", " ") for g in q.gold}
        for c in a.citations:
            citations += 1
            contained += bool(c.sentences) and all(s in c.hit.text for s in c.sentences)
        if q.negative:
            negatives += 1
            negatives_ok += not a.found
            continue
        positives += 1
        positives_ok += a.found
        if q.kind == "why" or q.outcome:
            outcome += 1
            outcome_hits += any(c.hit.ref in gold_refs for c in a.citations)

    def share(k: int, n: int) -> float:
        return round(k / n, 4) if n else 1.0

    return {
        "outcome_questions_citing_gold_decision": share(outcome_hits, outcome),
        "citations_containing_their_sentence": share(contained, citations),
        "negatives_answered_not_found": share(negatives_ok, negatives),
        "positives_answered": share(positives_ok, positives),
    }
