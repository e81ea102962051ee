"""Statute citations: the bracketed references to Acts that decisions give for each power they use.

Users look decisions up by them ("section 26(6)(c)"), so each citation is expanded into one
canonical provision per section, e.g. ``Local Government Act 1974, section 26(6)(c)``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_BRACKET_RE = re.compile(r"\((?P<body>(?:[^()]|\([^()]*\))*)\)")
_ACT_RE = re.compile(r"(?P<act>(?:[A-Z][\w’'&-]*\s+)*?(?:[A-Z][\w’'&-]*\s+)?Act\s+\d{4})")
_SCHEDULE_RE = re.compile(r"Schedule\s+(?P<sch>[\w/]+),?\s*paragraphs?\s+(?P<para>[\w/()]+)", re.I)
_PROVISION_RE = re.compile(
    r"(?P<base>(?<![\w(])\d+[A-Z]{0,3}(?![\w]))\s?(?P<subs>(?:\([^()]*\))*)|(?P<lone>(?:\([^()]*\))+)"
)
_SECTION_WORD_RE = re.compile(r"\bs(?:ections?|s?\.)?\s*(?=\d)", re.I)

DEFAULT_ACT = "Local Government Act 1974"


@dataclass(frozen=True)
class Provision:
    """One provision of one Act, as the index stores it and the citation lookup matches it."""

    act: str
    part: str  # "section 26(6)(c)" or "Schedule 5, paragraph 5(b)"

    def __str__(self) -> str:
        return f"{self.act}, {self.part}" if self.act else self.part


def _expand_subs(subs: str) -> list[str]:
    """``(3 and 4)`` -> ``["(3)", "(4)"]``; ``(6)(c)`` stays whole."""
    inner = re.fullmatch(r"\((\w+)\s+and\s+(\w+)\)", subs)
    if inner:
        return [f"({inner.group(1)})", f"({inner.group(2)})"]
    return [subs]


def _sections(text: str) -> list[str]:
    """The section numbers listed in a piece of citation text, each written ``26(6)(c)``."""
    found: list[str] = []
    start = _SECTION_WORD_RE.search(text)
    if not start:
        return found
    last_base = ""
    for m in _PROVISION_RE.finditer(text, start.start()):
        before = text[: m.start()].rstrip()
        listed = not found or re.search(r"(?:,|\band|\bsections?|\bs\.?)$", before, re.I)
        if m.group("base") and listed:
            last_base = m.group("base")
            subs = m.group("subs") or ""
        elif m.group("lone") and last_base and listed:
            subs = m.group("lone")
        else:
            continue
        for s in _expand_subs(subs):
            found.append(f"section {last_base}{re.sub(r'[ ]+', '', s)}")
    return found


def parse_citation(body: str) -> list[Provision]:
    """The provisions cited in the text inside one pair of brackets (empty when it cites no Act)."""
    body = re.sub(r"\s+", " ", body.replace("as amended", ""))
    acts = list(_ACT_RE.finditer(body))
    if not acts:
        return []
    out: list[Provision] = []
    for i, m in enumerate(acts):
        act = re.sub(r"^(?:and|the)\s+", "", m.group("act").strip(), flags=re.I)
        end = acts[i + 1].start() if i + 1 < len(acts) else len(body)
        rest = body[m.end() : end]
        for sch in _SCHEDULE_RE.finditer(rest):
            out.append(Provision(act, f"Schedule {sch.group('sch')}, paragraph {sch.group('para')}"))
        rest = _SCHEDULE_RE.sub(" ", rest)
        out.extend(Provision(act, part) for part in _sections(rest))
    return out


def extract_statutes(text: str) -> tuple[str, ...]:
    """Every provision cited in brackets in ``text``, canonical and without repeats, in order."""
    seen: list[str] = []
    for m in _BRACKET_RE.finditer(text):
        for p in parse_citation(m.group("body")):
            s = str(p)
            if s not in seen:
                seen.append(s)
    return tuple(seen)


def parse_provision_query(text: str) -> Provision | None:
    """What a user means by ``section 26(6)(c)``, ``s34(3)`` or ``Local Government Act 1974 s34(3)``.

    Returns None when the text names no section or schedule paragraph. An Act left unnamed is
    matched against every Act.
    """
    text = re.sub(r"\s+", " ", text.strip())
    act_m = _ACT_RE.search(text)
    act = act_m.group("act").strip() if act_m else ""
    rest = text[act_m.end() :] if act_m else text
    sch = _SCHEDULE_RE.search(rest)
    if sch:
        return Provision(act, f"Schedule {sch.group('sch')}, paragraph {sch.group('para')}")
    m = re.search(r"\bs(?:ections?|s?\.)?\s*(\d+[A-Z]{0,3})((?:\s?\(\s*\w+\s*\))*)", rest, re.I)
    if not m:
        return None
    subs = re.sub(r"\s+", "", m.group(2))
    return Provision(act, f"section {m.group(1).upper()}{subs}")


def provision_matches(query: Provision, cited: str) -> bool:
    """Whether a stored citation falls under the queried provision.

    ``section 26(6)`` matches ``section 26(6)(c)`` (a narrower provision is still under it), but
    ``section 26`` does not match ``section 26A``.
    """
    act, _, part = cited.rpartition(", section ") if ", section " in cited else ("", "", "")
    if not part:
        act, sep, sch = cited.partition(", Schedule ")
        if not sep:
            return False
        part_full = f"Schedule {sch}"
    else:
        part_full = f"section {part}"
    if query.act and query.act.lower() != act.lower():
        return False
    q = query.part
    return part_full == q or (part_full.startswith(q) and part_full[len(q)] == "(")
