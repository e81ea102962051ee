"""Questions about the archive as a whole, answered exactly from the catalogue: "how many upheld
complaints against Cornwall Council are there?", "which councils had the most upheld complaints
about school transport since 2020?", "what does the Ombudsman usually award for delays in EHC
plans?". The number comes first, then the decisions it counts, each cited by its Summary.

A question that only looks like one ("how did the council handle Mr X's complaint?", "how many
days late was the reply?") names a complainant or a decision, or counts something other than
decisions, and goes to the ordinary answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from index.lexical import tokenize
from index.passage import SUMMARY
from rag.citation import Citation
from rag.parameters import ANSWERABLE_FROM
from rag.query import Query
from rag.retriever import Filters, Retriever
from rag.stats import pounds, stats

_COUNT = re.compile(r"\bhow\s+many\s+(?:\w+\s+){0,3}?(?:complaints?|decisions?|cases?)\b|\bnumber\s+of\s+(?:\w+\s+){0,2}?"
                    r"(?:complaints?|decisions?|cases?)\b|\bhow\s+often\s+(?:has|have|is|are|was|were|do|does)\b", re.I)
_MOST = re.compile(r"\bwhich\s+(?:councils?|authorities)\b.*\b(?:most|fewest|least)\b|\b(?:most|fewest)\s+(?:\w+\s+)?complaints\b"
                   r"|\btop\s+(?:\d+\s+)?(?:councils|authorities)\b", re.I)
_AWARD = re.compile(r"\b(?:usually|typically|normally|generally|on\s+average|average|typical|median|usual)\b.{0,60}?"
                    r"\b(?:award\w*|pay\w*|compensation|recommend\w*|get|give|remed\w*)\b"
                    r"|\bhow\s+much\s+(?:\w+\s+){0,3}?(?:usually|typically|normally|generally)\b", re.I)
_SINCE = re.compile(r"\b(?:since|from|after)\s+((?:19|20)\d\d)\b", re.I)
_UNTIL = re.compile(r"\b(?:until|before|up\s+to)\s+((?:19|20)\d\d)\b", re.I)
_IN_YEAR = re.compile(r"\bin\s+((?:19|20)\d\d)\b", re.I)
_BETWEEN = re.compile(r"\bbetween\s+((?:19|20)\d\d)\s+and\s+((?:19|20)\d\d)\b", re.I)
_TOPIC = re.compile(r"\b(?:about|over|for|concerning|regarding|on|in)\s+(?!(?:19|20)\d\d\b)(.+?)(?:\s+(?:since|from|after|before|until|"
                    r"between|in\s+(?:19|20)\d\d|against|by|are|is|were|was|have|has|there)\b|[?.!]|$)", re.I)
# Words of an aggregate question that say what to count, not what about.
_FRAME = ("how many much often number complaints complaint decisions decision cases case which councils council "
          "authorities authority most fewest least top there are is were was have has had got upheld uphold not closed "
          "ombudsman usually typically normally generally average typical median award awarded awards pay paid payment "
          "payments compensation recommend recommended get give given remedy remedies does do did what the a an of for "
          "about against in since from after before until between and or on over by with been found fault")
_FRAME_TOKENS = frozenset(tokenize(_FRAME)) | frozenset(_FRAME.split())


def is_aggregate(question: str, query: Query) -> str:
    """``count``, ``most``, ``award`` or "" (an ordinary question)."""
    if query.references or query.aliases:
        return ""
    if _AWARD.search(question):
        return "award"
    if _MOST.search(question):
        return "most"
    if _COUNT.search(question):
        return "count"
    return ""


@dataclass
class Aggregate:
    """What an aggregate answer says: its text with ``[n]`` markers, the decisions cited (their
    Summaries), and the figures behind it (the ``rag.stats`` result, for a chart)."""

    text: str
    citations: list[Citation]
    figures: dict
    note: str = ""
    counted: list[str] = field(default_factory=list)


class Aggregator:
    def __init__(self, retriever: Retriever) -> None:
        self.retriever = retriever

    def _years(self, question: str, filters: Filters) -> Filters:
        from datetime import date

        m = _BETWEEN.search(question)
        if m:
            return replace(filters, since=date(int(m.group(1)), 1, 1), until=date(int(m.group(2)), 12, 31))
        since, until, year = _SINCE.search(question), _UNTIL.search(question), _IN_YEAR.search(question)
        if since:
            filters = replace(filters, since=date(int(since.group(1)), 1, 1))
        if until:
            filters = replace(filters, until=date(int(until.group(1)) - 1, 12, 31))
        if year and not since and not until:
            filters = replace(filters, since=date(int(year.group(1)), 1, 1), until=date(int(year.group(1)), 12, 31))
        return filters

    def _topic(self, question: str, query: Query) -> str:
        """The words saying what the decisions are about ("school transport", "delays in EHC plans")."""
        text = question
        for name, authority in self.retriever.authorities.names:
            if authority in query.authorities:
                text = re.sub(rf"\b{re.escape(name)}\b(?:\s+(?:county|city|borough|district)?\s*council)?", " ", text, flags=re.I)
        m = _TOPIC.search(text)
        candidate = m.group(1) if m else text
        words = re.findall(r"[A-Za-z0-9][A-Za-z0-9'’-]*", candidate)

        def frame(w: str) -> bool:
            t = tokenize(w)
            return w.lower() in _FRAME_TOKENS or not t or t[0] in _FRAME_TOKENS

        names = {d.get("category", "").split(">")[-1].strip().lower() for d in self.retriever.catalogue.decisions.values()}
        while words and frame(words[0]) and not any(n.startswith(" ".join(words[:2]).lower()) for n in names if n):
            words.pop(0)  # the topic as typed, without the counting words around it (but "council tax")
        while words and frame(words[-1]):
            words.pop()
        return " ".join(words)

    def _about(self, topic: str, refs: set[str] | None) -> tuple[set[str] | None, str]:
        """Decisions about ``topic``: those of a category its words name, else those a search for it
        finds relevant (each listed, so the count can be checked)."""
        if not topic:
            return refs, ""
        cat = self.retriever.catalogue
        categories = {d.get("category", "") for d in cat.decisions.values() if d.get("category")}
        # A category the topic names: its own name in the topic ("council tax"), else all its words.
        named = [c for c in categories if re.search(rf"\b{re.escape(c.split('>')[-1].strip())}\b", topic, re.I)]
        # The most specific names only: "school transport" is not also "transport".
        named = [c for c in named if not any(c != o and c.split(">")[-1].strip().lower() in o.split(">")[-1].lower()
                                             for o in named)]
        if not named:
            words = set(tokenize(topic))
            matches = [(len(set(tokenize(c.split(">")[-1]))), c) for c in categories
                       if set(tokenize(c.split(">")[-1])) and set(tokenize(c.split(">")[-1])) <= words]
            best = max((n for n, _ in matches), default=0)
            named = [c for n, c in matches if n == best]
        if named:
            keep = {r for r, d in cat.decisions.items() if d.get("category") in named}
            return (keep if refs is None else keep & refs), f"in the categor{'ies' if len(named) > 1 else 'y'} " + \
                ", ".join(sorted(named))
        hits = self.retriever.search(topic, k=80, per_decision=0, within=refs)
        keep = {h.ref for h in hits if h.score >= ANSWERABLE_FROM and not h.boilerplate}
        return keep, f"found by a search for “{topic}” (decisions whose best paragraph answers it with probability " \
                     f"{ANSWERABLE_FROM} or more)"

    def answer(self, question: str, query: Query, filters: Filters) -> Aggregate | None:
        kind = is_aggregate(question, query)
        if not kind:
            return None
        filters = self._years(question, filters)
        if query.outcomes and not filters.outcome:
            filters = replace(filters, outcome=query.outcomes[0])
        if kind == "award":
            filters = replace(filters, remedy="payment", outcome="")
        refs = self.retriever.allowed_refs(Query(text="", authorities=query.authorities), filters)
        topic = self._topic(question, query)
        refs, how = self._about(topic, refs)
        decisions = self.retriever.catalogue.decisions
        by = "authority" if kind == "most" else "outcome"
        figures = stats(decisions, by, refs if refs is not None else set(decisions))
        counted = figures["refs"]
        numbers: dict[str, int] = {}
        citations: list[Citation] = []

        def cite(ref: str) -> str:
            if ref not in numbers:
                hit = self.retriever.passage(f"{ref.replace(' ', '-')}#{SUMMARY}")
                if hit is None:
                    return ""
                numbers[ref] = len(numbers) + 1
                citations.append(Citation(numbers[ref], hit, []))
            return f"[{numbers[ref]}]"

        what = self._what(query, filters, topic)
        if kind == "count":
            listed = "; ".join(f"{r} {cite(r)}" for r in counted[:30])
            more = f"; and {len(counted) - 30} more" if len(counted) > 30 else ""
            text = (f"{len(counted)} of the {len(decisions)} indexed decisions {'is' if len(counted) == 1 else 'are'} {what}" +
                    (f": {listed}{more}." if counted else "."))
        elif kind == "most":
            top = figures["groups"][:5]
            parts = [f"{g['key']}, {g['count']} (" + " ".join(cite(r) for r in g["refs"][:6]) + ")" for g in top]
            n = len(counted)
            text = (f"Among the {n} indexed decision{'s' if n != 1 else ''} that are {what}, the councils with the "
                    "most are: " + "; ".join(parts) + "." if top else f"No indexed decision is one of the {what}.")
        else:
            p = figures["payments"]
            paid = [(r["amount"], ref, r.get("for", "")) for ref in counted
                    for r in (decisions[ref].get("facts") or {}).get("remedies", ())
                    if r["kind"] == "payment" and r.get("amount") is not None]
            if paid:
                shown = "; ".join(f"{pounds(a)}" + (f" for {f}" if f else "") + f" {cite(ref)}"
                                  for a, ref, f in sorted(paid, key=lambda x: -x[0])[:12])
                n = len({ref for _, ref, _ in paid})
                text = (f"{p['count']} payment{'s' if p['count'] != 1 else ''} with a sum stated, in {n} indexed "
                        f"decision{'s' if n != 1 else ''} {what}: median {pounds(p['median'])}, from "
                        f"{pounds(p['min'])} to {pounds(p['max'])}"
                        + (f" ({p['without_amount']} more payments without a sum)" if p["without_amount"] else "")
                        + f". {shown}.")
            else:
                text = (f"No indexed decision {what} records a payment with its sum"
                        + (f" ({len(counted)} record a payment without one: " + ", ".join(f"{r} {cite(r)}" for r in counted[:10]) + ")"
                           if counted else "") + ".")
        note = ("counted from the indexed decisions' metadata and the facts read from their text"
                + (f"; the topic's decisions were {how}" if how else ""))
        return Aggregate(text, citations, figures, note, counted)

    @staticmethod
    def _what(query: Query, filters: Filters, topic: str) -> str:
        closed = filters.outcome == "Closed after initial enquiries"
        prefix = {"Upheld": "upheld ", "Not upheld": "not upheld "}.get(filters.outcome, "")
        phrase = f"{prefix}complaints"
        if query.authorities:
            phrase += " against " + " or ".join(query.authorities)
        if topic:
            phrase += f" about {topic}"
        if closed:
            phrase += " closed after initial enquiries"
        if filters.since and filters.until:
            phrase += f" decided from {filters.since.isoformat()} to {filters.until.isoformat()}"
        elif filters.since:
            phrase += f" decided since {filters.since.isoformat()}"
        elif filters.until:
            phrase += f" decided until {filters.until.isoformat()}"
        return phrase
