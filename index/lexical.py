"""The lexical index: BM25 over passage texts, from the postings the catalogue's segments keep.

Dense vectors blur exact words ("Safety Plan", "section 26(6)(c)", "Disabled Facilities Grant");
BM25 does not. Statute provisions and references are kept as whole tokens so they match exactly.
Scores are bm25s' Lucene variant (the ranking was fitted on them), computed from postings so
that an index in several segments scores each passage as one index of all of them would.
"""

from __future__ import annotations

import logging
import re
from functools import lru_cache

import numpy as np

log = logging.getLogger(__name__)

_WORD_RE = re.compile(r"\d+[a-z]{0,3}(?:\(\w{1,4}\))+|[a-z0-9]+(?:['’][a-z]+)?")
_REF_RE = re.compile(r"\b(\d{2})[ \-/]?(\d{3})[ \-/]?(\d{3})([a-z]?)\b")


@lru_cache(maxsize=1)
def _stopwords() -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_EN

    # Question words and contractions users type, which say nothing about which paragraph.
    extra = {"why", "what", "when", "how", "who", "which", "did", "does", "didn", "doesn", "wasn", "weren",
             "won", "wouldn", "couldn", "shouldn", "isn", "aren", "don", "my", "me", "i", "can", "could",
             "would", "should", "get", "got"}
    return frozenset(STOPWORDS_EN) | extra


@lru_cache(maxsize=1)
def _stemmer():
    try:
        import Stemmer

        return Stemmer.Stemmer("english")
    except ImportError:  # stemming improves recall; BM25 still works without it
        log.warning("PyStemmer is not installed; BM25 runs without stemming")
        return None


def _provision_tokens(provision: str) -> list[str]:
    """``26(6)(c)`` -> ``26(6)(c)``, ``26(6)``, ``s26``: a query for ``section 26(6)`` then matches
    paragraphs citing ``26(6)(c)``, and the bare parts ("6", "c") match nothing else."""
    parts = re.findall(r"\([^()]*\)", provision)
    base = provision.split("(", 1)[0]
    return [base + "".join(parts[:i]) for i in range(len(parts), 0, -1)] + [f"s{base}"]


def tokenize(text: str) -> list[str]:
    """Lower-cased, stemmed words without stopwords; provisions like ``26(6)(c)`` stay whole too."""
    text = text.lower().replace("’", "'")
    text = _REF_RE.sub(lambda m: f" ref{m.group(1)}{m.group(2)}{m.group(3)}{m.group(4)} ", text)
    tokens: list[str] = []
    stop = _stopwords()
    for m in _WORD_RE.finditer(text):
        w = m.group(0)
        if "(" in w:
            tokens.extend(_provision_tokens(w))
            continue
        w = w.split("'")[0]
        if w and w not in stop:
            tokens.append(w)
    stemmer = _stemmer()
    if stemmer is not None:
        tokens = [t if ("(" in t or t.startswith("ref")) else s for t, s in zip(tokens, stemmer.stemWords(tokens))]
    return tokens


# BM25 parameters: bm25s' defaults (Lucene's variant), which the ranking was fitted with.
K1, B = 1.5, 0.75


class _Ids:
    """Passage ids by catalogue position (made when asked, not held)."""

    def __init__(self, catalogue) -> None:
        self.catalogue = catalogue

    def __len__(self) -> int:
        return self.catalogue.size

    def __getitem__(self, position: int) -> str:
        return self.catalogue.pid_at(int(position))


class LexicalIndex:
    """BM25 over the catalogue's passages, scored from every segment's postings with statistics of
    the whole catalogue (document count, mean length, a term's document frequency), so that a
    passage scores the same whichever segment holds it. Positions are catalogue positions."""

    def __init__(self, catalogue) -> None:
        self.catalogue = catalogue
        self.ids = _Ids(catalogue)
        lengths = [np.asarray(s.passages["length"]) for s in catalogue.segments]
        self.lengths = np.concatenate(lengths).astype(np.float32) if lengths else np.zeros(0, np.float32)
        live = catalogue.live
        self.documents = int(live.sum())
        self.mean_length = float(self.lengths[live].mean()) if self.documents else 1.0
        self._norm = (K1 * ((1 - B) + B * self.lengths / self.mean_length)).astype(np.float32)

    def knows(self, term: str) -> bool:
        """Whether any passage has the (tokenised) ``term``."""
        return any(term in s.terms for s in self.catalogue.segments)

    def _postings(self, term: str) -> tuple[np.ndarray, np.ndarray]:
        """Live documents containing ``term`` (catalogue positions) and its count in each."""
        docs, tfs = [], []
        for i, seg in enumerate(self.catalogue.segments):
            d, tf = seg.postings(term)
            if len(d):
                docs.append(np.asarray(d, dtype=np.int64) + int(self.catalogue.offsets[i]))
                tfs.append(tf)
        if not docs:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        docs_a, tfs_a = np.concatenate(docs), np.concatenate(tfs).astype(np.float32)
        keep = self.catalogue.live[docs_a]
        return docs_a[keep], tfs_a[keep]

    def idf(self, df: int) -> float:
        return float(np.log(1 + (self.documents - df + 0.5) / (df + 0.5)))

    def position(self, pid: str) -> int:
        """The position of passage ``pid`` (-1 when it is not indexed)."""
        return self.catalogue.position(pid)

    def scores(self, query: str) -> np.ndarray | None:
        """BM25 score of every position for ``query`` (None when no query word is indexed). A word
        the query repeats counts as often as it is repeated."""
        if not self.documents:
            return None
        scores = None
        for term in tokenize(query):
            docs, tfs = self._postings(term)
            if not len(docs):
                continue
            if scores is None:
                scores = np.zeros(self.catalogue.size, dtype=np.float32)
            scores[docs] += self.idf(len(docs)) * tfs / (tfs + self._norm[docs])
        return scores

    def postings(self, query: str, unindexed: bool = False) -> list[tuple[float, np.ndarray]]:
        """For each distinct word of ``query``: its inverse document frequency and the documents
        that contain it (what "how many of the question's words does it have" needs). Words no
        document contains are left out, unless ``unindexed`` (then they come with no documents
        and the highest IDF: a question about something no decision mentions)."""
        if not self.documents:
            return []
        out = []
        for t in dict.fromkeys(tokenize(query)):
            docs, _ = self._postings(t)
            if not len(docs):
                if unindexed:
                    out.append((self.idf(0), np.zeros(0, dtype=np.int64)))
                continue
            out.append((self.idf(len(docs)), docs))
        return out

    def top(self, scores: np.ndarray | None, k: int, allowed: np.ndarray | None = None) -> list[tuple[str, float]]:
        """The best ``k`` of ``scores`` as ``(passage_id, BM25 score)``; only positions where
        ``allowed`` (a bool per position) is true, if given."""
        if scores is None:
            return []
        if allowed is not None:
            scores = np.where(allowed, scores, 0.0)
        k = min(k, len(scores))
        if k <= 0:
            return []
        top = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
        top = top[np.lexsort((top, -scores[top]))]
        return [(self.ids[int(i)], float(scores[i])) for i in top if scores[i] > 0]

    def search(self, query: str, k: int, allowed: np.ndarray | None = None) -> list[tuple[str, float]]:
        """Best ``k`` passages for ``query`` as ``(passage_id, BM25 score)``; only ``allowed`` ones if given."""
        return self.top(self.scores(query), k, allowed)
