"""Checks on what users type, before anything is searched: clear errors instead of odd results."""

from __future__ import annotations

MAX_QUESTION_CHARS = 1000


def check_question(text: str | None) -> str:
    """The question, stripped; ``ValueError`` with the reason when it cannot be a question."""
    q = (text or "").strip()
    if not q:
        raise ValueError("the question is empty; type a question about the decisions")
    if len(q) > MAX_QUESTION_CHARS:
        raise ValueError(
            f"the question is {len(q)} characters long; the limit is {MAX_QUESTION_CHARS}. Ask a shorter question"
        )
    if "\x00" in q or sum(1 for c in q if not c.isprintable() and c not in "\n\t") > 0:
        raise ValueError("the question contains control characters; type it as plain text")
    if not any(c.isalnum() for c in q):
        raise ValueError("the question has no words or numbers in it")
    return q
