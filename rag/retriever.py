"""Hybrid retrieval: candidates from dense (Chroma) and BM25 search, ordered by one ranking function
over their evidence (``rag.evidence``, weights fitted in ``rag.ranker``), with boilerplate kept out
and no single decision crowding out the rest.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date

import numpy as np

from index.catalogue import Catalogue, PassageSet, WindowBlock
from index.decision import normalise_reference
from index.embedder import Embedder
from index.passage import SUMMARY
from index.store import Store, StoredPassage
from rag.evidence import Evidence, gather
from rag.parameters import (CANDIDATES, DECISION_CACHE, DENSE_PROBES, EXACT_DENSE_LIMIT, FILTER_BLOCKS, FILTER_CACHE,
                             PER_DECISION, QUESTION_CACHE)
from rag.query import AuthorityNames, Query, outcome_named, understand
from rag.ranker import Ranker, load_ranker

log = logging.getLogger(__name__)

MODES = ("hybrid", "dense", "bm25")
# Embeds questions beside the searches that wait for them (see ``Retriever.evidence``); one thread
# per core, shared by every retriever of the process.
_EMBEDDING = ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1), thread_name_prefix="ombudsman-question")


@dataclass(frozen=True)
class Filters:
    """Restrictions a user sets explicitly (the question's own cues are softer, see ``Query``)."""

    authority: str = ""  # substring, case-insensitive
    category: str = ""  # substring of the category path
    outcome: str = ""  # exact outcome, case-insensitive
    since: date | None = None
    until: date | None = None
    ref: str = ""
    remedy: str = ""  # a kind of remedy the decision records (apology, payment, reconsider, service, other)
    fault: str = ""  # found, not found or partly

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


class Retriever:
    """Finds the passages relevant to a question. Thread-safe for concurrent searches.

    ``ranker``: the ranking function's weights (default: the fitted ones in ``rag/ranker.json``).
    """

    def __init__(self, store: Store, embedder: Embedder, ranker: Ranker | None = None) -> None:
        self.store = store
        self.embedder = embedder
        self._ranker = ranker
        self._catalogue: Catalogue | None = None
        self._authorities: AuthorityNames | None = None
        self._lock = threading.Lock()
        # Decisions read for hits, most recent last: a retriever lives as long as its catalogue
        # (ingest makes a new one), so what it caches is what the catalogue describes.
        self._decisions: OrderedDict[str, tuple] = OrderedDict()
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()  # questions embedded last
        self._filtered: OrderedDict[Filters, PassageSet] = OrderedDict()  # filters set last, and their passages

    @property
    def catalogue(self) -> Catalogue:
        with self._lock:
            if self._catalogue is None:
                cat = Catalogue.load(self.store)
                from index.lexical import tokenize

                def is_word(word: str) -> bool:
                    tokens = tokenize(word)
                    return not tokens or cat.lexical.knows(tokens[0])

                self._authorities = AuthorityNames.of(sorted({d["authority"] for d in cat.decisions.values()}),
                                                      is_word=is_word)
                self._is_word = is_word
                self._catalogue = cat
            return self._catalogue

    @property
    def authorities(self) -> AuthorityNames:
        """The names users may give the indexed authorities."""
        self.catalogue
        assert self._authorities is not None
        return self._authorities

    def is_word(self, word: str) -> bool:
        """Whether the archive's text uses ``word`` (after stemming)."""
        self.catalogue
        return self._is_word(word)

    @property
    def ranker(self) -> Ranker:
        return self._ranker or load_ranker()

    def understand(self, question: str) -> Query:
        return understand(question, self.authorities)

    # -- filtering ------------------------------------------------------------------------------

    def allowed_refs(self, query: Query, filters: Filters, within: set[str] | None = None) -> set[str] | None:
        """Decisions a search may return: those the filters, the references and the councils the
        question names allow (and only those ``within``, if given); None for all of them."""
        cat = self.catalogue
        refs: set[str] | None = None if within is None else set(within)

        def narrow(keep: set[str]) -> None:
            nonlocal refs
            refs = keep if refs is None else refs & keep

        if filters.ref:
            narrow({normalise_reference(filters.ref)})
        if query.references:
            narrow(set(query.references))
        if filters.authority:
            # Whole words: "Leicester" is not Leicestershire County Council (a different council).
            a = re.compile(rf"(?<!\w){re.escape(filters.authority.strip())}(?!\w)", re.I)
            narrow({r for name, refs_of in cat.by_authority.items() if a.search(name) for r in refs_of})
        elif query.authorities:
            narrow({r for a in query.authorities for r in cat.by_authority.get(a, ())})
        if filters.category:
            c = filters.category.lower()
            narrow({r for r, d in cat.decisions.items() if c in d["category"].lower()})
        if filters.outcome:
            o = (outcome_named(filters.outcome) or filters.outcome).lower()
            narrow(set(cat.by_outcome.get(o, ())))
        if filters.since or filters.until:
            lo = (filters.since or date.min).isoformat()
            hi = (filters.until or date.max).isoformat()
            narrow(set(cat.dated_between(lo, hi)))
        if filters.remedy:
            kind = filters.remedy.strip().lower()
            narrow({r for r, d in cat.decisions.items()
                    if any(x["kind"] == kind for x in d.get("facts", {}).get("remedies", ()))})
        if filters.fault:
            fault = filters.fault.strip().lower()
            narrow({r for r, d in cat.decisions.items() if (d.get("facts", {}).get("fault") or "") == fault})
        return refs

    def allowed_passages(self, query: Query, filters: Filters | None = None,
                         within: set[str] | None = None) -> PassageSet | None:
        """The passages of ``allowed_refs`` (None for all of them). The passages of the filters
        alone are kept for the next questions asked with them (a user sets filters once and asks
        several questions; a filter such as an outcome keeps a third of an archive's passages)."""
        filters = filters or Filters()
        # (The councils a question names count only when the filters name none.)
        if filters.empty or within is not None or query.references or (query.authorities and not filters.authority):
            refs = self.allowed_refs(query, filters, within)
            return None if refs is None else PassageSet(self.catalogue, refs)
        with self._lock:
            found = self._filtered.get(filters)
            if found is not None:
                self._filtered.move_to_end(filters)
                return found
        refs = self.allowed_refs(query, filters)
        if refs is None:
            return None
        found = PassageSet(self.catalogue, refs)
        found.mask()
        if len(found) <= EXACT_DENSE_LIMIT:  # scored exactly: its windows gathered once for the next questions
            found.block = WindowBlock(self.catalogue, found.positions())
        with self._lock:
            self._filtered[filters] = found
            while len(self._filtered) > FILTER_CACHE:
                self._filtered.popitem(last=False)
            for old in list(self._filtered.values())[:-FILTER_BLOCKS]:
                old.block = None  # only the last few filters keep their windows gathered
        return found

    # -- search ---------------------------------------------------------------------------------

    def search(
        self,
        question: str,
        k: int = 10,
        filters: Filters | None = None,
        mode: str = "hybrid",
        per_decision: int = PER_DECISION,
        query: Query | None = None,
        within: set[str] | None = None,
    ) -> list[Hit]:
        """The best ``k`` passages for ``question`` (of the decisions ``within``, if given).

        ``mode`` is ``hybrid`` (default: the ranking function over both retrievers' candidates),
        ``dense`` or ``bm25`` (one retriever's own order); ``per_decision`` caps passages of one
        decision until other decisions have had their place (0: no cap).
        """
        if mode not in MODES:
            raise ValueError(f"unknown retrieval mode {mode!r}; choose one of {', '.join(MODES)}")
        filters = filters or Filters()
        query = query or self.understand(question)
        cat = self.catalogue
        if not cat.passages:
            return []
        allowed = self.allowed_passages(query, filters, within)
        if allowed is not None and not allowed:
            return []
        asked = None  # the paragraph named with its reference ("24 016 809 para 15")
        if query.references and query.paragraph is not None:
            asked = f"{query.references[0].replace(' ', '-')}#{query.paragraph}"
            asked = asked if asked in cat.passages else None
        if asked:
            allowed = (allowed or PassageSet(cat, ())) | {asked}
        if query.reference_only:
            return self._hits(self._in_order(allowed or set(), k), {}, {})

        n = max(CANDIDATES, k * 5)
        if mode == "hybrid":
            evidence = self.evidence(query, allowed, n)
            chosen = self.rank(query, evidence, k, per_decision, asked)
            dense = dict(zip(evidence.pids, (float(v) for v in evidence.dense)))
            lexical = {pid: float(v) for pid, v in zip(evidence.pids, evidence.lexical) if v > 0}
            return self._hits(chosen, dense, lexical)
        if mode == "dense":
            dense = self._dense(self.question_vector(query.content), allowed, n)
            scored, lexical = dict(dense), {}
        else:
            lexical = dict(cat.lexical.search(query.lexical_content, n, None if allowed is None else allowed.mask()))
            top = max(lexical.values(), default=1.0) or 1.0
            scored, dense = {pid: v / top for pid, v in lexical.items()}, {}
        return self._hits(self._order(scored, lexical, query, k, per_decision, asked), dense, lexical)

    def rank(self, query: Query, evidence: Evidence, k: int = 10, per_decision: int = PER_DECISION,
             asked: str | None = None, ranker: Ranker | None = None) -> list[tuple[str, float]]:
        """The best ``k`` candidates of ``evidence`` as (passage id, score): the ranking function's
        probability that the passage answers the question, best first, a paragraph ``asked`` for
        by number first of all."""
        scores = (ranker or self.ranker).probability(evidence.matrix)
        scored = dict(zip(evidence.pids, (float(v) for v in scores)))
        lexical = {pid: float(v) for pid, v in zip(evidence.pids, evidence.lexical)}
        return self._order(scored, lexical, query, k, per_decision, asked, self._contradicted(query, evidence),
                           dict(zip(evidence.pids, evidence.positions.tolist())))

    def _contradicted(self, query: Query, evidence: Evidence) -> set[str]:
        """Candidates from decisions whose outcome contradicts the one a "why" question states
        ("why was it closed?" is not about an upheld decision): ranked after all the others.

        The fitted weights cannot learn this (the tuning questions rarely need it: of the 33 "why"
        questions the ranking orders that name an outcome, 31 have a gold decision with that
        outcome, and the candidates near their top already share it), so it is a rule, like the
        council a question names. ``python -m eval.fit_ranker`` prints those counts and measures
        the ranking with the rule."""
        if not (query.why and query.outcomes):
            return set()
        return {pid for pid, conflict in zip(evidence.pids, evidence.column("outcome_conflict")) if conflict}

    def _order(self, scored: dict[str, float], lexical: dict[str, float], query: Query, k: int,
               per_decision: int, asked: str | None, after: set[str] = frozenset(),
               positions: dict[str, int] | None = None) -> list[tuple[str, float]]:
        if asked:
            scored[asked] = max(scored.values(), default=0.0) + 1.0
        # Ties go to the passage with more of the question's exact words, then to the first id.
        ranked = sorted(scored.items(), key=lambda kv: (kv[0] in after, -kv[1], -lexical.get(kv[0], 0.0), kv[0]))
        return self._select(ranked, query, k, per_decision, positions or {})

    def evidence(self, query: Query, allowed: set[str] | None = None, n: int = CANDIDATES) -> Evidence:
        """The candidates for ``query`` (the best ``n`` of dense and of BM25 search, among
        ``allowed`` passages if given) with their evidence rows: what the ranking function
        weighs, and what ``eval.fit_ranker`` fits it on."""
        cat = self.catalogue
        # A new question is embedded while BM25 searches: onnxruntime (and torch) release the GIL
        # while the model runs, so on a second core the embedding costs the search nothing.
        vector = self._embedding_soon(query.content)
        bm25 = cat.lexical.query(query.lexical_content)
        lexical = bm25.top(n, None if allowed is None else allowed.mask())
        vector = vector.result()
        dense = self._nearest(vector, allowed, n)
        found = np.unique(np.array([p for p, _ in dense] + [p for p, _ in lexical], dtype=np.int64))
        pids = cat.pids_at(found)
        # In id order: candidates that tie (the same standard paragraph in several decisions has the
        # same vector and the same words) then rank the same however the store returned them.
        order = sorted(range(len(pids)), key=pids.__getitem__)
        return gather(cat, query, [pids[i] for i in order], vector, bm25, found[order])

    def _embedding_soon(self, text: str) -> Future:
        """``question_vector(text)`` as a future: at once when kept, else computed in another thread."""
        kept = self._kept_vector(text)
        if kept is None:
            return _EMBEDDING.submit(self.question_vector, text)
        done: Future = Future()
        done.set_result(kept)
        return done

    def _kept_vector(self, text: str) -> np.ndarray | None:
        """The question's embedding if kept (then the last to be let go), else None."""
        with self._lock:
            kept = self._vectors.get(text)
            if kept is not None:
                self._vectors.move_to_end(text)
            return kept

    def question_vector(self, text: str) -> np.ndarray:
        """The embedding of a question, kept for the next searches of it (an answer searches the
        same question several times: the archive, then each decision it quotes)."""
        kept = self._kept_vector(text)
        if kept is not None:
            return kept
        vector = self.embedder.embed_query(text)
        with self._lock:
            self._vectors[text] = vector
            while len(self._vectors) > QUESTION_CACHE:
                self._vectors.popitem(last=False)
        return vector

    def _dense(self, vector: np.ndarray, allowed: PassageSet | None, n: int) -> dict[str, float]:
        """The ``n`` passages nearest ``vector`` (cosine of their best window), among ``allowed``."""
        found = self._nearest(vector, allowed, n)
        return dict(zip(self.catalogue.pids_at([pos for pos, _ in found]), (sim for _, sim in found)))

    def _nearest(self, vector: np.ndarray, allowed: PassageSet | None, n: int) -> list[tuple[int, float]]:
        """``_dense`` as (position, cosine), best first."""
        cat = self.catalogue
        if cat.vectors is None:
            return []
        if allowed is not None and allowed.block is not None:
            return allowed.block.nearest(vector, n)
        if allowed is not None and len(allowed) <= EXACT_DENSE_LIMIT:
            return cat.exact_nearest(vector, allowed.positions(), n)
        return cat.nearest(vector, n, DENSE_PROBES, None if allowed is None else allowed.mask())

    def _in_order(self, allowed: set[str], k: int) -> list[tuple[str, float]]:
        """A decision asked for by reference alone: its Summary, then its paragraphs in order."""
        cat = self.catalogue

        def position(pid: str) -> tuple[str, int]:
            row = cat.passages[pid]
            return row.ref, 0 if row.paragraph == SUMMARY else int(row.paragraph)
        ordered = sorted(allowed, key=position)[:k]
        return [(pid, 1.0 - i / (len(ordered) + 1)) for i, pid in enumerate(ordered)]

    def coverage(self, query: Query, ref: str) -> float:
        """The share of the question's words (weighted by IDF; a word the archive never uses
        weighs most) that decision ``ref`` contains anywhere: low when the question is about
        something the decision does not mention."""
        cat = self.catalogue
        docs = cat.decision_docs.get(ref)
        if docs is None:
            return 0.0
        words = cat.lexical.query(query.content).contains(docs, unindexed=True)
        total = sum(idf for idf, _ in words)
        return sum(idf for idf, has in words if has.any()) / total if total else 0.0

    def is_boilerplate(self, pid: str) -> bool:
        return self.catalogue.is_boilerplate(pid)

    def _select(self, ranked: list[tuple[str, float]], query: Query, k: int, per_decision: int,
                known: dict[str, int]) -> list[tuple[str, float]]:
        """Top ``k`` with boilerplate handled and no decision taking more than its share at first
        (``known``: the catalogue positions of candidates, when the caller has them)."""
        cat = self.catalogue
        out: list[tuple[str, float]] = []
        overflow: list[tuple[str, float]] = []
        per: dict[int, int] = {}
        seen_keys: set[int] = set()
        positions = np.array([known[pid] if pid in known else cat.position(pid) for pid, _ in ranked], dtype=np.int64)
        refs = cat.decision_numbers(positions).tolist()
        keys = cat.passage_columns(positions, headings=False)[2]
        shared = cat.is_boilerplate_key(keys).tolist()
        for (pid, score), ref, key, boilerplate in zip(ranked, refs, keys.tolist(), shared):
            if boilerplate:
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

    def read_decisions(self, slugs: list[str]) -> dict[str, tuple]:
        """``Store.read_decisions`` through a cache of the ``DECISION_CACHE`` decisions read last."""
        with self._lock:
            found = {s: self._decisions[s] for s in slugs if s in self._decisions}
            for s in found:
                self._decisions.move_to_end(s)
        missing = [s for s in slugs if s not in found]
        if missing:
            read = self.store.read_decisions(missing)
            with self._lock:
                for s, value in read.items():
                    self._decisions[s] = value
                while len(self._decisions) > DECISION_CACHE:
                    self._decisions.popitem(last=False)
            found.update(read)
        return found

    def passages(self, ids: list[str]) -> dict[str, StoredPassage]:
        """Whole passages by id: from the catalogue, which keeps their texts (the store, through
        the decision cache, for any it does not hold)."""
        found = self.catalogue.stored_passages(ids)
        missing = [pid for pid in ids if pid not in found]
        if missing:
            found.update(self.store.passages(missing, read=self.read_decisions))
        return found

    def _hits(self, chosen: list[tuple[str, float]], dense: dict[str, float], lexical: dict[str, float]) -> list[Hit]:
        if not chosen:
            return []
        stored = self.passages([pid for pid, _ in chosen])
        hits = []
        for pid, score in chosen:
            p = stored.get(pid)
            if p is None:
                continue
            hits.append(hit_of(p, score, dense.get(pid, 0.0), lexical.get(pid, 0.0), self.is_boilerplate(pid)))
        return hits

    def passage(self, pid: str) -> Hit | None:
        """One passage by id (``24-016-809#15``), as a hit with score 1."""
        got = self.passages([pid]).get(pid)
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
