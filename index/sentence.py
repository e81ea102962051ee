"""Sentence splitting tuned to decision texts (NLTK's models are not available offline).

Used to cut long paragraphs into embedding windows and, in ``rag``, to pick the sentences an
answer quotes. Abbreviations common in decisions ("Mr", "s.", "para.", "No.") do not end sentences.
"""

from __future__ import annotations

import re

# Always followed by more of the same sentence.
_TITLES = {"mr", "mrs", "ms", "dr", "mx", "prof", "st", "e.g", "i.e", "cf", "vs", "v", "approx"}
# Abbreviations only when a number follows ("para. 5", "s. 24A", "No. 3").
_NUMBERED = {"no", "nos", "para", "paras", "s", "ss", "sch", "reg", "regs", "art", "ch", "pt", "p", "pp"}
_BOUNDARY_RE = re.compile(r"(?<=[.!?])[\"”’)]*\s+(?=[\"“‘(]?[A-Z0-9£•])|\n+")


def split_sentences(text: str) -> list[str]:
    """The sentences of ``text`` in order; list items (lines) are sentences of their own."""
    out: list[str] = []
    start = 0
    for m in _BOUNDARY_RE.finditer(text):
        candidate = text[start : m.start()].rstrip()
        if m.group(0).strip() == "" and "\n" not in m.group(0):
            last_word = re.search(r"([\w.]+)[.!?][\"”’)]*$", candidate)
            word = last_word.group(1).lower().rstrip(".") if last_word else ""
            if word in _TITLES or (word in _NUMBERED and text[m.end() : m.end() + 1].isdigit()):
                continue
        piece = text[start : m.end()].strip()
        if piece:
            out.append(piece)
        start = m.end()
    tail = text[start:].strip()
    if tail:
        out.append(tail)
    return out
