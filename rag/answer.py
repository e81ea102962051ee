"""Grounded answers: a few sentences, each quoting a retrieved paragraph and carrying its ``[n]``.

The pipeline: check the question (``rag.question``), plan which decisions and paragraphs answer
it or why none does (``rag.plan``), then write the answer: extractively by default, quoting the
sentences that best answer (``rag.compose``), or with a language model when one is configured
(``rag.generate``; any failure falls back to the extractive answer and says so).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Iterator

from rag.citation import Citation
from rag.compose import Composer, not_found_text
from rag.generate import Generator
from rag.llm import LLMClient, LLMError
from rag.plan import Plan, Planner, Turn, join_notes
from rag.question import check_question
from rag.retriever import Filters, Hit
from rag.similarity import Similarity

log = logging.getLogger(__name__)

EXTRACTIVE, GENERATED, FALLBACK = "extractive", "generated", "extractive-fallback"
CLOSEST = 5  # passages shown with a "not found" answer

__all__ = ["Answer", "Answerer", "Citation", "Turn", "EXTRACTIVE", "GENERATED", "FALLBACK"]


@dataclass
class Answer:
    """An answer as ARCHITECTURE.md's ``ask`` shape, plus how it was made.

    ``text`` carries ``[n]`` markers referring to ``citations[n-1]``. ``mode`` is ``extractive``,
    ``generated`` or ``extractive-fallback``; ``note`` says why it fell back, that several
    decisions match, or what validation removed. ``candidates`` lists the decisions considered when
    several match; ``closest`` the passages nearest a question that was not found, and ``refused``
    why it was not found (``council``: not indexed, ``topic``: nothing relevant enough,
    ``mismatch``: no relevant decision has the complainant it names, ``missing``: no such
    reference or paragraph, which ``missing`` describes).
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
    refused: str = ""
    figures: dict | None = None  # an aggregate answer's counts (``rag.stats``), for a chart

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
            "refused": self.refused,
            **({"figures": self.figures} if self.figures is not None else {}),
        }


class Answerer:
    """Answers questions from an archive's retriever; thread-safe, one per archive.

    ``llm``: a ``rag.llm.LLMClient`` to generate answers, None for extractive only, or the default
    ``"env"``: generate when ``OMBUDSMAN_LLM_URL`` and ``OMBUDSMAN_LLM_MODEL`` are set.
    """

    def __init__(self, archive, llm: LLMClient | None | str = "env") -> None:
        self.archive = archive
        self.llm = LLMClient.from_env() if llm == "env" else llm
        self.similarity = Similarity(lambda: archive.embedder)
        self._planner: Planner | None = None

    @property
    def retriever(self):
        return self.archive.retriever

    @property
    def planner(self) -> Planner:
        retriever = self.retriever  # a new one after an ingest: plan with it
        if self._planner is None or self._planner.retriever is not retriever:
            self._planner = Planner(retriever, self.similarity, self.archive.decision)
        return self._planner

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

        Each ``str`` is the whole text so far (each one extends the one before). Extractive answers
        grow sentence by sentence; generated ones as the model writes. The final ``Answer`` is
        authoritative: a generated text is validated before it is returned, and on failure the
        extractive answer replaces it (mode ``extractive-fallback``), so show the final
        ``Answer.text`` in place of what was streamed.
        """
        yield from self._run(question, history, filters, streaming=True)

    def plan(self, question: str, history: list[Turn] | None = None, filters: Filters | None = None) -> Plan:
        """What the answer to ``question`` will be made of (checked first, like ``answer``)."""
        return self.planner.plan(check_question(question), history or [], filters or Filters())

    def aggregate(self, question: str, filters: Filters | None = None) -> Answer | None:
        """The answer to a question about the archive as a whole ("how many upheld complaints
        against Cornwall?"), counted exactly; None for an ordinary question."""
        from rag.aggregate import Aggregator

        q = check_question(question)
        retriever = self.retriever
        got = Aggregator(retriever).answer(q, retriever.understand(q), filters or Filters())
        if got is None:
            return None
        return Answer(q, got.text, True, got.citations, EXTRACTIVE, got.note, figures=got.figures)

    def _run(self, question: str, history: list[Turn] | None, filters: Filters | None,
             streaming: bool) -> Iterator[str | Answer]:
        counted = self.aggregate(question, filters)
        if counted is not None:
            if streaming:
                yield from _growing(counted.text)
            yield counted
            return
        plan = self.plan(question, history, filters)
        if self.llm is not None and plan.found and plan.decisions:
            try:
                yield from self._generated(plan, history or [], streaming)
                return
            except LLMError as e:
                log.warning("generation failed, answering extractively: %s", e)
                answer = self._extractive(plan)
                answer.mode = FALLBACK
                answer.note = join_notes(f"{e}; this is the extractive answer instead", answer.note)
        else:
            answer = self._extractive(plan)
        if streaming:
            yield from _growing(answer.text)
        yield answer

    def _generated(self, plan: Plan, history: list[Turn], streaming: bool) -> Iterator[str | Answer]:
        generator = Generator(self.llm, self.similarity)
        texts, supplied = generator.write(plan, history, streaming)
        shown = ""
        for text in texts:
            shown = text
            if streaming:
                yield text
        body, citations, note = generator.check(plan, shown, supplied)
        if streaming:
            yield body
        yield Answer(plan.question, body, True, citations, GENERATED, note, plan.candidates, [], plan.missing)

    def _extractive(self, plan: Plan) -> Answer:
        if plan.found:
            text, citations = Composer(self.planner, self.similarity).compose(plan)
            if citations:
                return Answer(plan.question, text, True, citations, EXTRACTIVE, plan.note, plan.candidates, [],
                              plan.missing)
        return Answer(plan.question, not_found_text(plan), False, [], EXTRACTIVE, plan.note, plan.candidates,
                      plan.hits[:CLOSEST], plan.missing, plan.refused or "topic")


def _growing(text: str) -> Iterator[str]:
    """``text`` revealed a sentence (ending in its marker) or a line at a time."""
    shown = ""
    for piece in re.findall(r"[^\[\n]*(?:\[\d+\])+|[^\n]+|\n", text):
        shown += piece
        yield shown
    if shown != text:
        yield text
