"""The evidence the ranking function weighs: one row of named features per candidate passage.

Each feature is a plain fact about a passage, its decision and the question: how close the
passage is to the question (dense cosine, BM25), how relevant its decision is as a whole (its best
paragraph and its Summary, dense and lexical), the role of its section (Summary, complaint,
assessment, decision, the law), and whether the decision matches or contradicts what the question
names (complainant alias, council, outcome, category words, provision, year). Nothing here is
weighted: ``rag.ranker`` holds the fitted weights.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from index.catalogue import Catalogue
from index.lexical import tokenize
from index.passage import SUMMARY
from index.statute import provision_matches
from rag.parameters import RRF_K
from rag.query import Query, aliases_fit

ROLES = ("summary", "complaint", "background", "assessment", "decision", "powers", "procedure")

FEATURES = (
    # how close the passage is to the question
    "dense", "dense_gap", "lexical", "rrf", "coverage",
    # how it compares with the best paragraph of its own decision
    "dense_decision_gap", "lexical_decision_gap",
    # how relevant its decision is as a whole
    "decision_dense", "decision_dense_gap", "decision_lexical", "decision_coverage", "summary_dense",
    "summary_lexical", "decision_dense_rank", "decision_lexical_rank", "decision_lexical_top3",
    "decision_centroid",
    # the role of its section, alone and for the kind of question
    *(f"role_{r}" for r in ROLES),
    "why_summary", "why_decision", "why_assessment", "why_complaint", "complaint_complaint",
    "outcome_summary", "outcome_decision", "outcome_complaint",
    "boilerplate", "law_boilerplate", "law_powers",
    # what the question names, matched or contradicted by the decision
    "alias_match", "alias_conflict", "authority_match", "outcome_match", "outcome_conflict",
    "category_overlap", "provision_match", "year_match", "year_conflict",
    # the passage itself
    "log_tokens",
)
INDEX = {name: i for i, name in enumerate(FEATURES)}


def section_role(section: str, paragraph: int | str = 0) -> str:
    """What a section does in a decision, from its heading: ``summary``, ``complaint``,
    ``background``, ``assessment``, ``decision``, ``powers`` (the Ombudsman's role, the law),
    ``procedure`` (how the complaint was considered) or ``other``."""
    if paragraph == SUMMARY:
        return "summary"
    h = section.lower().replace("’", "'")
    if h.startswith("final decision") or h in {"decision", "decisions"} or "agreed action" in h \
            or "recommend" in h or h.startswith("action"):
        return "decision"
    if re.search(r"assessment|analysis|what i found|finding|conclusion", h):
        return "assessment"
    if re.search(r"how (?:i|we) considered|investigated|considered this complaint|my investigation", h):
        return "procedure"
    if re.search(r"role and powers|\blaw\b|legal|guidance|powers|legislation|jurisdiction", h):
        return "powers"
    if re.search(r"background|what happened|facts|events|chronology", h):
        return "background"
    if "complaint" in h:
        return "complaint"
    return "other"


@dataclass(frozen=True)
class Evidence:
    """The candidates of one search and their feature rows (``matrix[i]`` is ``pids[i]``'s)."""

    pids: list[str]
    matrix: np.ndarray
    dense: np.ndarray  # cosine of each candidate (its best window)
    lexical: np.ndarray  # BM25 score of each candidate

    def column(self, name: str) -> np.ndarray:
        return self.matrix[:, INDEX[name]]


def _ranks(values: np.ndarray) -> np.ndarray:
    """0 for the highest value, 1 for the next, ... (ties in input order)."""
    order = np.argsort(-values, kind="stable")
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = np.arange(len(values))
    return ranks


def _cosines(cat: Catalogue, rows: np.ndarray, vector: np.ndarray) -> np.ndarray:
    if cat.vectors is None or not len(rows):
        return np.zeros(len(rows), dtype=np.float32)
    return np.asarray(cat.vectors[rows], dtype=np.float32) @ vector


def _coverage(positions: np.ndarray, postings: list[tuple[float, np.ndarray]]) -> np.ndarray:
    """Per document position, the share of the question's word weight (IDF) that it contains."""
    total = sum(idf for idf, _ in postings)
    out = np.zeros(len(positions))
    if not total:
        return out
    for idf, docs in postings:
        out += idf * np.isin(positions, docs)
    return out / total


def gather(cat: Catalogue, query: Query, pids: list[str], vector: np.ndarray | None,
           bm25: np.ndarray | None, dense_known: dict[str, float] | None = None) -> Evidence:
    """The feature rows of candidates ``pids`` for ``query``.

    ``vector`` is the question's embedding (None: no dense evidence), ``bm25`` the BM25 score of
    every lexical document for the question (None: no lexical evidence). Cosines are computed
    exactly from the catalogue's vector copy; ``dense_known`` supplies them when there is none.
    Coverage is the share of the question's words (weighted by IDF) that a passage, or any
    passage of its decision, contains.
    """
    n = len(pids)
    m = np.zeros((n, len(FEATURES)), dtype=np.float64)
    if not n:
        return Evidence([], m, np.zeros(0), np.zeros(0))
    vector = None if vector is None else np.asarray(vector, dtype=np.float32)

    # -- passages ---------------------------------------------------------------------------
    dense = np.zeros(n)
    if vector is not None:
        if cat.vectors is not None:
            for i, pid in enumerate(pids):
                rows = cat.rows.get(pid)
                if rows:
                    dense[i] = float(np.max(_cosines(cat, np.asarray(rows), vector)))
        elif dense_known:
            dense = np.array([dense_known.get(pid, 0.0) for pid in pids])
    top_bm25 = float(bm25.max()) if bm25 is not None and len(bm25) else 0.0
    lexical = np.zeros(n)
    if bm25 is not None and top_bm25 > 0:
        for i, pid in enumerate(pids):
            pos = cat.lexical.position(pid)
            lexical[i] = float(bm25[pos]) if pos >= 0 else 0.0
    m[:, INDEX["dense"]] = dense
    m[:, INDEX["dense_gap"]] = dense - dense.max() if vector is not None else 0.0
    m[:, INDEX["lexical"]] = lexical / top_bm25 if top_bm25 > 0 else 0.0
    rrf = np.zeros(n)
    if vector is not None:
        rrf += 1.0 / (RRF_K + 1 + _ranks(dense))
    if top_bm25 > 0:
        rrf += np.where(lexical > 0, 1.0 / (RRF_K + 1 + _ranks(lexical)), 0.0)
    m[:, INDEX["rrf"]] = rrf * (RRF_K + 1) / 2  # first in both rankings scores 1
    postings = cat.lexical.postings(query.lexical_content) if bm25 is not None else []
    positions = np.array([cat.lexical.position(pid) for pid in pids])
    m[:, INDEX["coverage"]] = _coverage(positions, postings)

    # -- decisions --------------------------------------------------------------------------
    refs = [cat.passages[pid].ref for pid in pids]
    per_decision: dict[str, tuple[float, ...]] = {}
    for ref in dict.fromkeys(refs):
        d_dense = s_dense = d_lex = s_lex = d_cov = d_top3 = d_mean = 0.0
        summary = f"{ref.replace(' ', '-')}#{SUMMARY}"
        if vector is not None and cat.vectors is not None:
            rows = cat.decision_rows.get(ref)
            if rows is not None and len(rows):
                d_dense = float(np.max(_cosines(cat, rows, vector)))
                # The decision as a whole: the direction of all its windows together.
                centre = np.asarray(cat.vectors[rows], dtype=np.float32).sum(axis=0)
                d_mean = float(centre @ vector / (np.linalg.norm(centre) or 1.0))
            srows = cat.rows.get(summary)
            s_dense = float(np.max(_cosines(cat, np.asarray(srows), vector))) if srows else d_dense
        if top_bm25 > 0:
            docs = cat.decision_docs.get(ref)
            docs = docs[docs >= 0] if docs is not None else docs
            if docs is not None and len(docs):
                d_lex = float(bm25[docs].max()) / top_bm25
                d_top3 = float(np.sort(bm25[docs])[-3:].sum()) / top_bm25
                total = sum(idf for idf, _ in postings)
                d_cov = sum(idf for idf, found in postings if np.isin(docs, found).any()) / total if total else 0.0
            pos = cat.lexical.position(summary)
            s_lex = float(bm25[pos]) / top_bm25 if pos >= 0 else 0.0
        per_decision[ref] = (d_dense, s_dense, d_lex, s_lex, d_cov, d_top3, d_mean)
    decision_dense = np.array([per_decision[r][0] for r in refs])
    decision_lexical = np.array([per_decision[r][2] for r in refs])
    m[:, INDEX["dense_decision_gap"]] = dense - decision_dense
    m[:, INDEX["lexical_decision_gap"]] = m[:, INDEX["lexical"]] - decision_lexical
    m[:, INDEX["decision_coverage"]] = [per_decision[r][4] for r in refs]
    m[:, INDEX["decision_lexical_top3"]] = [per_decision[r][5] for r in refs]
    m[:, INDEX["decision_centroid"]] = [per_decision[r][6] for r in refs]
    order = list(per_decision)
    for name, col in (("decision_dense_rank", 0), ("decision_lexical_rank", 2)):
        ranks = _ranks(np.array([per_decision[r][col] for r in order]))
        rank_of = dict(zip(order, ranks))
        m[:, INDEX[name]] = [1.0 / (1.0 + rank_of[r]) for r in refs]
    m[:, INDEX["decision_dense"]] = decision_dense
    m[:, INDEX["decision_dense_gap"]] = decision_dense - decision_dense.max() if vector is not None else 0.0
    m[:, INDEX["summary_dense"]] = [per_decision[r][1] for r in refs]
    m[:, INDEX["decision_lexical"]] = decision_lexical
    m[:, INDEX["summary_lexical"]] = [per_decision[r][3] for r in refs]

    # -- sections and what the question names ----------------------------------------------
    question_tokens = set(tokenize(query.content))
    category_tokens: dict[str, set[str]] = {}
    for i, pid in enumerate(pids):
        row = cat.passages[pid]
        decision = cat.decisions.get(row.ref, {})
        role = section_role(row.section, row.paragraph)
        if role in ROLES:
            m[i, INDEX[f"role_{role}"]] = 1.0
        if query.why:
            for r in ("summary", "decision", "assessment", "complaint"):
                m[i, INDEX[f"why_{r}"]] = float(role == r)
        m[i, INDEX["complaint_complaint"]] = float(query.complaint and role == "complaint")
        if query.asks_outcome:
            for r in ("summary", "decision", "complaint"):
                m[i, INDEX[f"outcome_{r}"]] = float(role == r)
        boilerplate = row.boilerplate_key in cat.boilerplate
        m[i, INDEX["boilerplate"]] = float(boilerplate and not query.law)
        m[i, INDEX["law_boilerplate"]] = float(boilerplate and query.law)
        m[i, INDEX["law_powers"]] = float(role == "powers" and query.law)
        if query.aliases:
            has = aliases_fit(query.aliases, decision.get("aliases", ()))
            m[i, INDEX["alias_match"]] = float(has)
            m[i, INDEX["alias_conflict"]] = float(not has)
        if query.authorities:
            m[i, INDEX["authority_match"]] = float(decision.get("authority") in query.authorities)
        if query.outcomes:
            same = decision.get("outcome") in query.outcomes
            m[i, INDEX["outcome_match"]] = float(same)
            m[i, INDEX["outcome_conflict"]] = float(not same and bool(decision.get("outcome")))
        if row.ref not in category_tokens:
            category_tokens[row.ref] = set(tokenize(decision.get("category", "").replace(">", " ")))
        words = category_tokens[row.ref]
        if words:
            m[i, INDEX["category_overlap"]] = len(words & question_tokens) / len(words)
        if query.provision is not None:
            m[i, INDEX["provision_match"]] = float(any(provision_matches(query.provision, s) for s in row.statutes))
        if query.years:
            year = int((decision.get("decision_date") or "0")[:4] or 0)
            # Decisions come a year or two after the events they are about, so only a distant
            # year contradicts the question.
            m[i, INDEX["year_match"]] = float(year in query.years)
            m[i, INDEX["year_conflict"]] = float(bool(year) and min(abs(year - y) for y in query.years) > 2)
        m[i, INDEX["log_tokens"]] = math.log1p(row.tokens)
    return Evidence(list(pids), m, dense, lexical)
