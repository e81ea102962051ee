"""HTML for the Gradio app: answers, citation cards, decisions and notices, built from escaped text.

Every piece of decision text, question, reference or URL that reaches the page goes through
``esc`` (``html.escape``) here and nowhere else builds markup, so a decision containing
``<script>`` or ``<img onerror=...>`` is shown as those characters and runs nothing.
"""

from __future__ import annotations

import html
import re
from datetime import date
from typing import Any, Iterable, Sequence
from urllib.parse import quote

SUMMARY = "summary"
_MARKER = re.compile(r"\[(\d{1,3}(?:\s*[,;]\s*\d{1,3})*)\]")


def esc(value: Any) -> str:
    """Text as HTML text: ``<``, ``>``, ``&`` and quotes escaped (safe inside attributes too)."""
    return html.escape("" if value is None else str(value), quote=True)


def safe_url(url: str | None) -> str:
    """The URL when it is plain http(s), else "" (a decision file could carry ``javascript:``)."""
    u = (url or "").strip()
    return u if re.match(r"^https?://[^\s\"'<>]+$", u, re.I) else ""


def nice_date(iso: str | date | None) -> str:
    """``2025-04-09`` -> ``9 Apr 2025``; anything unparseable is shown as given (or "date unknown")."""
    if not iso:
        return "date unknown"
    try:
        d = iso if isinstance(iso, date) else date.fromisoformat(str(iso)[:10])
    except ValueError:
        return str(iso)
    return f"{d.day} {d.strftime('%b %Y')}"


def paragraph_label(paragraph: int | str) -> str:
    return "Summary" if str(paragraph).lower() == SUMMARY else f"para {paragraph}"


def paragraph_anchor(paragraph: int | str) -> str:
    return "p-summary" if str(paragraph).lower() == SUMMARY else f"p-{paragraph}"


def outcome_class(outcome: str) -> str:
    o = (outcome or "").lower()
    if o.startswith("upheld"):
        return "upheld"
    if "not upheld" in o:
        return "not-upheld"
    if "closed" in o:
        return "closed"
    return "other"


def highlight(text: str, sentences: Iterable[str] = ()) -> str:
    """The paragraph text escaped, with each supporting sentence wrapped in ``<mark>``.

    Spans are found in the raw text first and each piece escaped separately, so highlighting can
    never join or split an HTML entity.
    """
    text = text or ""
    spans: list[tuple[int, int]] = []
    for s in sentences or ():
        s = (s or "").strip()
        if len(s) < 3:
            continue
        start = text.find(s)
        if start < 0:  # tolerate differences in inner whitespace
            pattern = r"\s+".join(re.escape(w) for w in s.split())
            m = re.search(pattern, text)
            if not m:
                continue
            start, end = m.span()
        else:
            end = start + len(s)
        spans.append((start, end))
    merged: list[list[int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    out, pos = [], 0
    for start, end in merged:
        out.append(esc(text[pos:start]))
        out.append(f"<mark>{esc(text[start:end])}</mark>")
        pos = end
    out.append(esc(text[pos:]))
    return "".join(out)


def link_markers(text: str, turn: int, known: Iterable[int] | None = None) -> str:
    """Answer text escaped, with ``[n]`` markers turned into links to card ``cite-<turn>-<n>``."""
    allowed = set(known) if known is not None else None

    def one(n: str) -> str:
        if allowed is not None and int(n) not in allowed:
            return esc(n)
        target = f"cite-{turn}-{n}"
        return (f'<a class="cite-marker" href="#{target}" data-target="{target}" '
                f'title="Show the cited paragraph [{n}]">{n}</a>')

    out, pos = [], 0
    for m in _MARKER.finditer(text or ""):
        out.append(esc(text[pos:m.start()]))
        numbers = re.split(r"\s*[,;]\s*", m.group(1))
        if allowed is not None and not any(int(n) in allowed for n in numbers):
            out.append(esc(m.group(0)))  # brackets that are not citation markers stay text
            pos = m.end()
            continue
        out.append('<span class="cite-group"><span class="br">[</span>' + '<span class="br">, </span>'.join(one(n) for n in numbers)
                   + '<span class="br">]</span></span>')
        pos = m.end()
    out.append(esc((text or "")[pos:]))
    return "".join(out)


def _get(obj: Any, name: str, default: Any = "") -> Any:
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


def card(hit: Any, *, n: int | None = None, sentences: Sequence[str] = (), anchor: str = "",
         citation_line: str = "", kind: str = "") -> str:
    """One cited paragraph: authority, reference, paragraph, section, outcome, date, link, text."""
    ref = _get(hit, "ref")
    paragraph = _get(hit, "paragraph")
    section = _get(hit, "section")
    subsection = _get(hit, "subsection")
    outcome = _get(hit, "outcome")
    url = safe_url(_get(hit, "url"))
    heading = " › ".join(x for x in (section, subsection) if x)
    badge = f'<span class="card-n">{n}</span>' if n is not None else ""
    link = (f'<a class="card-link" href="{esc(url)}" target="_blank" rel="noopener noreferrer">'
            "Read the decision ↗</a>") if url else ""
    if ref:
        here = f"?ref={esc(str(ref).replace(' ', '-'))}" + (f"&amp;para={esc(paragraph)}" if paragraph not in (None, "") else "")
        link += f'<a class="card-open" href="{here}" target="_blank" title="Open this paragraph in its decision">Open in the decision</a>'
    line = (f'<div class="card-citation"><span class="card-citation-label">Cite as</span> '
            f"{esc(citation_line)}</div>") if citation_line else ""
    classes = "card" + (f" card-{kind}" if kind else "")
    id_attr = f' id="{esc(anchor)}"' if anchor else ""
    return (
        f'<article class="{classes}"{id_attr} data-ref="{esc(ref)}" data-paragraph="{esc(paragraph)}">'
        f'<header class="card-head">{badge}<div class="card-title">'
        f'<div class="card-authority">{esc(_get(hit, "authority"))}</div>'
        f'<div class="card-where"><span class="card-ref">{esc(ref)}</span>'
        f'<span class="card-para">{esc(paragraph_label(paragraph))}</span>'
        + (f'<span class="card-section">{esc(heading)}</span>' if heading else "")
        + "</div></div></header>"
        f'<div class="card-facts"><span class="outcome outcome-{outcome_class(outcome)}">{esc(outcome or "outcome unknown")}</span>'
        f'<span class="card-date">{esc(nice_date(_get(hit, "decision_date")))}</span>{link}</div>'
        f'<p class="card-text">{highlight(_get(hit, "text"), sentences)}</p>{line}</article>'
    )


def notice(message: str, kind: str = "error") -> str:
    """A plain message box (``error``, ``warning`` or ``info``); empty message -> nothing."""
    if not message:
        return ""
    role = ' role="alert"' if kind == "error" else ""
    return f'<div class="notice notice-{esc(kind)}"{role}>{esc(message)}</div>'


def status_line(status: dict | None, error: str = "") -> str:
    if error:
        return f'<div class="status status-error">{esc(error)}</div>'
    s = status or {}
    decisions, paragraphs = int(s.get("decisions") or 0), int(s.get("paragraphs") or 0)
    parts = [
        f"<b>{decisions:,}</b> decision{'' if decisions == 1 else 's'}",
        f"<b>{paragraphs:,}</b> paragraph{'' if paragraphs == 1 else 's'} indexed",
        f"model {esc(s.get('model') or 'not loaded')}",
        esc(s.get("store") or ""),
    ]
    return '<div class="status">' + '<span class="sep">·</span>'.join(f"<span>{p}</span>" for p in parts) + "</div>"


def header(status_html: str) -> str:
    return ('<header class="app-header"><div class="brand"><div class="brand-name">Ombudsman decisions</div>'
            '<div class="brand-sub">Answers from LGSCO decisions that cite the paragraph they rest on</div></div>'
            f"{status_html}</header>")


# -- the chat ----------------------------------------------------------------------------------

EMPTY_CHAT = (
    '<div class="chat-empty"><h2>Ask about the Ombudsman\'s decisions</h2>'
    "<p>Questions are answered only from the indexed LGSCO decisions. Every sentence of an answer "
    "cites the paragraph it rests on: click a number such as <span class=\"cite-marker\">1</span> to see "
    "the paragraph, its decision and a link to it on lgo.org.uk.</p>"
    "<p>Follow-up questions use the conversation; the filters on the right narrow every question.</p></div>"
)


def turn_html(index: int, question: str, answer_text: str, *, found: bool | None = True, pending: bool = False,
              note: str = "", error: str = "", known: Iterable[int] | None = None, meta: str = "") -> str:
    """One exchange: the question as asked, and the answer with linked markers (or the error)."""
    share = (f'<a class="share-link" href="?q={esc(quote(question))}" target="_blank" '
             'title="A link that opens the app and asks this question">Link to this question</a>')
    q = (f'<div class="msg msg-user"><div class="msg-label">You</div><div class="msg-body">{esc(question)}</div>'
         f"{share if not pending else ''}</div>")
    if error:
        body = notice(error)
    else:
        text = link_markers(answer_text, index, known) if answer_text else ""
        if pending and not text:
            text = '<span class="thinking">Searching the decisions…</span>'
        elif pending:
            text += '<span class="caret"></span>'
        body = f'<div class="answer-text">{text}</div>'
        if note:
            body += f'<div class="answer-note">{esc(note)}</div>'
        if meta:
            body += f'<div class="answer-meta">{esc(meta)}</div>'
    cls = "msg msg-answer" + (" not-found" if found is False else "")
    a = f'<div class="{cls}" id="answer-{index}"><div class="msg-label">Answer</div>{body}</div>'
    return f'<section class="turn" data-turn="{index}">{q}{a}</section>'


def conversation(turns_html: Sequence[str]) -> str:
    if not turns_html:
        return f'<div class="chat">{EMPTY_CHAT}</div>'
    return '<div class="chat">' + "".join(turns_html) + "</div>"


def sources_panel(groups: Sequence[str]) -> str:
    if not groups:
        return ('<div class="sources"><div class="sources-empty">The paragraphs an answer cites appear here, '
                "with the supporting sentences highlighted.</div></div>")
    return '<div class="sources">' + "".join(groups) + "</div>"


def sources_group(index: int, question: str, cards_html: Sequence[str], heading: str = "Cited paragraphs",
                  latest: bool = True) -> str:
    cls = "sources-group" + ("" if latest else " earlier")
    return (f'<section class="{cls}" data-turn="{index}"><h3 class="sources-head">{esc(heading)}'
            f'<span class="sources-q">for “{esc(question)}”</span></h3>' + "".join(cards_html) + "</section>")


def candidates_html(candidates: Sequence[Any]) -> str:
    """Decisions an ambiguous question could mean (hits, decision dicts, or plain references)."""
    items = []
    for c in candidates:
        if isinstance(c, str):
            items.append(f"<li>{esc(c)}</li>")
            continue
        ref, authority = _get(c, "ref") or _get(c, "reference"), _get(c, "authority")
        extra = " · ".join(x for x in (_get(c, "outcome"), nice_date(_get(c, "decision_date")) if _get(c, "decision_date") else "") if x)
        items.append(f'<li><span class="card-ref">{esc(ref)}</span> {esc(authority)}'
                     + (f' <span class="muted">{esc(extra)}</span>' if extra else "") + "</li>")
    return '<ul class="candidates">' + "".join(items) + "</ul>"


# -- decisions ---------------------------------------------------------------------------------

def decision_view(d: Any, focus: int | str | None = None, facts: Any = None) -> str:
    """A whole decision with official paragraph numbers; the Summary first; ``id="p-N"`` anchors;
    the paragraph ``focus`` (a number or "summary") marked, for a link that opens it."""
    url = safe_url(d.url)
    link = (f'<a class="card-link" href="{esc(url)}" target="_blank" rel="noopener noreferrer">'
            "Read it on lgo.org.uk ↗</a>") if url else ""
    date_text = nice_date(d.decision_date) if d.decision_date else "date unknown"
    out = [
        f'<article class="decision" data-ref="{esc(d.reference)}"'
        + (f' data-focus="p-{esc(focus)}"' if focus not in (None, "") else "") + ">",
        f'<header class="decision-head"><h2>{esc(d.authority)} <span class="card-ref">{esc(d.reference)}</span></h2>',
        f'<div class="card-facts"><span class="outcome outcome-{outcome_class(d.outcome)}">{esc(d.outcome or "outcome unknown")}</span>'
        f'<span class="card-date">{esc(date_text)}</span>{link}</div>',
        f'<div class="decision-category">{esc(d.category_path)}</div></header>',
        facts_box(facts) if facts is not None else "",
        f'<section class="para para-summary{" para-focus" if str(focus) == "summary" else ""}" id="p-summary">'
        f'<div class="para-n">Summary</div><p class="para-text">{esc(d.summary)}</p></section>',
    ]
    for h, paragraphs in d.by_heading(" › "):
        out.append(f'<h3 class="decision-section">{esc(h)}</h3>')
        for p in paragraphs:
            mark = " para-focus" if str(focus) == str(p.number) else ""
            link = f"?ref={esc(d.reference.replace(' ', '-'))}&amp;para={p.number}"
            out.append(f'<section class="para{mark}" id="p-{p.number}"><a class="para-n" href="{link}" '
                       f'title="Paragraph {p.number}: a link to it">{p.number}</a>'
                       f'<p class="para-text">{esc(p.text)}</p></section>')
    if getattr(d, "signature", ""):
        out.append(f'<footer class="decision-signature">{esc(d.signature)}</footer>')
    out.append("</article>")
    return "".join(out)


def lookup_result(result: Any, texts: dict[str, str] | None = None) -> str:
    """The Citation lookup tab's answer for a ``rag.citation.CitationResult``.

    ``texts`` maps ``"<ref>#<paragraph>"`` to paragraph text, shown for citing paragraphs.
    """
    kind, message = result.kind, result.message
    if kind == "error":
        out = notice(message)
        if result.choices:
            out += ('<div class="lookup-choices"><span class="muted">Did you mean:</span> '
                    + ", ".join(f'<code>{esc(c)}</code>' for c in result.choices[:20]) + "</div>")
        return out
    if kind == "paragraph":
        return notice(message, kind="info") + card(result.hit, anchor="lookup-hit")
    if kind == "decision":
        d = result.decision or {}
        url = safe_url(d.get("url"))
        link = (f'<a class="card-link" href="{esc(url)}" target="_blank" rel="noopener noreferrer">'
                "Read it on lgo.org.uk ↗</a>") if url else ""
        rows = "".join(f'<tr><td class="num">{esc(s["paragraphs"])}</td><td>{esc(s["heading"])}</td></tr>'
                       for s in d.get("outline", ()))
        return (
            notice(message, kind="info")
            + f'<article class="card"><header class="card-head"><div class="card-title">'
            f'<div class="card-authority">{esc(d.get("authority"))}</div>'
            f'<div class="card-where"><span class="card-ref">{esc(d.get("ref"))}</span>'
            f'<span class="card-section">{esc(d.get("category"))}</span></div></div></header>'
            f'<div class="card-facts"><span class="outcome outcome-{outcome_class(d.get("outcome", ""))}">'
            f'{esc(d.get("outcome") or "outcome unknown")}</span>'
            f'<span class="card-date">{esc(nice_date(d.get("decision_date")))}</span>{link}</div>'
            + (f'<p class="card-text"><b>Summary:</b> {esc(d.get("summary"))}</p>' if d.get("summary") else "")
            + (f'<table class="outline"><thead><tr><th>Paragraphs</th><th>Section</th></tr></thead><tbody>{rows}</tbody></table>'
               if rows else "")
            + "</article>"
        )
    # provision: the citing paragraphs, decision by decision
    texts = texts or {}
    parts = [notice(message, kind="info")]
    for m in result.matches:
        paras = []
        for p in m["paragraphs"]:
            label = paragraph_label(p["paragraph"])
            how = "" if p.get("exact", True) else ' <span class="muted">(a narrower provision)</span>'
            text = texts.get(f'{m["ref"]}#{p["paragraph"]}', "")
            body = f'<p class="card-text">{esc(text)}</p>' if text else ""
            paras.append(
                f'<details class="citing" id="{esc(paragraph_anchor(p["paragraph"]))}-{esc(m["ref"]).replace(" ", "-")}">'
                f'<summary><span class="card-para">{esc(label)}</span> '
                f'<span class="muted">{esc("; ".join(p.get("statutes", ())))}</span>{how}</summary>'
                f'{body}<div class="card-citation"><span class="card-citation-label">Cite as</span> '
                f'{esc(p.get("citation", ""))}</div></details>')
        url = safe_url(m.get("url"))
        link = (f'<a class="card-link" href="{esc(url)}" target="_blank" rel="noopener noreferrer">'
                "Read the decision ↗</a>") if url else ""
        parts.append(
            f'<article class="card" data-ref="{esc(m["ref"])}"><header class="card-head"><div class="card-title">'
            f'<div class="card-authority">{esc(m.get("authority"))}</div>'
            f'<div class="card-where"><span class="card-ref">{esc(m["ref"])}</span></div></div></header>'
            f'<div class="card-facts"><span class="outcome outcome-{outcome_class(m.get("outcome", ""))}">'
            f'{esc(m.get("outcome") or "outcome unknown")}</span>'
            f'<span class="card-date">{esc(nice_date(m.get("decision_date")))}</span>{link}</div>'
            + "".join(paras) + "</article>")
    return "".join(parts)


EMPTY_DECISION = ('<div class="sources-empty">Choose a decision in the table (or type its reference and '
                  "press Open) to read it with its official paragraph numbers.</div>")


# -- the archive as a whole ------------------------------------------------------------------------

def _where(paragraph: Any) -> str:
    return "Summary" if str(paragraph) == SUMMARY else f"para {paragraph}"


def _money(amount: Any) -> str:
    return f"£{int(amount):,}" if amount is not None else ""


def remedies_list(remedies: Sequence[dict]) -> str:
    if not remedies:
        return '<span class="muted">none recorded</span>'
    items = []
    for r in remedies:
        what = esc(r["kind"]) + (f" {esc(_money(r.get('amount')))}" if r.get("amount") is not None else "")
        if r.get("for"):
            what += f" for {esc(r['for'])}"
        items.append(f'<li title="{esc(r.get("text", ""))}">{what} <span class="muted">({esc(_where(r["paragraph"]))})</span></li>')
    return '<ul class="remedies">' + "".join(items) + "</ul>"


def facts_box(facts: Any) -> str:
    """What the decision found and did, read from its text (``index.facts.Facts``), each with its paragraph."""
    f = facts.to_json()
    fault = f.get("fault") or "no finding"
    where = f" ({_where(f['fault_paragraph'])})" if f.get("fault_paragraph") else ""
    reasons = "".join(f'<li title="{esc(c["text"])}">{esc(c["reason"].replace("_", " "))} '
                      f'<span class="muted">({esc(_where(c["paragraph"]))})</span></li>' for c in f.get("closed_because", ()))
    return ('<section class="facts"><h3>Read from the decision</h3><dl>'
            f"<dt>Fault</dt><dd>{esc(fault)}{esc(where)}</dd>"
            f"<dt>Injustice</dt><dd>{esc(f.get('injustice') or 'not stated')}</dd>"
            f"<dt>Remedies</dt><dd>{remedies_list(f.get('remedies', ()))}</dd>"
            + (f'<dt>Not investigated because</dt><dd><ul class="remedies">{reasons}</ul></dd>' if reasons else "")
            + "</dl></section>")


def stats_summary(result: dict, by: str) -> str:
    p = result["payments"]
    money = (f"; {p['count']} payment{'s' if p['count'] != 1 else ''} with a sum stated: median {_money(p['median'])}, "
             f"{_money(p['min'])} to {_money(p['max'])}") if p["count"] else ""
    return (f'<div class="stats-summary"><b>{result["total"]:,}</b> decisions, <b>{result["upheld"]:,}</b> upheld'
            f"{esc(money)}. Grouped by {esc(by.replace('_', ' '))}; click a bar or a row to list its decisions.</div>")


def decision_list(decisions: dict[str, dict], refs: Sequence[str], heading: str) -> str:
    """The decisions behind a figure: each with its outcome, date, remedies and a link to it."""
    rows = []
    for ref in refs:
        d = decisions.get(ref, {})
        facts = d.get("facts") or {}
        link = f"?ref={esc(ref.replace(' ', '-'))}"
        rows.append(f'<tr><td><a href="{link}" target="_blank">{esc(ref)}</a></td><td>{esc(d.get("authority", ""))}</td>'
                    f'<td>{esc(nice_date(d.get("decision_date")))}</td>'
                    f'<td><span class="outcome outcome-{outcome_class(d.get("outcome", ""))}">{esc(d.get("outcome") or "unknown")}</span></td>'
                    f"<td>{remedies_list(facts.get('remedies', ()))}</td></tr>")
    return (f'<section class="group-decisions"><h3>{esc(heading)}</h3><table class="plain"><thead><tr><th>Reference</th>'
            "<th>Authority</th><th>Decided</th><th>Outcome</th><th>Remedies</th></tr></thead><tbody>"
            + "".join(rows) + "</tbody></table></section>")


def similar_view(result: dict) -> str:
    split = ", ".join(f"{esc(k)}: {v}" for k, v in result["outcomes"].items())
    p = result["payments"]
    money = (f"; payments: {p['count']}, median {_money(p['median'])} ({_money(p['min'])} to {_money(p['max'])})"
             if p["count"] else "")
    cards = []
    for i, d in enumerate(result["decisions"], 1):
        link = f"?ref={esc(d['ref'].replace(' ', '-'))}&amp;para={esc(d['paragraph'])}"
        cards.append(f'<article class="card" data-ref="{esc(d["ref"])}"><header class="card-head"><span class="card-n">{i}</span>'
                     f'<div class="card-title"><div class="card-authority">{esc(d["authority"])}</div>'
                     f'<div class="card-where"><span class="card-ref">{esc(d["ref"])}</span>'
                     f'<span class="card-para">{esc(_where(d["paragraph"]))}</span></div></div></header>'
                     f'<div class="card-facts"><span class="outcome outcome-{outcome_class(d["outcome"])}">{esc(d["outcome"] or "outcome unknown")}</span>'
                     f'<span class="card-date">{esc(nice_date(d["decision_date"]))}</span>'
                     f'<a class="card-open" href="{link}" target="_blank">Open in the decision</a></div>'
                     f'<div class="card-remedies">Remedies: {remedies_list(d["remedies"])}</div>'
                     f'<p class="card-text">{esc(d["text"])}</p></article>')
    return (f'<div class="stats-summary">{len(result["decisions"])} similar decisions ({split}){esc(money)}. '
            "The paragraph shown is the one that matched.</div>" + "".join(cards))


def compare_table(rows: Sequence[dict]) -> str:
    fields = [("Authority", lambda r: esc(r["authority"])), ("Decided", lambda r: esc(nice_date(r["decision_date"]))),
              ("Category", lambda r: esc(r["category"])),
              ("Outcome", lambda r: f'<span class="outcome outcome-{outcome_class(r["outcome"])}">{esc(r["outcome"] or "unknown")}</span>'),
              ("Fault", lambda r: esc(r["fault"] or "no finding")), ("Remedies", lambda r: remedies_list(r["remedies"])),
              ("Not investigated because", lambda r: esc(", ".join(c["reason"].replace("_", " ") for c in r["closed_because"]) or "-")),
              ("Summary", lambda r: esc(r["summary"]))]
    head = "".join(f'<th><a href="?ref={esc(r["ref"].replace(" ", "-"))}" target="_blank">{esc(r["ref"])}</a></th>' for r in rows)
    body = "".join(f"<tr><th>{name}</th>" + "".join(f"<td>{show(r)}</td>" for r in rows) + "</tr>" for name, show in fields)
    return f'<table class="plain compare"><thead><tr><th></th>{head}</tr></thead><tbody>{body}</tbody></table>'
