"""Citation lookup: what users paste to check a citation ("24 016 809", "24-016-809 para 15",
"section 26(6)(c)") and the ready-to-paste line for citing a paragraph.

``lookup`` never guesses: a reference or paragraph that does not exist is an error naming the
nearest valid choices, so a user (or the ``cite`` command) can correct it.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import date

from index.decision import REFERENCE_PATTERN, Decision, find_references, passage_id
from index.passage import SUMMARY
from index.statute import Provision, parse_provision_query, provision_matches
from index.store import nearest_references

log = logging.getLogger(__name__)

DECISION, PARAGRAPH, PROVISION, ERROR = "decision", "paragraph", "provision", "error"

# "para 15", "paragraph 15", "paras. 15", "¶15", "p15", "p.15", "#15" (the passage id form).
PARAGRAPH_RE = re.compile(r"(?:\bparagraphs?|\bparas?\.?|¶|\bp\.?|#)\s*(\d{1,4})\b", re.I)
SUMMARY_RE = re.compile(r"\bsummary\b", re.I)
_USAGE = "a reference (24 016 809), a paragraph (24 016 809 para 15) or a provision (section 26(6)(c))"


def format_date(value: str | date | None) -> str:
    """``2025-04-09`` -> ``9 April 2025`` (how LGSCO decisions and users write dates); "" when unknown."""
    if not value:
        return ""
    if isinstance(value, str):
        try:
            value = date.fromisoformat(value)
        except ValueError:
            return value
    return f"{value.day} {value:%B %Y}"


def paragraph_label(paragraph: int | str | None) -> str:
    """``15`` -> ``para 15``; ``"summary"`` -> ``Summary``; None -> "" (the decision as a whole)."""
    if paragraph is None or paragraph == "":
        return ""
    return "Summary" if str(paragraph).lower() == SUMMARY else f"para {paragraph}"


def citation_line(authority: str, ref: str, paragraph: int | str | None, decision_date: str | date | None,
                  url: str) -> str:
    """The line to paste into a letter or article, e.g.

    ``Leicestershire County Council (24 016 809), para 15, 9 April 2025, https://www.lgo.org.uk/...``

    ``paragraph`` is a number, ``"summary"`` or None (citing the whole decision); an unknown date
    or URL is left out rather than printed empty.
    """
    parts = [f"{authority} ({ref})" if authority else ref]
    for part in (paragraph_label(paragraph), format_date(decision_date), url):
        if part:
            parts.append(part)
    return ", ".join(parts)


@dataclass
class Citation:
    """One cited paragraph of an answer: the hit (whole paragraph and its metadata), its number
    ``n`` (the answer's ``[n]`` markers) and the sentences of it that the answer quotes."""

    n: int
    hit: object  # rag.retriever.Hit
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
class CitationResult:
    """What ``lookup`` found. ``kind`` says which fields are filled:

    - ``decision``: ``decision`` (metadata, summary, ``outline`` of sections with paragraph ranges)
    - ``paragraph``: ``hit`` (the passage, whole) and ``citation`` (the line to paste)
    - ``provision``: ``provision`` and ``matches`` (citing decisions, each with its paragraphs) and ``counts``
    - ``error``: ``message`` and ``choices`` (the nearest valid references, paragraphs or provisions)
    """

    kind: str
    message: str
    decision: dict | None = None
    hit: object | None = None  # rag.retriever.Hit
    citation: str = ""
    provision: str = ""
    matches: list[dict] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    choices: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.kind != ERROR

    def to_json(self) -> dict:
        out: dict = {"kind": self.kind, "message": self.message}
        if self.decision is not None:
            out["decision"] = self.decision
        if self.hit is not None:
            out["hit"] = self.hit.to_json()
        if self.citation:
            out["citation"] = self.citation
        if self.kind == PROVISION:
            out.update(provision=self.provision, counts=self.counts, matches=self.matches)
        if self.choices:
            out["choices"] = self.choices
        return out

    def to_text(self) -> str:
        """What ``ombudsman cite`` prints."""
        if self.kind == ERROR:
            return self.message
        if self.kind == PARAGRAPH:
            h = self.hit
            head = f"{h.authority} ({h.ref}), {h.label} — {h.section}" + (f" > {h.subsection}" if h.subsection else "")
            return "\n".join([
                head,
                f"{h.outcome or 'outcome unknown'}, {format_date(h.decision_date) or 'date unknown'}  {h.url}",
                "",
                h.text,
                "",
                f"Cite as: {self.citation}",
            ])
        if self.kind == DECISION:
            d = self.decision or {}
            lines = [
                f"{d['authority']} ({d['ref']})",
                f"Category: {d['category']}",
                f"Decision: {d['outcome']}",
                f"Decision date: {format_date(d['decision_date']) or 'unknown'}",
                d["url"],
                "",
                f"Summary: {d['summary']}" if d["summary"] else "No Summary.",
                "",
                f"Paragraphs {d['paragraphs']}:" if d["paragraphs"] else "No numbered paragraphs.",
            ]
            width = max((len(s["paragraphs"]) for s in d["outline"]), default=0)
            lines += [f"  {s['paragraphs']:<{width}}  {s['heading']}" for s in d["outline"]]
            lines += ["", f"Cite as: {self.citation}"]
            return "\n".join(lines)
        lines = [self.message, ""]
        for m in self.matches:
            lines.append(f"{m['authority']} ({m['ref']}), {format_date(m['decision_date']) or 'date unknown'}, {m['outcome']}")
            for p in m["paragraphs"]:
                how = "" if p["exact"] else "  (narrower)"
                lines.append(f"  {paragraph_label(p['paragraph'])}: {'; '.join(p['statutes'])}{how}")
        return "\n".join(lines).rstrip()


def lookup(archive, text: str) -> CitationResult:
    """Look up what a user typed: a decision, one of its paragraphs, or a statutory provision.

    ``archive`` is a ``rag.archive.Archive``; nothing here loads the embedding model.
    """
    text = (text or "").strip()
    if not text:
        return CitationResult(ERROR, f"nothing to look up; give {_USAGE}")
    refs = find_references(text)
    if refs:
        return _decision_or_paragraph(archive, refs[0], re.sub(REFERENCE_PATTERN, " ", text))
    provision = parse_provision_query(text)
    if provision is not None:
        return _provision(archive, provision)
    return CitationResult(ERROR, f"{text!r} is not {_USAGE}")


def decision_outline(d: Decision) -> list[dict]:
    """Section headings in order with the paragraph range under each: ``{"heading", "paragraphs": "6-10"}``."""
    out: list[dict] = []
    for p in d.paragraphs:
        heading = p.section + (f" > {p.subsection}" if p.subsection else "")
        if out and out[-1]["heading"] == heading and out[-1]["last"] == p.number - 1:
            out[-1]["last"] = p.number
        else:
            out.append({"heading": heading, "first": p.number, "last": p.number})
    return [
        {"heading": s["heading"], "first": s["first"], "last": s["last"],
         "paragraphs": str(s["first"]) if s["first"] == s["last"] else f"{s['first']}-{s['last']}"}
        for s in out
    ]


def available(d: Decision) -> str:
    """``paragraphs 1-18 and a Summary``: what can be cited in a decision."""
    parts = []
    if d.paragraphs:
        parts.append(f"paragraphs 1-{len(d.paragraphs)}" if len(d.paragraphs) > 1 else "paragraph 1")
    if d.summary:
        parts.append("a Summary")
    return " and ".join(parts) or "no citable text"


def _choices(d: Decision) -> list[str]:
    return ([f"{d.reference} summary"] if d.summary else []) + [f"{d.reference} para {p.number}" for p in d.paragraphs]


def _decision_or_paragraph(archive, ref: str, rest: str) -> CitationResult:
    try:
        d = archive.decision(ref)
    except KeyError:
        near = nearest_references(ref, list(archive.store.complete_records()))
        hint = f"; the nearest indexed references are {', '.join(near)}" if near else "; the index is empty"
        return CitationResult(ERROR, f"decision {ref} is not indexed{hint}", choices=near)
    m = PARAGRAPH_RE.search(rest)
    if m:
        paragraph: int | str | None = int(m.group(1))
    elif SUMMARY_RE.search(rest):
        paragraph = SUMMARY
    else:
        paragraph = None
    if paragraph is None:
        outline = decision_outline(d)
        body = {
            "ref": d.reference, "authority": d.authority, "category": d.category_path, "outcome": d.outcome,
            "decision_date": d.decision_date.isoformat() if d.decision_date else "", "url": d.url,
            "summary": d.summary, "paragraphs": f"1-{len(d.paragraphs)}" if d.paragraphs else "",
            "outline": outline,
        }
        line = citation_line(d.authority, d.reference, None, d.decision_date, d.url)
        return CitationResult(DECISION, f"{d.authority} ({d.reference}) has {available(d)}", decision=body,
                              citation=line)
    missing = (not d.summary) if paragraph == SUMMARY else not 1 <= int(paragraph) <= len(d.paragraphs)
    if missing:
        what = "Summary" if paragraph == SUMMARY else f"paragraph {paragraph}"
        return CitationResult(ERROR, f"{d.reference} has no {what}; it has {available(d)}", choices=_choices(d))
    from rag.retriever import hit_of

    pid = passage_id(d.reference, paragraph)
    stored = archive.store.passages([pid]).get(pid)
    if stored is None:  # the decision record exists but its passages do not: say so, do not invent one
        return CitationResult(ERROR, f"{pid} is missing from the index; re-run `ombudsman ingest` to repair it")
    hit = hit_of(stored, 1.0)
    line = citation_line(hit.authority, hit.ref, hit.paragraph, hit.decision_date, hit.url)
    return CitationResult(PARAGRAPH, f"{hit.authority} ({hit.ref}), {hit.label}", hit=hit, citation=line)


def _provision(archive, query: Provision) -> CitationResult:
    """Every indexed paragraph citing ``query`` (or a narrower provision under it), by decision."""
    by_ref: dict[str, dict] = {}
    cited_parts: set[str] = set()
    wanted = str(query)
    # The catalogue holds every passage's provisions: no decision text needs reading.
    catalogue = archive.retriever.catalogue if archive.store.exists() else None
    for ref, number, *_, statutes in (catalogue.passages.values() if catalogue else ()):
        cited_parts.update(statutes)
        hits = [s for s in statutes if provision_matches(query, s)]
        if not hits:
            continue
        d = catalogue.decisions.get(ref, {})
        paragraph = SUMMARY if number == SUMMARY else int(number)
        entry = by_ref.setdefault(ref, {
            "ref": ref, "authority": d.get("authority", ""), "outcome": d.get("outcome", ""),
            "decision_date": d.get("decision_date", ""), "url": d.get("url", ""), "paragraphs": [],
        })
        exact = any(s == wanted or (not query.act and s.endswith(f", {query.part}")) for s in hits)
        entry["paragraphs"].append({
            "paragraph": paragraph, "statutes": hits, "exact": exact,
            "citation": citation_line(entry["authority"], ref, paragraph, entry["decision_date"], entry["url"]),
        })
    scope = wanted if query.act else f"{query.part} (any Act)"
    if not by_ref:
        base = re.match(r"(section \w+?|Schedule \w+)[(,]", query.part + "(")
        near = sorted(s for s in cited_parts if base and f", {base.group(1)}" in s + "(")[:10]
        hint = f"; provisions of the same {base.group(1)} that are cited: {'; '.join(near)}" if near else ""
        return CitationResult(ERROR, f"no indexed paragraph cites {scope}{hint}", provision=wanted, choices=near)
    matches = sorted(by_ref.values(), key=lambda m: (m["decision_date"] or "", m["ref"]), reverse=True)
    for m in matches:
        m["paragraphs"].sort(key=lambda p: -1 if p["paragraph"] == SUMMARY else int(p["paragraph"]))
    paragraphs = sum(len(m["paragraphs"]) for m in matches)
    exact = sum(1 for m in matches for p in m["paragraphs"] if p["exact"])
    counts = {"decisions": len(matches), "paragraphs": paragraphs, "exact": exact, "narrower": paragraphs - exact}
    message = (f"{scope} is cited in {paragraphs} paragraph{'s' if paragraphs != 1 else ''} of "
               f"{len(matches)} decision{'s' if len(matches) != 1 else ''}")
    if paragraphs - exact:
        message += f" ({exact} cite it exactly, {paragraphs - exact} a narrower provision under it)"
    return CitationResult(PROVISION, message, provision=wanted, matches=matches, counts=counts)
