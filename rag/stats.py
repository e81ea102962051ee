"""Statistics over the archive, exact and traceable: how many decisions, how many upheld, what was
paid, grouped by authority, category, outcome, year, remedy, reason not investigated or finding on
fault, every figure with the references it counts.

Counted from the catalogue (each decision's metadata and the facts read from its text at ingest),
never from a search: a figure is the same however the question is worded.
"""

from __future__ import annotations

import csv
import io
import statistics
from dataclasses import dataclass, field

UPHELD = "Upheld"
GROUPINGS = ("authority", "category", "outcome", "year", "remedy", "closed_because", "fault")
NONE = "none"


@dataclass
class Payments:
    """The payments decisions record (one per sum; payments with no sum stated are counted apart)."""

    amounts: list[tuple[str, int]] = field(default_factory=list)  # (reference, pounds)
    unstated: list[str] = field(default_factory=list)  # references of payments with no sum given

    def to_json(self) -> dict:
        values = [a for _, a in self.amounts]
        return {
            "count": len(values),
            "median": statistics.median(values) if values else None,
            "min": min(values, default=None),
            "max": max(values, default=None),
            "total": sum(values),
            "refs": sorted({r for r, _ in self.amounts}),
            "without_amount": len(self.unstated),
        }


@dataclass
class Group:
    key: str
    refs: list[str] = field(default_factory=list)
    upheld: list[str] = field(default_factory=list)
    payments: Payments = field(default_factory=Payments)

    def to_json(self) -> dict:
        n = len(self.refs)
        return {"key": self.key, "count": n, "upheld": len(self.upheld),
                "upheld_share": round(len(self.upheld) / n, 3) if n else 0.0,
                "refs": self.refs, "payments": self.payments.to_json()}


def keys_of(decision: dict, by: str) -> list[str]:
    """The group(s) a decision falls in; a decision with two kinds of remedy is in both."""
    facts = decision.get("facts") or {}
    if by == "authority":
        return [decision.get("authority") or "unknown"]
    if by == "category":
        return [decision.get("category") or "unknown"]
    if by == "outcome":
        return [decision.get("outcome") or "unknown"]
    if by == "year":
        return [(decision.get("decision_date") or "")[:4] or "unknown"]
    if by == "remedy":
        return sorted({r["kind"] for r in facts.get("remedies", ())}) or [NONE]
    if by == "closed_because":
        return sorted({r["reason"] for r in facts.get("closed_because", ())})  # only decisions not investigated
    if by == "fault":
        return [facts.get("fault") or NONE]
    raise ValueError(f"cannot group by {by!r}; choose one of {', '.join(GROUPINGS)}")


def _payments(decision: dict, ref: str, into: Payments) -> None:
    for r in (decision.get("facts") or {}).get("remedies", ()):
        if r["kind"] == "payment":
            if r.get("amount") is None:
                into.unstated.append(ref)
            else:
                into.amounts.append((ref, int(r["amount"])))


def stats(decisions: dict[str, dict], by: str = "outcome", refs: set[str] | None = None) -> dict:
    """``{"total", "upheld", "by", "groups": [...], "payments"}`` over ``decisions`` (the catalogue's,
    by reference), only those in ``refs`` if given; groups largest first."""
    if by not in GROUPINGS:
        raise ValueError(f"cannot group by {by!r}; choose one of {', '.join(GROUPINGS)}")
    chosen = sorted(r for r in decisions if refs is None or r in refs)
    groups: dict[str, Group] = {}
    everything = Payments()
    upheld = []
    for ref in chosen:
        d = decisions[ref]
        _payments(d, ref, everything)
        if d.get("outcome") == UPHELD:
            upheld.append(ref)
        for key in keys_of(d, by):
            g = groups.setdefault(key, Group(key))
            g.refs.append(ref)
            if d.get("outcome") == UPHELD:
                g.upheld.append(ref)
            _payments(d, ref, g.payments)
    ordered = sorted(groups.values(), key=lambda g: (-len(g.refs), g.key))
    return {"total": len(chosen), "upheld": len(upheld), "by": by, "groups": [g.to_json() for g in ordered],
            "payments": everything.to_json(), "refs": chosen}


def to_csv(result: dict) -> str:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow([result["by"], "count", "upheld", "upheld_share", "payments", "median_payment", "min_payment",
                "max_payment", "refs"])
    for g in result["groups"]:
        p = g["payments"]
        w.writerow([g["key"], g["count"], g["upheld"], g["upheld_share"], p["count"], p["median"] or "",
                    p["min"] or "", p["max"] or "", "; ".join(g["refs"])])
    return out.getvalue()


def pounds(value) -> str:
    if value is None:
        return "-"
    return f"£{value:,.0f}" if float(value).is_integer() else f"£{value:,.2f}"
