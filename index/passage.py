"""Passages: the unit of retrieval and of citation, one per paragraph plus one for the Summary.

A passage carries everything a citation needs (reference, number, section, authority, outcome,
date, URL) so that a hit can be shown without going back to the decision.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import date

from index.decision import Decision, passage_id
from index.tokens import count_tokens_many

SUMMARY = "summary"
BOILERPLATE_WORDS = 16

_ALIAS_NOISE_RE = re.compile(r"\b(?:Mr|Mrs|Ms|Miss|Mx|Dr)\.?\s+[A-Z]\b")


def boilerplate_key(text: str) -> str:
    """A hash of the text with case, punctuation, names and numbers folded away.

    Paragraphs that are the same standard wording ("The Ombudsman's role and powers") share a key
    across decisions, which is how ingest finds boilerplate.
    """
    folded = _ALIAS_NOISE_RE.sub(" ", text.replace("’", "'"))
    folded = re.sub(r"\([^()]*\bAct\b[^()]*\)", " ", folded)
    words = re.sub(r"[^a-z]+", " ", folded.lower()).split()
    # Decisions tailor the tail of standard paragraphs (which bullets of the powers apply), so
    # the opening words identify the standard wording; short paragraphs are taken whole.
    return hashlib.sha1(" ".join(words[:BOILERPLATE_WORDS]).encode()).hexdigest()[:16]


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

    @property
    def is_summary(self) -> bool:
        return self.paragraph == SUMMARY

    @property
    def label(self) -> str:
        """How a citation names it: ``para 15`` or ``Summary``."""
        return "Summary" if self.is_summary else f"para {self.paragraph}"

    def embedding_text(self, window: str | None = None) -> str:
        """What the model embeds: the section heading gives a paragraph its role in the decision."""
        heading = self.subsection or self.section
        return f"{heading}. {window if window is not None else self.text}" if heading else (window or self.text)


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def passages_of(decision: Decision) -> list[Passage]:
    """The Summary (when there is one) and every paragraph of ``decision``, in order."""
    common = dict(
        reference=decision.reference,
        authority=decision.authority,
        category=decision.category_path,
        outcome=decision.outcome,
        decision_date=decision.decision_date,
        url=decision.url,
    )
    out: list[Passage] = []
    texts = ([decision.summary] if decision.summary else []) + [p.text for p in decision.paragraphs]
    counts = count_tokens_many(texts)
    offset = 1 if decision.summary else 0
    if decision.summary:
        out.append(
            Passage(
                id=passage_id(decision.reference, SUMMARY),
                paragraph=SUMMARY,
                section="Summary",
                subsection="",
                text=decision.summary,
                statutes=(),
                aliases=_aliases_in(decision.summary, decision.aliases),
                token_count=counts[0],
                content_hash=_hash(decision.summary),
                boilerplate_key=boilerplate_key(decision.summary),
                **common,
            )
        )
    for i, p in enumerate(decision.paragraphs):
        out.append(
            Passage(
                id=passage_id(decision.reference, p.number),
                paragraph=p.number,
                section=p.section,
                subsection=p.subsection,
                text=p.text,
                statutes=p.statutes,
                aliases=_aliases_in(p.text, decision.aliases),
                token_count=counts[i + offset],
                content_hash=_hash(p.text),
                boilerplate_key=boilerplate_key(p.text),
                **common,
            )
        )
    return out


def _aliases_in(text: str, aliases: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(a for a in aliases if re.search(rf"\b{re.escape(a)}\b", text))
