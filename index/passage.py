"""Passages: the unit of retrieval and of citation, one per paragraph plus one for the Summary.

A passage carries everything a citation needs (reference, number, section, authority, outcome,
date, URL) so that a hit can be shown without going back to the decision.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from dataclasses import dataclass
from datetime import date

from index.decision import Decision, passage_id
from index.tokens import count_tokens_many

SUMMARY = "summary"
BOILERPLATE_WORDS = 16

# What is embedded and indexed with each paragraph's text (its context): ``bare`` (the text
# alone), ``heading`` (its section heading first) or ``decision`` (the decision's authority,
# category and the Summary's first sentence, then the heading). Recorded in the index when it is
# built; an index built with another context is refused with the command that rebuilds it.
# `python -m eval.compare_contexts` (each context indexed afresh, the ranking fitted on the tuning
# questions, the unseen questions ranked): MRR@10 on the unseen questions 0.884 bare, 0.892
# heading, 0.873 decision (Success@1 0.831, 0.847, 0.801); the heading wins and is the default.
CONTEXTS = ("bare", "heading", "decision")
DEFAULT_CONTEXT = "heading"


def passage_context() -> str:
    """The context this run embeds passages in: ``OMBUDSMAN_PASSAGE_CONTEXT`` or the default."""
    import os

    value = os.environ.get("OMBUDSMAN_PASSAGE_CONTEXT", "").strip() or DEFAULT_CONTEXT
    if value not in CONTEXTS:
        raise ValueError(f"OMBUDSMAN_PASSAGE_CONTEXT={value!r} is not one of {', '.join(CONTEXTS)}")
    return value

_ALIAS_NOISE_RE = re.compile(r"\b(?:Mr|Mrs|Ms|Miss|Mx|Dr)\.?\s+[A-Z]\b")
_ACT_IN_BRACKETS_RE = re.compile(r"\([^()]*\bAct\b[^()]*\)")
_WORD_RE = re.compile(r"[a-z]+")


def boilerplate_key(text: str) -> str:
    """A hash of the text with case, punctuation, names and numbers folded away.

    Paragraphs that are the same standard wording ("The Ombudsman's role and powers") share a key
    across decisions, which is how ingest finds boilerplate.
    """
    folded = _ALIAS_NOISE_RE.sub(" ", text.replace("’", "'"))
    folded = _ACT_IN_BRACKETS_RE.sub(" ", folded)
    # Decisions tailor the tail of standard paragraphs (which bullets of the powers apply), so
    # the opening words identify the standard wording; short paragraphs are taken whole. Only
    # those words are read (the rest of the text is not split: a third of this function's time).
    words = [m.group() for m in itertools.islice(_WORD_RE.finditer(folded.lower()), BOILERPLATE_WORDS)]
    return hashlib.sha1(" ".join(words).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Passage:
    """One citable passage of a decision."""

    id: str
    reference: str
    paragraph: int | str  # official number, or "summary"
    section: str
    subsection: str
    authority: str
    category: str
    outcome: str
    decision_date: date | None
    url: str
    text: str
    statutes: tuple[str, ...]
    aliases: tuple[str, ...]
    token_count: int
    content_hash: str
    boilerplate_key: str
    context: str = ""  # what leads the text when it is embedded and indexed (see CONTEXTS)

    @property
    def is_summary(self) -> bool:
        return self.paragraph == SUMMARY

    @property
    def label(self) -> str:
        """How a citation names it: ``para 15`` or ``Summary``."""
        return "Summary" if self.is_summary else f"para {self.paragraph}"

    def embedding_text(self, window: str | None = None) -> str:
        """What the model embeds and BM25 indexes: the passage's context, then its text (or one
        window of it)."""
        return self.context + (window if window is not None else self.text)


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def passage_numbers(decision: Decision) -> list[int | str]:
    """The passages a decision has: ``"summary"`` when it has one, then its paragraph numbers."""
    return ([SUMMARY] if decision.summary else []) + [p.number for p in decision.paragraphs]


def passage_fields(decision: Decision, paragraph: int | str) -> tuple[str, str, str, tuple[str, ...]] | None:
    """(text, section, subsection, statutes) of one passage, or None if the decision has no such
    paragraph. The Summary is a passage of its own, under the heading "Summary"."""
    if paragraph == SUMMARY:
        return (decision.summary, "Summary", "", ()) if decision.summary else None
    number = int(paragraph)
    if not 1 <= number <= len(decision.paragraphs):
        return None
    p = decision.paragraphs[number - 1]
    return p.text, p.section, p.subsection, p.statutes


def context_of(decision: Decision, section: str, subsection: str, context: str) -> str:
    """The words that lead a passage of ``decision`` under ``section`` when it is embedded."""
    heading = subsection or section
    lead = f"{heading}. " if heading else ""
    if context == "bare":
        return ""
    if context == "heading":
        return lead
    from index.sentence import split_sentences

    first = (split_sentences(decision.summary) or [""])[0] if decision.summary else ""
    about = ". ".join(x for x in (decision.authority, decision.category_path.replace(" > ", ", ")) if x)
    return f"{about}. {first} {lead}" if first and heading != "Summary" else f"{about}. {lead}"


def passages_of(decision: Decision, context: str | None = None) -> list[Passage]:
    """The Summary (when there is one) and every paragraph of ``decision``, in order, each with
    its ``context`` (default: ``passage_context()``)."""
    context = context or passage_context()
    parts = [(n, *passage_fields(decision, n)) for n in passage_numbers(decision)]
    counts = count_tokens_many([text for _, text, *_ in parts])
    return [_passage(decision, *part, n, context) for part, n in zip(parts, counts)]


def _passage(decision: Decision, paragraph: int | str, text: str, section: str, subsection: str,
             statutes: tuple[str, ...], token_count: int, context: str) -> Passage:
    return Passage(
        id=passage_id(decision.reference, paragraph),
        reference=decision.reference,
        paragraph=paragraph,
        section=section,
        subsection=subsection,
        authority=decision.authority,
        category=decision.category_path,
        outcome=decision.outcome,
        decision_date=decision.decision_date,
        url=decision.url,
        text=text,
        statutes=tuple(statutes),
        aliases=aliases_in(text, decision.aliases),
        token_count=token_count,
        content_hash=_hash(text),
        boilerplate_key=boilerplate_key(text),
        context=context_of(decision, section, subsection, context),
    )


def aliases_in(text: str, aliases: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(a for a in aliases if re.search(rf"\b{re.escape(a)}\b", text))
