"""Sentence similarity for answers: the question's and the sentences' embeddings, computed once
and cached, and the relevance of a set of hits (their best sentence's cosine to the question)."""

from __future__ import annotations

import re
import threading

import numpy as np

from index.sentence import split_sentences
from rag.parameters import SENTENCE_HITS

CACHE_LIMIT = 100_000  # sentence vectors kept before the cache starts again (~150 MB)


# A list item's bullet, letter or number at the start of a line ("• ", "a) ", "(ii) ", "3. ").
ITEM_MARKER = re.compile(r"^\s*(?:[•·▪◦*–-]|\(?[a-z]{1,3}\)|\(?\d{1,2}[.)])\s+")


def sentences(text: str) -> list[str]:
    """The sentences of a paragraph that can be quoted: verbatim substrings of ``text``."""
    return [s for s in split_sentences(text) if s in text and re.search(r"[A-Za-z]{2}", s)]


class Similarity:
    """Embeds texts with the archive's model, each distinct text once. Thread-safe."""

    def __init__(self, embedder_source) -> None:
        self._embedder_source = embedder_source  # a callable giving the embedder, loaded when first needed
        self._vectors: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    def embed(self, texts: list[str]) -> np.ndarray:
        with self._lock:
            todo = list(dict.fromkeys(t for t in texts if t not in self._vectors))
        if todo:
            vectors = self._embedder_source().embed(todo)
            with self._lock:
                if len(self._vectors) > CACHE_LIMIT:
                    self._vectors.clear()
                self._vectors.update(zip(todo, vectors))
        with self._lock:
            missing = [t for t in texts if t not in self._vectors]
        if missing:  # cleared by another thread between the two steps
            self._vectors.update(zip(missing, self._embedder_source().embed(missing)))
        with self._lock:
            return np.stack([self._vectors[t] for t in texts]) if texts else np.zeros((0, 384), np.float32)

    def forget(self) -> None:
        """Drop every embedding kept (a benchmark's cold start)."""
        with self._lock:
            self._vectors.clear()

    def question(self, query) -> np.ndarray:
        """The vector of what the question asks (its content, without references)."""
        return self.embed([query.content])[0]

    def relevance(self, query, hits) -> float:
        """How well the best sentence of the first ``SENTENCE_HITS`` hits matches the question
        (cosine; 0 with no hits). Only the first few: embedding every sentence of every hit was
        most of the time an answer took."""
        # Without their bullets: the strings the answer's sentence selection embeds, embedded once.
        found = [ITEM_MARKER.sub("", s) for h in hits[:SENTENCE_HITS] for s in sentences(h.text)]
        if not found:
            return 0.0
        return float(np.max(self.embed(found) @ self.question(query)))
