"""Parsing decision texts (and saved web pages) into ``Decision`` objects with official numbering.

The exports we receive lose the LGSCO's continuous paragraph numbers: in one format every section
restarts at ``1.``, in another paragraphs are ``- `` bullets. The n-th top-level paragraph of the
decision is its paragraph n, so numbering is rebuilt by counting top-level items in order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

from index.decision import Decision, Paragraph, derive_url, normalise_reference
from index.statute import extract_statutes


class DecisionError(ValueError):
    """A file that cannot be read as a decision; the message names the file and the problem."""


_HEADER_RE = re.compile(
    r"^\s*(?P<authority>\S.*?)\s*\((?P<ref>\d{2}\s?\d{3}\s?\d{3}[a-zA-Z]?)\)\s*$"
)
_META_RE = re.compile(r"^\s*(?P<key>Category|Decision date|Decision)\s*:\s*(?P<value>.*?)\s*$")
_NUMBERED_RE = re.compile(r"^(?P<indent>[ \t]*)(?P<num>\d{1,4})\.[ \t]+(?P<text>\S.*)$")
_LETTERED_RE = re.compile(r"^(?P<indent>[ \t]*)\(?(?P<num>[a-z]{1,2}|[ivx]{1,4})\)[ \t]+(?P<text>\S.*)$")
_BULLET_RE = re.compile(r"^(?P<indent>[ \t]*)[•●▪◦·][ \t]*(?P<text>\S.*)$")
_DASH_RE = re.compile(r"^(?P<indent>[ \t]*)[-–][ \t]+(?P<text>\S.*)$")
_SUMMARY_RE = re.compile(r"^\s*Summary\s*:\s*(?P<text>.*)$")
_ALIAS_RE = re.compile(
    r"\b(?P<title>Mr|Mrs|Ms|Miss|Mx|Dr)\.?\s+(?:and\s+(?P<title2>Mr|Mrs|Ms|Miss|Mx|Dr)\.?\s+)?(?P<letter>[A-Z])\b(?![’'a-z])"
)

_NOISE = {
    "back to top",
    "print this page",
    "lgo logogram",
    "privacy settings",
    "the ombudsman's final decision:",
    "the ombudsmen's final decision:",
    "contents",
    "skip to content",
}
# Once one of these appears after the body has begun, the rest of the page is site furniture.
_END_MARKERS = {"review your privacy settings", "privacy settings", "print this page", "lgo logogram"}
_SIGNATURE_RE = re.compile(r"^(?:Investigator|Assistant Ombudsman|Ombudsman)[’']?s?\b.*\bdecision\b.*$|.*on behalf of the Ombudsm[ae]n\.?$", re.I)

# Headings that open a top-level section of a decision; any other heading is a sub-heading of the
# section it stands in (e.g. "What happened" under "What I found").
TOP_SECTIONS = {
    "the complaint",
    "complaint",
    "the ombudsman's role and powers",
    "the ombudsmen's role and powers",
    "the ombudsman’s role and powers",
    "the council's role and powers",
    "how i considered this complaint",
    "how i considered this complaint and the evidence",
    "what i have investigated",
    "what i have and have not investigated",
    "what i have not investigated",
    "what i found",
    "my assessment",
    "assessment",
    "analysis",
    "conclusions",
    "conclusion",
    "final decision",
    "decision",
    "agreed action",
    "action",
    "recommendations",
    "complaint background",
    "background",
    "legal and administrative background",
    "the law and guidance",
    "relevant law and guidance",
    "investigator's decision",
    "parts of the complaint that i did not investigate",
}

_MONTHS = "%d %b %Y", "%d %B %Y", "%d/%m/%Y", "%Y-%m-%d"


def _key(line: str) -> str:
    """A line folded for comparing with headings: whitespace runs as one space, curly apostrophes
    straight, lower case. Every line of every file ingested is folded, so this splits and joins
    (the same characters count as whitespace) instead of replacing runs with a pattern, which
    took three times as long over the lines of the seeds and the corpus."""
    return " ".join(line.replace("’", "'").split()).lower()


def parse_date(text: str) -> date | None:
    """``09 Apr 2025`` (and the other forms decisions use) as a date; None when it is not one."""
    text = re.sub(r"\s+", " ", text.strip())
    for fmt in _MONTHS:
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    return None


def _is_heading(line: str) -> bool:
    """A short bare line without closing punctuation is a section heading, not a continuation."""
    s = line.strip()
    if not s or len(s) > 90 or len(s.split()) > 12:
        return False
    if s[0] in "(\"“‘'" or not (s[0].isupper() or s[0].isdigit()):
        return False
    if _key(s) in TOP_SECTIONS:
        return True
    return s[-1] not in ".,;:)!?\"”’'"


@dataclass
class _Para:
    section: str
    subsection: str
    lines: list[str] = field(default_factory=list)
    open_list: bool = False  # the lead-in ended with ':' so dash items that follow may be sub-items

    @property
    def text(self) -> str:
        return "\n".join(self.lines).strip()


@dataclass
class _State:
    paragraphs: list[_Para] = field(default_factory=list)
    section: str = ""
    subsection: str = ""
    summary: list[str] = field(default_factory=list)
    in_summary: bool = False
    top_indent: int | None = None
    after_heading: bool = False  # a heading came after the last paragraph began
    complainant: str = ""  # the first alias of the summary ("Mrs A"), once known


def _letter(n: int) -> str:
    return chr(ord("a") + (n - 1) % 26)


def _append_sub(state: _State, marker: str, text: str) -> None:
    if not state.paragraphs:
        _new_para(state, text)
        return
    para = state.paragraphs[-1]
    para.lines.append(f"{marker} {text}")


def _new_para(state: _State, text: str) -> None:
    state.in_summary = False
    state.after_heading = False
    state.paragraphs.append(
        _Para(state.section, state.subsection, [text], open_list=text.rstrip().endswith((":", ";")))
    )


_CONTINUES = (":", ";", "; and", "; or", ", or", ", and")


def _is_list_item(para: _Para, text: str, state: _State) -> bool:
    """Whether a ``- `` line of the unnumbered export is a sub-item of the paragraph above.

    That export flattens lists into the same bullets as paragraphs, so the list is read from the
    wording: items follow a lead-in ending in ':' or ';', and are lower-case fragments, or short
    sentences that do not open with the complainant (who opens most new paragraphs).
    """
    last = para.lines[-1].rstrip()
    if text[:1].islower():
        return para.open_list or last.endswith(_CONTINUES)
    if not para.open_list:
        return False
    if text.rstrip().endswith(_CONTINUES[1:]):
        return True
    starts_with_complainant = bool(state.complainant) and text.startswith(state.complainant)
    return len(text.split()) <= 20 and not starts_with_complainant


def _body_line(state: _State, line: str) -> None:
    """Feed one line of the decision body into the paragraph builder."""
    m = _NUMBERED_RE.match(line)
    if m:
        indent = len(m.group("indent").expandtabs(4))
        if state.top_indent is None or indent < state.top_indent:
            state.top_indent = indent
        if indent > state.top_indent + 1 and state.paragraphs:
            sub_count = sum(1 for ln in state.paragraphs[-1].lines[1:] if re.match(r"^[a-z]\) ", ln))
            _append_sub(state, f"{_letter(sub_count + 1)})", m.group("text").strip())
        else:
            _new_para(state, m.group("text").strip())
        return
    m = _BULLET_RE.match(line) or _LETTERED_RE.match(line)
    if m and state.paragraphs and not state.in_summary:
        _append_sub(state, "•", m.group("text").strip())
        return
    m = _DASH_RE.match(line)
    if m:
        text = m.group("text").strip()
        para = state.paragraphs[-1] if state.paragraphs and not state.after_heading else None
        if para and not state.in_summary and (m.group("indent") or _is_list_item(para, text, state)):
            _append_sub(state, "•", text)
            # A lower-case list ends with its first full stop; a list of sentences runs on.
            para.open_list = not (text[:1].islower() and text.endswith("."))
        else:
            _new_para(state, text)
        return
    stripped = line.strip()
    if _is_heading(stripped):
        state.in_summary = False
        state.after_heading = True
        if _key(stripped) in TOP_SECTIONS or not state.section:
            state.section, state.subsection = stripped, ""
        else:
            state.subsection = stripped
        return
    if state.in_summary:
        state.summary.append(stripped)
    elif state.paragraphs and not state.after_heading:
        para = state.paragraphs[-1]
        para.lines.append(stripped)
        para.open_list = False
    else:
        # Text under a heading with no paragraph marker at all still counts as a paragraph.
        _new_para(state, stripped)


def _aliases(texts: list[str]) -> tuple[str, ...]:
    seen: list[str] = []
    for t in texts:
        for m in _ALIAS_RE.finditer(t):
            # "Mr and Mrs X" names two people: Mr X and Mrs X.
            for title in filter(None, (m.group("title"), m.group("title2"))):
                alias = f"{title} {m.group('letter')}"
                if alias not in seen:
                    seen.append(alias)
    return tuple(seen)


def _category_from_url(url: str) -> tuple[str, ...]:
    m = re.search(r"/decisions/([^/]+)/([^/]+)/[^/]+/?$", url)
    if not m:
        return ()
    return tuple(re.sub(r"-s-", "'s ", s).replace("-", " ").capitalize() for s in m.groups())


def parse_text(text: str, source: str = "<text>") -> Decision:
    """Parse a decision's text export. Raises ``DecisionError`` naming ``source`` when it is not one."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").lstrip("\ufeff").split("\n")
    url = ""
    header_at = None
    for i, line in enumerate(lines):
        s = line.strip()
        if not url and s.lower().startswith("url:"):
            url = s[4:].strip()
            continue
        m = _HEADER_RE.match(line)
        if m and len(s) < 200:
            header_at = i
            break
    if header_at is None:
        raise DecisionError(
            f"{source}: not a decision: no heading line naming the authority and reference, "
            "such as 'Leicestershire County Council (24 016 809)'"
        )
    head = _HEADER_RE.match(lines[header_at])
    assert head
    reference = normalise_reference(head.group("ref"))
    authority = re.sub(r"\s+", " ", head.group("authority")).strip()

    meta: dict[str, str] = {}
    state = _State()
    signature = ""
    for line in lines[header_at + 1 :]:
        s = line.strip()
        if not s:
            continue
        k = _key(s)
        if k in _END_MARKERS and (state.paragraphs or state.summary):
            break
        if k in _NOISE or k.startswith("url:"):
            continue
        mm = _META_RE.match(s)
        if mm and not state.paragraphs and not state.summary and mm.group("key") not in meta:
            meta[mm.group("key")] = mm.group("value")
            continue
        sm = _SUMMARY_RE.match(s)
        if sm and not state.summary and not state.paragraphs:
            state.summary.append(sm.group("text").strip())
            state.in_summary = True
            continue
        if not state.complainant and (state.summary or state.paragraphs):
            found = _aliases(state.summary or [state.paragraphs[0].text])
            state.complainant = found[0] if found else ""
        if _SIGNATURE_RE.match(s) and len(s) < 120:
            signature = s
            continue
        _body_line(state, line)

    category = tuple(c.strip() for c in meta.get("Category", "").split(">") if c.strip())
    if not category and url:
        category = _category_from_url(url)
    decision_date = parse_date(meta.get("Decision date", ""))
    if meta.get("Decision date") and decision_date is None:
        raise DecisionError(f"{source}: {reference}: decision date {meta['Decision date']!r} is not a date")

    paragraphs = tuple(
        Paragraph(
            number=i,
            section=p.section,
            subsection=p.subsection,
            text=p.text,
            statutes=extract_statutes(p.text),
        )
        for i, p in enumerate(state.paragraphs, start=1)
    )
    summary = " ".join(state.summary).strip()
    if not summary and not paragraphs:
        raise DecisionError(f"{source}: {reference}: the decision has neither a summary nor any paragraphs")
    all_statutes: list[str] = []
    for p in paragraphs:
        all_statutes.extend(s for s in p.statutes if s not in all_statutes)
    return Decision(
        reference=reference,
        authority=authority,
        category=category,
        outcome=meta.get("Decision", "").strip(),
        decision_date=decision_date,
        url=url or derive_url(reference, category),
        summary=summary,
        paragraphs=paragraphs,
        aliases=_aliases([summary, *(p.text for p in paragraphs)]),
        statutes=tuple(all_statutes),
        signature=signature,
        source=source,
    )


def _utf16(data: bytes) -> str | None:
    """The text of UTF-16 bytes (what Windows editors save as "Unicode"), with or without a byte
    order mark; None when the bytes are not UTF-16 text."""
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        encoding = "utf-16"
    else:
        sample = data[:4096]
        even, odd = sample[0::2].count(0), sample[1::2].count(0)
        half = max(len(sample) // 2, 1)
        # Latin text in UTF-16 has a zero in every other byte: the high byte of each character.
        if odd / half > 0.3 and even / half < 0.05:
            encoding = "utf-16-le"
        elif even / half > 0.3 and odd / half < 0.05:
            encoding = "utf-16-be"
        else:
            return None
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError:
        return None
    controls = sum(1 for ch in text if ord(ch) < 32 and ch not in "\n\r\t\f")
    return None if controls > len(text) / 100 else text.lstrip("\ufeff")


def decode_bytes(data: bytes, source: str) -> str:
    """Text of a file: UTF-8 (with or without BOM), UTF-16 (with or without BOM), else
    Windows-1252, else a clear error."""
    if not data.strip(b" \t\r\n\x00\xff\xfe\xef\xbb\xbf"):
        raise DecisionError(f"{source}: the file is empty")
    if data[:2] in (b"\xff\xfe", b"\xfe\xff") or b"\x00" in data[:4096]:
        text = _utf16(data)
        if text is None:
            raise DecisionError(f"{source}: a binary file, not a decision text (it contains NUL bytes)")
        if not text.strip():
            raise DecisionError(f"{source}: the file is empty")
        return text
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        text = data.decode("cp1252")
    except UnicodeDecodeError as e:
        raise DecisionError(
            f"{source}: not UTF-8 or Windows-1252 text (byte {data[e.start]:#04x} at offset {e.start})"
        ) from None
    controls = sum(1 for ch in text if ord(ch) < 32 and ch not in "\n\r\t\f")
    if controls > len(text) / 100:
        raise DecisionError(f"{source}: a binary file, not a decision text")
    return text


def is_html(text: str) -> bool:
    head = text.lstrip()[:500].lower()
    return head.startswith("<!doctype html") or head.startswith("<html") or "<body" in head


def parse_file(path: Path) -> Decision:
    """Read and parse one file (``.txt`` export or saved ``.html`` page)."""
    source = str(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DecisionError(f"{source}: no such file") from None
    except IsADirectoryError:
        raise DecisionError(f"{source}: is a folder, not a file") from None
    except OSError as e:
        raise DecisionError(f"{source}: cannot be read ({e.strerror})") from None
    text = decode_bytes(data, source)
    if path.suffix.lower() in {".html", ".htm"} or is_html(text):
        from index.html import html_to_text

        text = html_to_text(text)
    return parse_text(text, source)
