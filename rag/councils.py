"""The councils users may name (``councils.txt``): which of them a question names, so that a
question about a council that is not indexed is answered "not found" instead of from another
council's decision."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from typing import Callable

from rag.parameters import FUZZY_MIN_LETTERS
from rag.query import names_place, within_one_edit

COUNCILS_FILE = Path(__file__).resolve().parent / "councils.txt"


def _norm(text: str) -> str:
    return " " + re.sub(r"\s+", " ", re.sub(r"[^a-z0-9 ]", " ", text.lower().replace("&", " and "))).strip() + " "


@lru_cache(maxsize=1)
def councils() -> tuple[str, ...]:
    """Every council name of ``councils.txt``, longest first (so "East Riding" wins over "Riding")."""
    lines = COUNCILS_FILE.read_text(encoding="utf-8").splitlines()
    names = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    return tuple(sorted(dict.fromkeys(names), key=len, reverse=True))


def named_places(text: str, is_word: Callable[[str], bool] | None = None) -> list[str]:
    """The councils that ``text`` names, longest names first, without repeats; a name inside a
    longer one already found ("Kingston" in "Kingston upon Thames") is not counted again. With
    ``is_word`` (does the archive's text use this word?), a word it does not use that is one slip
    from a one-word council name counts as that council ("lincolnshre")."""
    hay = _norm(text)
    found: list[str] = []
    taken: list[tuple[int, int]] = []
    for place in councils():
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
    if not found and is_word is not None:
        words = [w for w in hay.split() if len(w) >= FUZZY_MIN_LETTERS and not is_word(w)]
        for place in councils():
            name = place.lower()
            if " " not in name and len(name) >= FUZZY_MIN_LETTERS and any(
                    w[0] == name[0] and within_one_edit(w, name) for w in words):
                found.append(place)
    return found


def unindexed_places(text: str, authorities: list[str], is_word: Callable[[str], bool] | None = None) -> list[str]:
    """The councils ``text`` names that are none of the indexed ``authorities``."""
    known = " ".join(_norm(a) for a in authorities)
    return [place for place in named_places(text, is_word) if f" {_norm(place).strip()} " not in known]
