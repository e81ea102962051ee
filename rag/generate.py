"""Generated answers: a language model (``rag.llm``) writes the answer from the planned paragraphs,
numbered; what it writes is checked, and each citation lists the sentences of its paragraph
closest to what it supports."""

from __future__ import annotations

from typing import Iterator

import numpy as np

from index.passage import SUMMARY
from rag.citation import Citation, format_date
from rag.llm import LLMClient, LLMError, Source, build_messages, check_output, fit_sources
from rag.plan import Plan, Turn, join_notes
from rag.retriever import Hit
from rag.similarity import Similarity, sentences

SOURCES_ONE_DECISION = 6  # paragraphs given to the model when one decision is answered
SOURCES_PER_DECISION = 3  # ... and per decision when several are


class Generator:
    """Writes answers with ``llm`` from a plan's paragraphs."""

    def __init__(self, llm: LLMClient, similarity: Similarity) -> None:
        self.llm = llm
        self.similarity = similarity

    def sources(self, plan: Plan) -> list[tuple[Source, Hit]]:
        """The numbered paragraphs the model may cite: each answered decision's best, in order."""
        per = SOURCES_PER_DECISION if len(plan.decisions) > 1 else SOURCES_ONE_DECISION
        out: list[tuple[Source, Hit]] = []
        for ref in plan.decisions:
            passages = sorted(plan.passages.get(ref, []), key=lambda h: -h.score)[:per]
            passages.sort(key=lambda h: -1 if h.paragraph == SUMMARY else int(h.paragraph))
            for h in passages:
                n = len(out) + 1
                where = f"{h.label} ({h.section}{' > ' + h.subsection if h.subsection else ''})"
                name = (f"{h.authority} ({h.ref}), {where}, decided {format_date(h.decision_date) or 'date unknown'}, "
                        f"outcome: {h.outcome or 'unknown'}")
                out.append((Source(n, name, h.text), h))
        return out

    def write(self, plan: Plan, history: list[Turn], streaming: bool) -> tuple[Iterator[str], dict]:
        """The model's text so far, as it grows (once, whole, when not streaming), and the numbered
        paragraphs it was given (filled in before the first text is yielded)."""
        sources = self.sources(plan)
        fitted = fit_sources([s for s, _ in sources], self.llm.config.context_tokens)
        supplied = {s.n: (s, h) for (s, h) in sources if any(f.n == s.n for f in fitted)}
        turns = [(t.question, t.answer.text) for t in history[-3:] if t.answer is not None]
        messages = build_messages(plan.question, fitted, turns)

        def texts() -> Iterator[str]:
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
        return texts(), supplied

    def check(self, plan: Plan, text: str, supplied: dict) -> tuple[str, list[Citation], str]:
        """The validated text (markers renumbered in order of use), its citations and a note on
        how it was made and what validation removed; ``LLMError`` when nothing valid is left."""
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
            vector = self.similarity.embed([s.text])[0]
            for n in s.sources:
                own = sentences(supplied[n][1].text)
                if not own:
                    continue
                best = own[int(np.argmax(self.similarity.embed(own) @ vector))]
                if best not in support[n]:
                    support[n].append(best)
        body = " ".join(s.text + " " + "".join(f"[{renumber[n]}]" for n in s.sources) for s in checked.sentences)
        citations = []
        for old, new in sorted(renumber.items(), key=lambda kv: kv[1]):
            hit = supplied[old][1]
            order = sentences(hit.text)
            quoted = sorted(support[old], key=lambda x: order.index(x) if x in order else 0)
            citations.append(Citation(new, hit, quoted))
        note = join_notes(f"written by {self.llm.config.model} from {len(supplied)} numbered paragraphs; "
                          "each citation lists the paragraph sentences closest to what it supports",
                          checked.problems, plan.note)
        return body, citations, note
