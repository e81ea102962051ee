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
_LAST_WORD_RE = re.compile(r"([\w.]+)[.!?][\"”’)]*$")
# Characters of a candidate sentence's end searched for its last word (speed only: ``_last_word``
# gives what searching the whole candidate gives, which tried the pattern at every character of it
# and took a fifth of the time of splitting the corpus's lines).
_TAIL = 64
_NOT_IN_MATCH = re.compile(r"[^\w.!?\"”’)]")


def split_sentences(text: str) -> list[str]:
    """The sentences of ``text`` in order; list items (lines) are sentences of their own."""
    out: list[str] = []
    start = 0
    for m in _BOUNDARY_RE.finditer(text):
        candidate = text[start : m.start()].rstrip()
        if m.group(0).strip() == "" and "\n" not in m.group(0):
            last_word = _last_word(candidate)
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


def _last_word(candidate: str) -> re.Match | None:
    """The word before a candidate sentence's closing mark, searched for in its last characters.
    The whole candidate is searched only when a match could reach further back: the tail's
    match starts at its first character, or there is none and every character of the tail is
    one a match may hold."""
    tail = candidate[-_TAIL:]
    m = _LAST_WORD_RE.search(tail)
    if len(tail) == len(candidate) or (m is not None and m.start() > 0) or (m is None and _NOT_IN_MATCH.search(tail)):
        return m
    return _LAST_WORD_RE.search(candidate)
