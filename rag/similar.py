"""Cases like mine: the decisions most like a complaint described in everyday words (or like an
indexed decision), each with its outcome, remedies and the paragraph that matched, and how
outcomes and payments split among them; and decisions side by side."""

from __future__ import annotations

from dataclasses import dataclass

from index.passage import SUMMARY
from rag.retriever import Filters, Retriever
from rag.stats import stats

SEARCHED = 60  # passages searched to find the decisions (several per decision)


@dataclass
class Similar:
    decisions: list[dict]
    outcomes: dict[str, int]
    payments: dict

    def to_json(self) -> dict:
        return {"decisions": self.decisions, "outcomes": self.outcomes, "payments": self.payments}


def similar(retriever: Retriever, text: str, k: int = 5, filters: Filters | None = None,
            exclude: str = "") -> Similar:
    """The ``k`` decisions whose paragraphs best match ``text`` (a decision counts once, by its best
    paragraph), best first."""
    hits = retriever.search(text, k=SEARCHED, filters=filters, per_decision=0)
    cat = retriever.catalogue
    seen: dict[str, object] = {}
    for h in hits:
        if h.ref != exclude and h.ref not in seen and not h.boilerplate:
            seen[h.ref] = h
        if len(seen) >= k:
            break
    decisions = []
    for ref, h in seen.items():
        d = cat.decisions.get(ref, {})
        facts = d.get("facts") or {}
        decisions.append({
            "ref": ref, "authority": d.get("authority", ""), "outcome": d.get("outcome", ""),
            "decision_date": d.get("decision_date", ""), "url": d.get("url", ""), "category": d.get("category", ""),
            "fault": facts.get("fault"), "remedies": facts.get("remedies", []),
            "closed_because": facts.get("closed_because", []),
            "paragraph": h.paragraph, "text": h.text, "score": round(h.score, 4),
        })
    counted = stats(cat.decisions, "outcome", set(seen))
    outcomes = {g["key"]: g["count"] for g in counted["groups"]}
    return Similar(decisions, outcomes, counted["payments"])


def description_of(retriever: Retriever, reference: str) -> str:
    """What a decision is about, to find others like it: its Summary and its complaint."""
    ref_slug = reference.replace(" ", "-")
    cat = retriever.catalogue
    pids = [f"{ref_slug}#{SUMMARY}"] + [p for p in cat.by_ref.get(reference, ())
                                        if cat.passages[p].section.lower().startswith("the complaint")][:2]
    got = retriever.passages([p for p in pids if p in cat.passages])
    return " ".join(got[p].text for p in pids if p in got)[:1500]


COMPARED = ("authority", "decision_date", "category", "outcome", "fault", "remedies", "closed_because", "summary")


def compare(archive, references: list[str]) -> list[dict]:
    """Two to five decisions side by side: a row per decision with the fields of ``COMPARED``."""
    from index.decision import normalise_reference
    from index.facts import facts_of

    if not 2 <= len(references) <= 5:
        raise ValueError(f"compare takes two to five references, got {len(references)}")
    rows = []
    for r in references:
        d = archive.decision(normalise_reference(r))
        f = facts_of(d)
        rows.append({
            "ref": d.reference, "authority": d.authority,
            "decision_date": d.decision_date.isoformat() if d.decision_date else "", "category": d.category_path,
            "outcome": d.outcome, "fault": f.fault, "remedies": [r.to_json() for r in f.remedies],
            "closed_because": [c.to_json() for c in f.closed_because], "summary": d.summary, "url": d.url,
        })
    return rows


def remedies_text(remedies: list[dict]) -> str:
    """``apology; payment £300 for distress; service``."""
    parts = []
    for r in remedies:
        amount = f" £{r['amount']:,}" if r.get("amount") is not None else ""
        parts.append(f"{r['kind']}{amount}" + (f" for {r['for']}" if r.get("for") else ""))
    return "; ".join(parts) or "none recorded"
