"""The lexical index: BM25 over passage texts, from the postings the catalogue's segments keep.

Dense vectors blur exact words ("Safety Plan", "section 26(6)(c)", "Disabled Facilities Grant");
BM25 does not. Statute provisions and references are kept as whole tokens so they match exactly.
Scores are bm25s' Lucene variant (the ranking was fitted on them), computed from postings so
that an index in several segments scores each passage as one index of all of them would.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import Counter, OrderedDict
from functools import lru_cache
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

_WORD_RE = re.compile(r"\d+[a-z]{0,3}(?:\(\w{1,4}\))+|[a-z0-9]+(?:['’][a-z]+)?")
_REF_RE = re.compile(r"\b(\d{2})[ \-/]?(\d{3})[ \-/]?(\d{3})([a-z]?)\b")


def _bm25s_stopwords() -> tuple[str, ...]:
    """bm25s' English stopwords (what the ranking was fitted with), read from its ``stopwords``
    module alone: importing ``bm25s.stopwords`` runs the package's ``__init__``, which imports
    scipy, for a list of words (0.09 s of CPU and 0.12 to 0.19 s in all, three imports in a
    process that had loaded the store, the encoder and ingest, each ingest's or app's first
    tokenised text paying it). The module has no imports of its own; should it move, the package
    is imported."""
    import importlib.util

    spec = importlib.util.find_spec("bm25s")  # finds the package without running it
    folder = next(iter(spec.submodule_search_locations or ()), None) if spec else None
    module = Path(folder) / "stopwords.py" if folder else None
    if module is None or not module.is_file():
        from bm25s.stopwords import STOPWORDS_EN

        return tuple(STOPWORDS_EN)
    loaded = importlib.util.module_from_spec(importlib.util.spec_from_file_location("_bm25s_stopwords", module))
    loaded.__spec__.loader.exec_module(loaded)
    return tuple(loaded.STOPWORDS_EN)


@lru_cache(maxsize=1)
def _stopwords() -> frozenset[str]:
    # Question words and contractions users type, which say nothing about which paragraph.
    extra = {"why", "what", "when", "how", "who", "which", "did", "does", "didn", "doesn", "wasn", "weren",
             "won", "wouldn", "couldn", "shouldn", "isn", "aren", "don", "my", "me", "i", "can", "could",
             "would", "should", "get", "got"}
    return frozenset(_bm25s_stopwords()) | extra


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


def _is_reference_token(token: str) -> bool:
    """``ref24016809``: a decision's reference, which ``tokenize`` folds into one token (never stemmed)."""
    return token.startswith("ref") and token[3:4].isdigit()


def tokenize(text: str) -> list[str]:
    """Lower-cased, stemmed words without stopwords; provisions like ``26(6)(c)`` stay whole too."""
    text = text.lower().replace("’", "'")
    text = _REF_RE.sub(lambda m: f" ref{m.group(1)}{m.group(2)}{m.group(3)}{m.group(4)} ", text)
    tokens: list[str] = []
    stop = _stopwords()
    whole = False  # whether a provision or a reference is among the tokens (neither is stemmed)
    for w in _WORD_RE.findall(text):
        if "(" in w:
            tokens.extend(_provision_tokens(w))
            whole = True
            continue
        if "'" in w:
            w = w.split("'")[0]
        if w and w not in stop:
            tokens.append(w)
    stemmer = _stemmer()
    if stemmer is None:
        return tokens
    stemmed = stemmer.stemWords(tokens)
    if not (whole or "ref" in text):
        return stemmed
    return [t if ("(" in t or _is_reference_token(t)) else s for t, s in zip(tokens, stemmed)]


# BM25 parameters: bm25s' defaults (Lucene's variant), which the ranking was fitted with.
K1, B = 1.5, 0.75
# Words in at least this share of passages get a count per passage (a byte each) for lookups, and
# this many such words are kept; speed only (`python -m eval.bench_search`: at 1.5 million
# paragraphs the commonest words, "council", "complaint", "x" of "Mr X", are in 50 to 70% of passages).
DENSE_SHARE = 1 / 16
DENSE_WORDS = 64
BEST_KEPT = 4096  # questions whose highest BM25 score an index keeps (speed only; a few bytes each)


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
        # Segments whose passages are all live: a term's document frequency there is its postings' count.
        self._all_live = [bool(live[catalogue.offsets[i]: catalogue.offsets[i + 1]].all())
                          for i in range(len(catalogue.segments))]
        self._df: dict[str, int] = {}  # live document frequency of terms looked up (segments are immutable)
        self._dense: OrderedDict[str, np.ndarray | None] = OrderedDict()  # common words' counts by position
        self._peak: dict[str, float] = {}  # the highest share tf / (tf + norm) of words looked up
        self._best: OrderedDict[str, float] = OrderedDict()  # questions' highest scores, kept (see QueryScores.best)
        self._dense_lock = threading.Lock()

    def knows(self, term: str) -> bool:
        """Whether any passage has the (tokenised) ``term``."""
        return any(term in s.terms for s in self.catalogue.segments)

    def _slices(self, term: str) -> list[tuple[int, int, np.ndarray, np.ndarray]]:
        """``term``'s postings in each segment that has it, as views of the segment's arrays:
        ``(first position, end position, documents (local, sorted), counts)``; dead copies included."""
        out = []
        offsets = self.catalogue.offsets
        for i, seg in enumerate(self.catalogue.segments):
            d, tf = seg.postings(term)
            if len(d):
                out.append((int(offsets[i]), int(offsets[i + 1]), d, tf))
        return out

    def _postings(self, term: str) -> tuple[np.ndarray, np.ndarray]:
        """Live documents containing ``term`` (catalogue positions) and its count in each."""
        docs, tfs = [], []
        for first, _, d, tf in self._slices(term):
            docs.append(np.asarray(d, dtype=np.int64) + first)
            tfs.append(tf)
        if not docs:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        docs_a, tfs_a = np.concatenate(docs), np.concatenate(tfs).astype(np.float32)
        keep = self.catalogue.live[docs_a]
        return docs_a[keep], tfs_a[keep]

    def document_frequency(self, term: str) -> int:
        """How many live passages contain ``term`` (counted once per term and kept)."""
        found = self._df.get(term)
        if found is None:
            found = 0
            segments = {int(self.catalogue.offsets[i]): i for i in range(len(self.catalogue.segments))}
            for first, _, d, _ in self._slices(term):
                if self._all_live[segments[first]]:
                    found += len(d)
                else:
                    found += int(self.catalogue.live[np.asarray(d, dtype=np.int64) + first].sum())
            self._df[term] = found
        return found

    def dense_counts(self, term: str) -> np.ndarray | None:
        """For a word in at least ``DENSE_SHARE`` of the passages: its count in every passage, one
        byte each (0 in dead copies), so that looking it up for a search's candidates is one gather
        instead of a binary search in hundreds of thousands of postings. None for other words.
        Made on first use; the ``DENSE_WORDS`` used last are kept."""
        if self.document_frequency(term) < DENSE_SHARE * self.documents or not self.documents:
            return None
        with self._dense_lock:
            if term in self._dense:
                self._dense.move_to_end(term)
                return self._dense[term]
        counts = np.zeros(self.catalogue.size, dtype=np.uint8)
        fits = True  # every count fits a byte
        for first, _, d, tf in self._slices(term):
            fits = fits and int(tf.max()) <= 255
            counts[np.asarray(d, dtype=np.int64) + first] = np.minimum(tf, 255)
        counts[~self.catalogue.live] = 0
        found = counts if fits else None
        with self._dense_lock:
            self._dense[term] = found
            while len(self._dense) > DENSE_WORDS:
                self._dense.popitem(last=False)
        return found

    def peak(self, term: str) -> float:
        """The highest ``tf / (tf + norm)`` of ``term`` in any passage (dead copies included): what a
        passage can get from it, at most, per unit of IDF. Worked out on first use and kept."""
        found = self._peak.get(term)
        if found is None:
            found = 0.0
            for first, _, d, tf in self._slices(term):
                tfs = np.asarray(tf, dtype=np.float32)
                found = max(found, float((tfs / (tfs + self._norm[np.asarray(d, dtype=np.int64) + first])).max()))
            self._peak[term] = found
        return found

    def idf(self, df: int) -> float:
        return float(np.log(1 + (self.documents - df + 0.5) / (df + 0.5)))

    def rarity(self, word: str) -> float:
        """The inverse document frequency of ``word``'s first token (that of a word no passage has
        when none does; 0 when it has no token, as a stopword)."""
        tokens = tokenize(word)
        if not tokens or not self.documents:
            return 0.0
        return self.idf(self.document_frequency(tokens[0]))

    def position(self, pid: str) -> int:
        """The position of passage ``pid`` (-1 when it is not indexed)."""
        return self.catalogue.position(pid)

    def query(self, text: str) -> "QueryScores":
        """The BM25 scores of question ``text``, computed where they are asked for."""
        return QueryScores(self, text)

    def scores(self, query: str) -> np.ndarray | None:
        """BM25 score of every position for ``query`` (None when no query word is indexed), by
        reading every posting of every word: the reference that ``QueryScores`` must equal. A word
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
        that contain it. Words no document contains are left out, unless ``unindexed`` (then they
        come with no documents and the highest IDF: a question about something no decision
        mentions). Reads every posting: searches use ``QueryScores.words`` instead."""
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
        """The best ``k`` of a full ``scores`` array as ``(passage_id, BM25 score)``; only positions
        where ``allowed`` (a bool per position) is true, if given."""
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
        return [(self.ids[p], s) for p, s in self.query(query).top(k, allowed)]


# Scores compared while pruning may differ from the exact ones in their last bits (float32 sums in
# another order); a passage is dropped only when it falls short by more than this.
_SLACK = 1e-3


class _Word:
    """A distinct word of a question: how often the question has it, its IDF and its postings."""

    __slots__ = ("term", "repeats", "idf", "slices", "dense", "bound")

    def __init__(self, term: str, repeats: int, idf: float, slices: list, dense: np.ndarray | None, peak: float) -> None:
        self.term, self.repeats, self.idf, self.slices, self.dense = term, repeats, idf, slices, dense
        # The most this word adds to a passage's score (a little over, for float32's rounding).
        self.bound = repeats * idf * min(1.0, peak * (1 + 1e-5))


class QueryScores:
    """The BM25 scores of one question, without scoring every passage.

    ``top`` finds the best passages exactly by max-score pruning: words are taken rarest first
    (highest IDF); once the words left could not lift a passage that has none of the words so far
    past the k-th best score yet, the remaining (common) words are only looked up for the
    passages still in contention, by binary search in their postings, instead of read whole.
    Common words ("council", "complaint") have postings in most of an archive's passages, so a
    search reads a small share of them. ``at`` gives exact scores of any positions, in the same
    float32 arithmetic as ``LexicalIndex.scores`` (so the two agree to the bit).
    """

    def __init__(self, index: LexicalIndex, text: str) -> None:
        self.index = index
        self.tokens = tokenize(text) if index.documents else []
        self.words: list[_Word] = []
        self.unindexed: list[str] = []
        for term, repeats in Counter(self.tokens).items():
            df = index.document_frequency(term)
            if df:
                self.words.append(_Word(term, repeats, index.idf(df), index._slices(term), index.dense_counts(term),
                                        index.peak(term)))
            else:
                self.unindexed.append(term)
        self._word = {w.term: w for w in self.words}
        self._best: float | None = None
        self._key = " ".join(self.tokens)  # what the scores depend on
        self._seen = 0.0  # the highest exact score found so far (of any passage, allowed or not)

    def __bool__(self) -> bool:
        return bool(self.words)

    # -- lookups ---------------------------------------------------------------------------------

    def counts(self, word: _Word, positions: np.ndarray) -> np.ndarray:
        """How often ``word`` occurs in the passage at each of ``positions`` (0: not at all, or a dead copy)."""
        if word.dense is not None:
            return word.dense[positions].astype(np.float32)
        out = np.zeros(len(positions), dtype=np.float32)
        for first, end, docs, tfs in word.slices:
            inside = np.flatnonzero((positions >= first) & (positions < end))
            if not len(inside):
                continue
            # In the postings' own type: searching int32 postings for int64 values would copy
            # every posting to int64 first.
            local = (positions[inside] - first).astype(docs.dtype)
            at = np.searchsorted(docs, local).clip(max=len(docs) - 1)
            found = docs[at] == local
            out[inside[found]] = tfs[at[found]]
        return np.where(self.index.catalogue.live[positions], out, 0.0).astype(np.float32) if len(positions) else out

    def at(self, positions) -> np.ndarray:
        """Exact BM25 scores (float32) of the passages at ``positions``."""
        return self.read(positions)[0]

    def contains(self, positions, unindexed: bool = False) -> list[tuple[float, np.ndarray]]:
        """For each distinct word: its IDF and whether each passage at ``positions`` has it (words
        no passage has are left out, unless ``unindexed``: then they come with the highest IDF and
        found nowhere)."""
        return self.read(positions, unindexed)[1]

    def read(self, positions, unindexed: bool = False) -> tuple[np.ndarray, list[tuple[float, np.ndarray]]]:
        """``at`` and ``contains`` of the same passages, looking each word up once."""
        positions = np.asarray(positions, dtype=np.int64)
        scores = np.zeros(len(positions), dtype=np.float32)
        counts = {w.term: self.counts(w, positions) for w in self.words}
        if len(positions):
            norm = self.index._norm[positions]
            for term in self.tokens:  # in the question's order, repeats included, as ``scores`` adds them
                if term in counts:
                    tfs = counts[term]
                    scores += self._word[term].idf * tfs / (tfs + norm)
        words = [(w.idf, counts[w.term] > 0) for w in self.words]
        if unindexed:
            words += [(self.index.idf(0), np.zeros(len(positions), dtype=bool)) for _ in self.unindexed]
        return scores, words

    # -- the best passages -----------------------------------------------------------------------

    @property
    def best(self) -> float:
        """The highest score of any live passage (0 when none has a word of the question). Kept by
        the index for the last ``BEST_KEPT`` questions: an answer searches its question several
        times (the archive, then the decisions it quotes), and a user asks one question with
        one filter and then another."""
        if self._best is None:
            found = self.index._best.get(self._key)
            if found is None:
                top = self.top(1)  # records it
                found = top[0][1] if top else 0.0
            self._best = found
        return self._best

    def _keep_best(self, value: float) -> None:
        self._best = value
        kept = self.index._best
        with self.index._dense_lock:
            kept[self._key] = value
            kept.move_to_end(self._key)
            while len(kept) > BEST_KEPT:
                kept.popitem(last=False)

    def top(self, k: int, allowed: np.ndarray | None = None) -> list[tuple[int, float]]:
        """The best ``k`` live passages (only where ``allowed``, a bool per position, if given) as
        ``(position, score)``, best first, ties in position order: exactly those of ``scores``."""
        if k <= 0 or not self.words:
            return []
        # A passage already scored exactly is a floor for the best of all (a search restricted to
        # some decisions asks for theirs first, then for the highest score of any passage).
        floor = self._seen if allowed is None and k == 1 else 0.0
        cat = self.index.catalogue
        words = sorted(self.words, key=lambda w: (-w.bound, w.term))
        bounds = [w.bound for w in words]
        left = np.cumsum(bounds[::-1])[::-1]  # what words i.. can still add
        acc = np.zeros(cat.size, dtype=np.float32)
        found: list[np.ndarray] = []  # positions with a score so far, each once
        i = 0
        while i < len(words):
            if i and left[i] < floor - _SLACK:
                break
            # No partial score exceeds what the words so far can add: only then can the k-th best pass left[i].
            if i and left[i] < sum(bounds[:i]) and sum(len(f) for f in found) >= k:
                found = [np.concatenate(found)]
                if left[i] < max(floor, _kth(acc[found[0]], k)) - _SLACK:
                    break  # no passage without the words so far can reach the best k
            docs, tfs = self._read(words[i], allowed)
            found.append(docs[acc[docs] == 0])  # scores are positive: 0 is a passage not seen yet
            acc[docs] += words[i].repeats * (words[i].idf * tfs / (tfs + self.index._norm[docs]))
            i += 1
        cand = np.concatenate(found) if found else np.zeros(0, np.int64)
        partial = acc[cand]
        for j in range(i, len(words)):  # the common words: looked up for passages in contention
            if len(cand) > k or floor:
                keep = partial + left[j] >= max(floor, _kth(partial, k)) - _SLACK
                cand, partial = cand[keep], partial[keep]
            tfs = self.counts(words[j], cand)
            partial = partial + words[j].repeats * (words[j].idf * tfs / (tfs + self.index._norm[cand]))
        if len(cand) > k:
            keep = partial >= _kth(partial, k) - _SLACK
            cand = cand[keep]
        exact = self.at(cand)
        keep = exact > 0
        cand, exact = cand[keep], exact[keep]
        order = np.lexsort((cand, -exact))[:k]
        if len(order):
            self._seen = max(self._seen, float(exact[order[0]]))
        if allowed is None:
            self._keep_best(float(exact[order[0]]) if len(order) else 0.0)
        return [(int(cand[o]), float(exact[o])) for o in order]

    def _read(self, word: _Word, allowed: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """All of ``word``'s live (and allowed) postings: positions and counts."""
        if len(word.slices) == 1 and allowed is None and word.slices[0][0] == 0 and self.index._all_live[0]:
            _, _, d, tf = word.slices[0]  # one segment, nothing dead: the postings as they are kept
            return d, tf.astype(np.float32)
        docs, tfs = [], []
        for first, _, d, tf in word.slices:
            docs.append(np.asarray(d, dtype=np.int64) + first)
            tfs.append(tf)
        docs_a, tfs_a = np.concatenate(docs), np.concatenate(tfs).astype(np.float32)
        keep = self.index.catalogue.live[docs_a]
        if allowed is not None:
            keep &= allowed[docs_a]
        return docs_a[keep], tfs_a[keep]


def _kth(values: np.ndarray, k: int) -> float:
    """The ``k``-th largest of ``values`` (the smallest when there are fewer). For many values, a
    sample's quantile first picks the few worth sorting: when at least ``k`` values reach it, the
    ``k``-th largest is among them."""
    if len(values) <= k:
        return float(values.min()) if len(values) else 0.0
    if len(values) > 64 * k:
        sample = values[:: len(values) // (16 * k)]
        cut = np.partition(sample, len(sample) - 4)[len(sample) - 4]  # about the 4k-th largest of all
        top = values[values >= cut]
        if len(top) >= k:
            values = top
    return float(np.partition(values, len(values) - k)[len(values) - k])
