"""The evidence the ranking function weighs: one row of named features per candidate passage.

Each feature is a plain fact about a passage, its decision and the question: how close the
passage is to the question (dense cosine, BM25), how relevant its decision is as a whole (its best
paragraph and its Summary, dense and lexical), the role of its section (Summary, complaint,
assessment, decision, the law), and whether the decision matches or contradicts what the question
names (complainant alias, council, outcome, category words, provision, year). Nothing here is
weighted: ``rag.ranker`` holds the fitted weights.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from index.catalogue import Catalogue
from index.segment import spans as spans_of
from index.lexical import QueryScores, tokenize
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


@lru_cache(maxsize=4096)
def _category_tokens(category: str) -> frozenset[str]:
    return frozenset(tokenize(category.replace(">", " ")))


@lru_cache(maxsize=4096)
def _heading_role(heading: str) -> str:
    return section_role(heading)


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
    positions: np.ndarray  # each candidate's catalogue position

    def column(self, name: str) -> np.ndarray:
        return self.matrix[:, INDEX[name]]


def _ranks(values: np.ndarray) -> np.ndarray:
    """0 for the highest value, 1 for the next, ... (ties in input order)."""
    order = np.argsort(-values, kind="stable")
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = np.arange(len(values))
    return ranks


def _coverage(words: list[tuple[float, np.ndarray]]) -> np.ndarray | float:
    """Per passage, the share of the question's word weight (IDF) that it contains, from each
    word's IDF and whether each passage has it."""
    total = sum(idf for idf, _ in words)
    if not total:
        return 0.0
    return sum(idf * has for idf, has in words) / total


def _top3(scores: np.ndarray, starts: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """The sum of the three highest ``scores`` of each group (groups start at ``starts``)."""
    group = np.repeat(np.arange(len(sizes)), sizes)
    ranked = scores[np.lexsort((scores, group))].astype(np.float64)  # ascending within each group
    total = np.concatenate(([0.0], np.cumsum(ranked)))
    ends = starts + sizes
    return total[ends] - total[ends - np.minimum(sizes, 3)]


def gather(cat: Catalogue, query: Query, pids: list[str], vector: np.ndarray | None,
           bm25: QueryScores | None, positions: np.ndarray | None = None) -> Evidence:
    """The feature rows of candidates ``pids`` (at catalogue ``positions``, when the caller knows
    them) for ``query``.

    ``vector`` is the question's embedding (None, or a catalogue without vectors: no dense
    evidence), ``bm25`` the question's BM25 scores (None: no lexical evidence). Cosines are
    computed exactly from the catalogue's vector copy. Coverage is the share of the question's
    words (weighted by IDF) that a passage, or any passage of its decision, contains.

    Everything is read once for all passages of the candidates' decisions (a candidate, its
    decision's Summary and its best paragraph are among them): their windows' cosines, their
    BM25 scores and which of the question's words each has.
    """
    n = len(pids)
    m = np.zeros((n, len(FEATURES)), dtype=np.float64)
    if not n:
        return Evidence([], m, np.zeros(0), np.zeros(0), np.zeros(0, dtype=np.int64))
    vector = None if vector is None else np.asarray(vector, dtype=np.float32)

    # -- the passages of the candidates' decisions ------------------------------------------------
    if positions is None:
        positions = np.array([cat.position(pid) for pid in pids], dtype=np.int64)
    positions = np.asarray(positions, dtype=np.int64)
    numbers = cat.decision_numbers(positions)
    _, first_seen = np.unique(numbers, return_index=True)
    order = numbers[np.sort(first_seen)]  # the decisions, in order of their first candidate
    k = len(order)
    idx = np.argsort(order, kind="stable")[np.searchsorted(np.sort(order), numbers)]  # each candidate's decision
    firsts, sizes = cat.decision_passages(order)
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    docs = spans_of(firsts, sizes)
    cand = starts[idx] + (positions - firsts[idx])  # each candidate among ``docs``
    summary = np.where(cat.paragraphs_at(firsts) < 0, starts, -1)  # a decision's Summary comes first

    dense = np.zeros(n)
    d_dense, d_mean, s_dense = np.zeros(k), np.zeros(k), np.zeros(k)
    if vector is not None and cat.vectors is not None:
        w_first, w_counts = cat.window_spans(docs)
        sims = cat.cosines(spans_of(w_first, w_counts), vector)
        w_starts = np.concatenate(([0], np.cumsum(w_counts)[:-1]))
        passage_best = np.maximum.reduceat(sims, w_starts)  # a passage's best window
        dense = passage_best[cand].astype(np.float64)
        d_dense = np.maximum.reduceat(passage_best, starts).astype(np.float64)
        d_mean = cat.decision_cosines(order, vector).astype(np.float64)
        s_dense = np.where(summary >= 0, passage_best[summary.clip(min=0)], d_dense)

    top_bm25 = bm25.best if bm25 is not None else 0.0
    lexical = np.zeros(n)
    d_lex, s_lex, d_cov, d_top3 = np.zeros(k), np.zeros(k), np.zeros(k), np.zeros(k)
    words: list[tuple[float, np.ndarray]] = []
    if bm25 is not None:
        scores, words = bm25.read(docs)
        if top_bm25 > 0:
            lexical = scores[cand].astype(np.float64)
            d_lex = np.maximum.reduceat(scores, starts) / top_bm25
            d_top3 = _top3(scores, starts, sizes) / top_bm25
            total = sum(idf for idf, _ in words)
            if total:
                d_cov = sum(idf * (np.maximum.reduceat(has.astype(np.int8), starts) > 0) for idf, has in words) / total
            s_lex = np.where(summary >= 0, scores[summary.clip(min=0)], 0.0) / top_bm25

    m[:, INDEX["dense"]] = dense
    m[:, INDEX["dense_gap"]] = dense - dense.max() if vector is not None else 0.0
    m[:, INDEX["lexical"]] = lexical / top_bm25 if top_bm25 > 0 else 0.0
    rrf = np.zeros(n)
    if vector is not None:
        rrf += 1.0 / (RRF_K + 1 + _ranks(dense))
    if top_bm25 > 0:
        rrf += np.where(lexical > 0, 1.0 / (RRF_K + 1 + _ranks(lexical)), 0.0)
    m[:, INDEX["rrf"]] = rrf * (RRF_K + 1) / 2  # first in both rankings scores 1
    m[:, INDEX["coverage"]] = _coverage([(idf, has[cand]) for idf, has in words])

    m[:, INDEX["decision_dense"]] = d_dense[idx]
    m[:, INDEX["decision_dense_gap"]] = d_dense[idx] - d_dense.max() if vector is not None else 0.0
    m[:, INDEX["summary_dense"]] = s_dense[idx]
    m[:, INDEX["decision_lexical"]] = d_lex[idx]
    m[:, INDEX["summary_lexical"]] = s_lex[idx]
    m[:, INDEX["dense_decision_gap"]] = dense - d_dense[idx]
    m[:, INDEX["lexical_decision_gap"]] = m[:, INDEX["lexical"]] - d_lex[idx]
    m[:, INDEX["decision_coverage"]] = d_cov[idx]
    m[:, INDEX["decision_lexical_top3"]] = d_top3[idx]
    m[:, INDEX["decision_centroid"]] = d_mean[idx]
    m[:, INDEX["decision_dense_rank"]] = (1.0 / (1.0 + _ranks(d_dense)))[idx]
    m[:, INDEX["decision_lexical_rank"]] = (1.0 / (1.0 + _ranks(d_lex)))[idx]

    # -- sections and what the question names ----------------------------------------------
    paragraphs, sections, boilerplate_keys, tokens = cat.passage_columns(positions)
    roles = ["summary" if p < 0 else _heading_role(sec) for p, sec in zip(paragraphs.tolist(), sections)]
    for r in ROLES:
        m[:, INDEX[f"role_{r}"]] = [role == r for role in roles]
    if query.why:
        for r in ("summary", "decision", "assessment", "complaint"):
            m[:, INDEX[f"why_{r}"]] = m[:, INDEX[f"role_{r}"]]
    if query.complaint:
        m[:, INDEX["complaint_complaint"]] = m[:, INDEX["role_complaint"]]
    if query.asks_outcome:
        for r in ("summary", "decision", "complaint"):
            m[:, INDEX[f"outcome_{r}"]] = m[:, INDEX[f"role_{r}"]]
    boilerplate = cat.is_boilerplate_key(boilerplate_keys)
    m[:, INDEX["boilerplate"]] = boilerplate & (not bool(query.law))
    m[:, INDEX["law_boilerplate"]] = boilerplate & bool(query.law)
    if query.law:
        m[:, INDEX["law_powers"]] = m[:, INDEX["role_powers"]]
    m[:, INDEX["log_tokens"]] = np.log1p(tokens)
    if query.provision is not None:
        m[:, INDEX["provision_match"]] = [any(provision_matches(query.provision, s) for s in cat.passages[pid].statutes)
                                          for pid in pids]
    # what the question names, decided once per decision
    named = np.zeros((k, len(FEATURES)), dtype=np.float64)
    columns = cat.decision_columns
    if query.aliases:
        has = np.array([aliases_fit(query.aliases, cat.decisions[cat.reference_of(number)]["aliases"])
                        for number in order.tolist()], dtype=bool)
        named[:, INDEX["alias_match"]] = has
        named[:, INDEX["alias_conflict"]] = ~has
    if query.authorities:
        named[:, INDEX["authority_match"]] = columns.has("authority", query.authorities, order)
    if query.outcomes:
        same = columns.has("outcome", query.outcomes, order)
        named[:, INDEX["outcome_match"]] = same
        named[:, INDEX["outcome_conflict"]] = ~same & ~columns.has("outcome", [""], order)
    question_tokens = set(tokenize(query.content))
    codes = columns.category[order]
    for code in np.unique(codes).tolist():
        words = _category_tokens(columns.category_names[code])
        if words:
            named[codes == code, INDEX["category_overlap"]] = len(words & question_tokens) / len(words)
    if query.years:
        year = columns.year[order]
        # Decisions come a year or two after the events they are about, so only a distant
        # year contradicts the question.
        named[:, INDEX["year_match"]] = np.isin(year, list(query.years))
        distance = np.min(np.abs(year[:, None] - np.array(sorted(query.years))[None, :]), axis=1)
        named[:, INDEX["year_conflict"]] = (year > 0) & (distance > 2)
    for name in ("alias_match", "alias_conflict", "authority_match", "outcome_match", "outcome_conflict",
                 "category_overlap", "year_match", "year_conflict"):
        m[:, INDEX[name]] = named[idx, INDEX[name]]
    return Evidence(list(pids), m, dense, lexical, positions)
