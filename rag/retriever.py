"""Hybrid retrieval: dense (Chroma) and BM25 candidates fused, steered by what the question says,
with boilerplate kept out and no single decision crowding out the rest.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from dataclasses import dataclass, field
from datetime import date

import numpy as np

from index.embedder import Embedder
from index import catalogue as catalogue_files
from index.lexical import LexicalIndex
from index.passage import SUMMARY
from index.store import Store, StoredPassage, passage_of_window
from index.statute import provision_matches
from rag.query import AuthorityNames, Query, outcome_named, understand

log = logging.getLogger(__name__)

MODES = ("hybrid", "dense", "bm25")

# Fusion and steering weights, tuned on eval/questions.jsonl (see README "Retrieval").
RRF_K = 60
DENSE_WEIGHT = 1.0
LEXICAL_WEIGHT = 1.0
CANDIDATES = 100  # per retriever, before fusion
# Where a decision states its outcome and reasons ("why" questions), and where it weighs them.
OUTCOME_SECTIONS = {"summary", "final decision", "decision", "conclusions", "conclusion"}
REASON_SECTIONS = {"my assessment", "assessment", "analysis", "what i found", "agreed action"}
# Measured on the eval set: boosting the reasons as much as the outcome does best overall (many
# questions asking "why" want a reason given in the assessment); the answerer, not the ranking,
# leads a "why" answer with the Summary or Final decision.
WHY_BOOST = 1.5
REASON_BOOST = 1.5
OUTCOME_BOOST = 1.3
ALIAS_BOOST = 1.2
PER_DECISION = 3  # at most this many passages of one decision before others get a place
# A search restricted to at most this many passages scores them all exactly from the catalogue's
# vector copy; larger restrictions over-fetch from Chroma and filter.
EXACT_DENSE_LIMIT = 50_000


@dataclass(frozen=True)
class Filters:
    """Restrictions a user sets explicitly (the question's own cues are softer, see ``Query``)."""

    authority: str = ""  # substring, case-insensitive
    category: str = ""  # substring of the category path
    outcome: str = ""  # exact outcome, case-insensitive
    since: date | None = None
    until: date | None = None
    ref: str = ""

    @property
    def empty(self) -> bool:
        return self == Filters()


@dataclass
class Hit:
    """A retrieved passage with what a citation shows, and why it ranked where it did."""

    id: str
    ref: str
    paragraph: int | str
    section: str
    subsection: str
    authority: str
    category: str
    outcome: str
    decision_date: str
    url: str
    text: str
    score: float
    dense: float = 0.0  # cosine similarity of the best window, 0 when not a dense candidate
    lexical: float = 0.0  # BM25 score, 0 when not a lexical candidate
    statutes: tuple[str, ...] = ()
    boilerplate: bool = False

    @property
    def label(self) -> str:
        return "Summary" if self.paragraph == SUMMARY else f"para {self.paragraph}"

    def to_json(self) -> dict:
        return {
            "id": self.id, "ref": self.ref, "paragraph": self.paragraph, "section": self.section,
            "subsection": self.subsection, "authority": self.authority, "category": self.category,
            "outcome": self.outcome, "decision_date": self.decision_date, "url": self.url, "text": self.text,
            "score": round(self.score, 4), "dense": round(self.dense, 4), "lexical": round(self.lexical, 4),
            "statutes": list(self.statutes), "boilerplate": self.boilerplate,
        }


@dataclass
class _Catalogue:
    """In-memory view of what is indexed (built by ingest beside the lexical index)."""

    fingerprint: str
    lexical: LexicalIndex
    passages: dict[str, tuple]  # id -> (ref, paragraph, section, subsection, boilerplate_key, tokens, statutes)
    boilerplate: dict[str, int]
    decisions: dict[str, dict]
    by_ref: dict[str, list[str]] = field(default_factory=dict)
    authorities: AuthorityNames = field(default_factory=AuthorityNames)
    vectors: np.ndarray | None = None  # one row per embedding window, memory-mapped
    rows: dict[str, list[int]] = field(default_factory=dict)  # passage id -> its rows in ``vectors``
    by_authority: dict[str, list[str]] = field(default_factory=dict)  # authority -> its decisions

    @classmethod
    def load(cls, store: Store) -> "_Catalogue":
        folder = store.lexical_dir
        fingerprint = catalogue_files.fingerprint(store)
        lexical, saved = LexicalIndex.load(folder)
        if lexical is None or saved != fingerprint:
            log.info("the lexical index at %s is missing or stale; rebuilding it", folder)
            catalogue_files.refresh(store, force=True)
            lexical, saved = LexicalIndex.load(folder)
        body = json.loads((folder / "catalogue.json").read_text())
        passages = {row[0]: tuple(row[1:]) for row in body["passages"]}
        by_ref: dict[str, list[str]] = {}
        for pid, row in passages.items():
            by_ref.setdefault(row[0], []).append(pid)
        decisions = body["decisions"]
        authorities = AuthorityNames.of(sorted({d["authority"] for d in decisions.values()}))
        assert lexical is not None
        vectors, rows = None, {}
        try:
            vectors = np.load(folder / "vectors.npy", mmap_mode="r")
            for i, rid in enumerate(json.loads((folder / "vector_ids.json").read_text())):
                rows.setdefault(passage_of_window(rid), []).append(i)
        except (OSError, ValueError):
            log.warning("no vector copy in %s: restricted searches will query Chroma with a filter", folder)
        by_authority: dict[str, list[str]] = {}
        for ref, d in decisions.items():
            by_authority.setdefault(d["authority"], []).append(ref)
        return cls(saved, lexical, passages, body["boilerplate"], decisions, by_ref, authorities, vectors, rows,
                   by_authority)


class Retriever:
    """Finds the passages relevant to a question. Thread-safe for concurrent searches."""

    def __init__(self, store: Store, embedder: Embedder) -> None:
        self.store = store
        self.embedder = embedder
        self._catalogue: _Catalogue | None = None
        self._lock = threading.Lock()

    @property
    def catalogue(self) -> _Catalogue:
        with self._lock:
            if self._catalogue is None:
                self._catalogue = _Catalogue.load(self.store)
            return self._catalogue

    def understand(self, question: str) -> Query:
        return understand(question, self.catalogue.authorities)

    # -- filtering ------------------------------------------------------------------------------

    def _allowed_refs(self, query: Query, filters: Filters) -> set[str] | None:
        """Decisions a search may return, or None for all of them."""
        cat = self.catalogue
        refs: set[str] | None = None

        def narrow(keep: set[str]) -> None:
            nonlocal refs
            refs = keep if refs is None else refs & keep

        if filters.ref:
            from index.decision import normalise_reference

            narrow({normalise_reference(filters.ref)})
        if query.references:
            narrow(set(query.references))
        if filters.authority:
            # Whole words: "Leicester" is not Leicestershire County Council (a different council).
            a = re.compile(rf"(?<!\w){re.escape(filters.authority.strip())}(?!\w)", re.I)
            narrow({r for r, d in cat.decisions.items() if a.search(d["authority"])})
        elif query.authorities:
            narrow({r for a in query.authorities for r in cat.by_authority.get(a, ())})
        if filters.category:
            c = filters.category.lower()
            narrow({r for r, d in cat.decisions.items() if c in d["category"].lower()})
        if filters.outcome:
            o = (outcome_named(filters.outcome) or filters.outcome).lower()
            narrow({r for r, d in cat.decisions.items() if d["outcome"].lower() == o})
        if filters.since or filters.until:
            lo = (filters.since or date.min).isoformat()
            hi = (filters.until or date.max).isoformat()
            narrow({r for r, d in cat.decisions.items() if d["decision_date"] and lo <= d["decision_date"] <= hi})
        return refs

    # -- search ---------------------------------------------------------------------------------

    def search(
        self,
        question: str,
        k: int = 10,
        filters: Filters | None = None,
        mode: str = "hybrid",
        per_decision: int = PER_DECISION,
        query: Query | None = None,
    ) -> list[Hit]:
        """The best ``k`` passages for ``question``.

        ``mode`` is ``hybrid`` (default), ``dense`` or ``bm25``; ``per_decision`` caps passages of
        one decision until other decisions have had their place (0: no cap).
        """
        if mode not in MODES:
            raise ValueError(f"unknown retrieval mode {mode!r}; choose one of {', '.join(MODES)}")
        filters = filters or Filters()
        query = query or self.understand(question)
        cat = self.catalogue
        if not cat.passages:
            return []
        refs = self._allowed_refs(query, filters)
        allowed = None if refs is None else {pid for r in refs for pid in cat.by_ref.get(r, ())}
        if allowed is not None and not allowed:
            return []
        asked = None  # the paragraph named with its reference ("24 016 809 para 15")
        if query.references and query.paragraph is not None:
            asked = f"{query.references[0].replace(' ', '-')}#{query.paragraph}"
            asked = asked if asked in cat.passages else None
        if asked:
            allowed = {asked} | (allowed or set())
        if query.reference_only:
            return self._hits(self._in_order(allowed or set(), k), {}, {})

        n = max(CANDIDATES, k * 5)
        dense: dict[str, float] = {}
        lexical: dict[str, float] = {}
        if mode in ("hybrid", "dense"):
            vector = self.embedder.embed_query(query.content)
            if allowed is not None and cat.vectors is not None and len(allowed) <= EXACT_DENSE_LIMIT:
                dense = self._exact_dense(vector, allowed, n)
            else:
                over = 3 if allowed is not None else 1  # filtering after the search
                for pid, sim in self.store.query(vector, n * over):
                    if pid in cat.passages and (allowed is None or pid in allowed):
                        dense[pid] = sim
                    if len(dense) >= n:
                        break
        if mode in ("hybrid", "bm25"):
            lexical = dict(cat.lexical.search(query.lexical_content, n, allowed))

        fused = self._fuse(dense, lexical, mode)
        scored = {pid: s * self._steer(cat, pid, query) for pid, s in fused.items()}
        if asked:
            scored[asked] = max(scored.values(), default=1.0) * 2 + 1e-6
        # Ties (common with rank fusion) go to the passage with more of the question's exact words.
        ranked = sorted(scored.items(), key=lambda kv: (-kv[1], -lexical.get(kv[0], 0.0)))
        chosen = self._select(ranked, query, k, per_decision)
        return self._hits(chosen, dense, lexical)

    def _in_order(self, allowed: set[str], k: int) -> list[tuple[str, float]]:
        """A decision asked for by reference alone: its Summary, then its paragraphs in order."""
        cat = self.catalogue
        def position(pid: str) -> tuple[str, int]:
            ref, paragraph = cat.passages[pid][0], cat.passages[pid][1]
            return ref, 0 if paragraph == SUMMARY else int(paragraph)
        ordered = sorted(allowed, key=position)[:k]
        return [(pid, 1.0 - i / (len(ordered) + 1)) for i, pid in enumerate(ordered)]

    def _exact_dense(self, vector: np.ndarray, allowed: set[str], n: int) -> dict[str, float]:
        """Cosine similarity of every allowed passage (its best window), computed exactly."""
        cat = self.catalogue
        pids = [pid for pid in allowed if pid in cat.rows]
        if not pids:
            return {}
        counts = [len(cat.rows[pid]) for pid in pids]
        rows = [r for pid in pids for r in cat.rows[pid]]
        sims = np.asarray(cat.vectors[rows], dtype=np.float32) @ np.asarray(vector, dtype=np.float32)
        starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
        best = np.maximum.reduceat(sims, starts)  # each passage's best window, in one call
        top = np.argsort(-best, kind="stable")[:n]
        return {pids[i]: float(best[i]) for i in top}

    @staticmethod
    def _fuse(dense: dict[str, float], lexical: dict[str, float], mode: str) -> dict[str, float]:
        """Reciprocal rank fusion: rank positions, not raw scores, so the two scales need no calibration."""
        if mode == "dense":
            return dict(dense)
        if mode == "bm25":
            top = max(lexical.values(), default=1.0) or 1.0
            return {pid: s / top for pid, s in lexical.items()}
        fused: dict[str, float] = {}
        # Scaled so that first place in both rankings scores 1.0.
        best = (DENSE_WEIGHT + LEXICAL_WEIGHT) / (RRF_K + 1)
        for weight, ranking in ((DENSE_WEIGHT, dense), (LEXICAL_WEIGHT, lexical)):
            for rank, pid in enumerate(sorted(ranking, key=lambda p: -ranking[p])):
                fused[pid] = fused.get(pid, 0.0) + weight / (RRF_K + rank + 1) / best
        return fused

    @staticmethod
    def _steer(cat: _Catalogue, pid: str, query: Query) -> float:
        """Boosts from the question's cues: outcome words, aliases, and "why" favouring reasons."""
        ref, paragraph, section, subsection, key, _, statutes = cat.passages[pid]
        decision = cat.decisions.get(ref, {})
        factor = 1.0
        if query.outcomes and decision.get("outcome") in query.outcomes:
            factor *= OUTCOME_BOOST
        if query.aliases and set(query.aliases) & set(decision.get("aliases", ())):
            factor *= ALIAS_BOOST
        if query.why:
            heading = section.lower()
            if heading in OUTCOME_SECTIONS or paragraph == SUMMARY:
                factor *= WHY_BOOST
            elif heading in REASON_SECTIONS:
                factor *= REASON_BOOST
        if query.provision is not None and any(provision_matches(query.provision, s) for s in statutes):
            factor *= 2.0
        return factor

    def is_boilerplate(self, pid: str) -> bool:
        cat = self.catalogue
        return cat.passages[pid][4] in cat.boilerplate

    def _select(self, ranked: list[tuple[str, float]], query: Query, k: int, per_decision: int) -> list[tuple[str, float]]:
        """Top ``k`` with boilerplate handled and no decision taking more than its share at first."""
        cat = self.catalogue
        out: list[tuple[str, float]] = []
        overflow: list[tuple[str, float]] = []
        per: dict[str, int] = {}
        seen_keys: set[str] = set()
        for pid, score in ranked:
            ref, key = cat.passages[pid][0], cat.passages[pid][4]
            if key in cat.boilerplate:
                if not query.law or key in seen_keys:
                    continue
                seen_keys.add(key)
            if per_decision and per.get(ref, 0) >= per_decision and not query.references:
                overflow.append((pid, score))
                continue
            per[ref] = per.get(ref, 0) + 1
            out.append((pid, score))
            if len(out) >= k:
                return out
        return (out + overflow)[:k]

    def _hits(self, chosen: list[tuple[str, float]], dense: dict[str, float], lexical: dict[str, float]) -> list[Hit]:
        if not chosen:
            return []
        stored = self.store.passages([pid for pid, _ in chosen])
        hits = []
        for pid, score in chosen:
            p = stored.get(pid)
            if p is None:
                continue
            hits.append(hit_of(p, score, dense.get(pid, 0.0), lexical.get(pid, 0.0), self.is_boilerplate(pid)))
        return hits

    def passage(self, pid: str) -> Hit | None:
        """One passage by id (``24-016-809#15``), as a hit with score 1."""
        got = self.store.passages([pid]).get(pid)
        return hit_of(got, 1.0) if got else None


def hit_of(p: StoredPassage, score: float, dense: float = 0.0, lexical: float = 0.0, boilerplate: bool = False) -> Hit:
    md = p.metadata
    return Hit(
        id=p.id, ref=md["ref"], paragraph=p.paragraph, section=md.get("section", ""),
        subsection=md.get("subsection", ""), authority=md.get("authority", ""), category=md.get("category", ""),
        outcome=md.get("outcome", ""), decision_date=md.get("decision_date", ""), url=md.get("url", ""),
        text=p.text, score=score, dense=dense, lexical=lexical, statutes=tuple(md.get("statutes") or ()),
        boilerplate=boilerplate,
    )
