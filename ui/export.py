"""What users take with them: a conversation as Markdown with its citations (ready-to-paste lines
and links), cited paragraphs and search results as CSV, and links that open the app on a question
or on a paragraph of a decision."""

from __future__ import annotations

import csv
import io
import re
from urllib.parse import quote, urlencode

from index.passage import SUMMARY
from rag.citation import citation_line

CSV_COLUMNS = ["question", "n", "authority", "ref", "paragraph", "section", "outcome", "decision_date", "url",
               "citation", "quoted", "text"]


def question_link(question: str) -> str:
    """The app's address that opens on this question and asks it (relative: ``?q=...``)."""
    return "?" + urlencode({"q": question}, quote_via=quote)


def paragraph_link(ref: str, paragraph: int | str | None = None) -> str:
    """The app's address that opens a decision, at a paragraph if given (``?ref=24-016-809&para=15``)."""
    params = {"ref": ref.replace(" ", "-")}
    if paragraph not in (None, ""):
        params["para"] = str(paragraph)
    return "?" + urlencode(params, quote_via=quote)


def _hit_fields(hit) -> dict:
    get = (lambda k: hit.get(k, "")) if isinstance(hit, dict) else (lambda k: getattr(hit, k, ""))
    return {k: get(k) for k in ("authority", "ref", "paragraph", "section", "outcome", "decision_date", "url", "text")}


def conversation_markdown(exchanges, base_url: str = "") -> str:
    """A conversation (pairs of question and ``Answer``, or error text) as a Markdown document: each
    question, the answer with its ``[n]`` markers, and under it the cited paragraphs: the line to
    paste, the link, the sentences quoted and the whole paragraph."""
    lines = ["# Questions about LGSCO decisions", ""]
    for i, (question, answer, error) in enumerate(exchanges, start=1):
        lines += [f"## {i}. {question}", ""]
        if error or answer is None:
            lines += [f"_No answer: {error or 'nothing came back'}_", ""]
            continue
        lines += [answer.text, ""]
        if answer.note:
            lines += [f"_{answer.note}_", ""]
        if answer.citations:
            lines += ["**Cited paragraphs**", ""]
        for c in answer.citations:
            h = _hit_fields(c.hit)
            line = citation_line(h["authority"], h["ref"], h["paragraph"], h["decision_date"], h["url"])
            lines.append(f"[{c.n}] {line}")
            if h["url"]:
                lines.append(f"    <{h['url']}>")
            if base_url:
                lines.append(f"    In the app: <{base_url.rstrip('/')}/{paragraph_link(h['ref'], h['paragraph'])}>")
            for s in c.sentences:
                lines.append(f"    > {s}")
            lines.append("")
        if not answer.found and answer.closest:
            lines += ["**Closest passages (they do not answer the question)**", ""]
            for h in answer.closest:
                f = _hit_fields(h)
                lines.append("- " + citation_line(f["authority"], f["ref"], f["paragraph"], f["decision_date"], f["url"]))
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def citations_csv(exchanges) -> str:
    """Every cited paragraph of a conversation, a row each (``CSV_COLUMNS``)."""
    rows = []
    for question, answer, error in exchanges:
        if error or answer is None:
            continue
        for c in answer.citations:
            h = _hit_fields(c.hit)
            rows.append({"question": question, "n": c.n, **{k: h[k] for k in h},
                         "paragraph": "Summary" if h["paragraph"] == SUMMARY else h["paragraph"],
                         "citation": citation_line(h["authority"], h["ref"], h["paragraph"], h["decision_date"], h["url"]),
                         "quoted": " ".join(c.sentences)})
    return _csv(rows)


def hits_csv(hits, question: str = "") -> str:
    """Search results (hits or their JSON), a row each, best first (``n`` is the rank)."""
    rows = []
    for n, hit in enumerate(hits, start=1):
        h = _hit_fields(hit)
        rows.append({"question": question, "n": n, **h,
                     "paragraph": "Summary" if h["paragraph"] == SUMMARY else h["paragraph"],
                     "citation": citation_line(h["authority"], h["ref"], h["paragraph"], h["decision_date"], h["url"]),
                     "quoted": ""})
    return _csv(rows)


def _csv(rows: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(v) for k, v in row.items()})
    return out.getvalue()


def _cell(value) -> str:
    """A CSV cell that a spreadsheet shows as text: a leading = + - @ would start a formula."""
    text = "" if value is None else str(value)
    return "'" + text if re.match(r"[=+\-@\t\r]", text) else text


def file_name(question: str, suffix: str) -> str:
    """A short safe file name from the first question: ``why-was-mr-x-s-complaint-closed.md``."""
    stem = re.sub(r"[^a-z0-9]+", "-", question.lower()).strip("-")[:60] or "conversation"
    return f"{stem}{suffix}"

