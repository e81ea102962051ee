"""The lexical index: BM25 (bm25s) over passage texts, saved as plain files beside the Chroma data.

Dense vectors blur exact words ("Safety Plan", "section 26(6)(c)", "Disabled Facilities Grant");
BM25 does not. Statute provisions and references are kept as whole tokens so they match exactly.
The saved index records the store fingerprint it was built from, so a stale one is detected.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

_WORD_RE = re.compile(r"\d+[a-z]{0,3}(?:\(\w{1,4}\))+|[a-z0-9]+(?:['’][a-z]+)?")
_REF_RE = re.compile(r"\b(\d{2})[ \-/]?(\d{3})[ \-/]?(\d{3})([a-z]?)\b")


def _bm25s():
    """bm25s, imported on first use; it sets its own logger to DEBUG on import, which we undo."""
    import bm25s

    logging.getLogger("bm25s").setLevel(logging.WARNING)
    return bm25s


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


class LexicalIndex:
    """BM25 over passages; ``ids[i]`` is the passage id of document ``i``."""

    def __init__(self, ids: list[str], model) -> None:
        self.ids = ids
        self.model = model
        self._pos = {pid: i for i, pid in enumerate(ids)}

    @classmethod
    def build(cls, ids: list[str], texts: list[str]) -> "LexicalIndex":
        return cls.from_tokens(ids, [tokenize(t) for t in texts])

    @classmethod
    def from_tokens(cls, ids: list[str], tokens: list[list[str]]) -> "LexicalIndex":
        """BM25 over documents already tokenised with ``tokenize`` (the catalogue keeps them so)."""
        bm25s = _bm25s()
        model = bm25s.BM25()
        if ids:
            model.index([t or ["_empty_"] for t in tokens], show_progress=False)
        return cls(list(ids), model)

    def save(self, folder: Path, fingerprint: str, extra: dict[str, object] | None = None,
             arrays: dict[str, np.ndarray | Path] | None = None) -> None:
        """Write atomically, with ``extra`` JSON files and ``arrays`` (``.npy``) beside it: a reader
        never sees a half-written index. An array given as the path of a ``.npy`` file on the same
        file system is moved in, not copied."""
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".lexical-"))
        if self.ids:
            self.model.save(str(tmp), show_progress=False)
        (tmp / "ids.json").write_text(json.dumps(self.ids))
        for name, body in (extra or {}).items():
            (tmp / name).write_text(json.dumps(body, ensure_ascii=False))
        for name, array in (arrays or {}).items():
            if isinstance(array, Path):
                os.replace(array, tmp / name)
            else:
                np.save(tmp / name, array)
        (tmp / "fingerprint").write_text(fingerprint)
        old = folder.with_name(folder.name + ".old")
        if folder.exists():
            os.replace(folder, old)
        os.replace(tmp, folder)
        shutil.rmtree(old, ignore_errors=True)

    @staticmethod
    def saved_fingerprint(folder: Path) -> str:
        """The fingerprint of the saved index, or "" when there is none."""
        try:
            return (folder / "fingerprint").read_text().strip()
        except OSError:
            return ""

    @classmethod
    def load(cls, folder: Path) -> tuple["LexicalIndex | None", str]:
        """The saved index and the fingerprint it was built from; (None, "") when there is none."""
        try:
            fingerprint = (folder / "fingerprint").read_text().strip()
            ids = json.loads((folder / "ids.json").read_text())
        except (OSError, ValueError):
            return None, ""
        bm25s = _bm25s()
        if not ids:
            return cls([], bm25s.BM25()), fingerprint
        try:
            model = bm25s.BM25.load(str(folder), show_progress=False)
        except Exception as e:
            log.warning("the lexical index at %s cannot be read (%s); it will be rebuilt", folder, e)
            return None, ""
        return cls(ids, model), fingerprint

    def position(self, pid: str) -> int:
        """The document number of passage ``pid`` (-1 when it is not indexed)."""
        return self._pos.get(pid, -1)

    def scores(self, query: str) -> np.ndarray | None:
        """BM25 score of every document for ``query`` (None when no query word is indexed)."""
        if not self.ids:
            return None
        vocab = self.model.vocab_dict
        tokens = [t for t in tokenize(query) if t in vocab]
        if not tokens:
            return None
        # Scores for every document at once: cheaper than bm25s' retrieve(), which runs a thread
        # pool and a progress bar for each query.
        return np.asarray(self.model.get_scores(tokens), dtype=np.float32)

    def postings(self, query: str, unindexed: bool = False) -> list[tuple[float, np.ndarray]]:
        """For each distinct word of ``query``: its inverse document frequency and the documents
        that contain it (what "how many of the question's words does it have" needs). Words no
        document contains are left out, unless ``unindexed`` (then they come with no documents
        and the highest IDF: a question about something no decision mentions)."""
        if not self.ids:
            return []
        vocab = self.model.vocab_dict
        matrix = self.model.scores
        n = len(self.ids)
        out = []
        for t in dict.fromkeys(tokenize(query)):
            tid = vocab.get(t)
            if tid is None:
                if unindexed:
                    out.append((float(np.log(1 + (n + 0.5) / 0.5)), np.zeros(0, dtype=np.int64)))
                continue
            docs = matrix["indices"][matrix["indptr"][tid]: matrix["indptr"][tid + 1]]
            out.append((float(np.log(1 + (n - len(docs) + 0.5) / (len(docs) + 0.5))), docs))
        return out

    def top(self, scores: np.ndarray | None, k: int, allowed: set[str] | None = None) -> list[tuple[str, float]]:
        """The best ``k`` of ``scores`` as ``(passage_id, BM25 score)``; only ``allowed`` ids if given."""
        if scores is None:
            return []
        if allowed is not None:
            mask = np.zeros(len(self.ids), dtype=np.float32)
            for pid in allowed:
                i = self._pos.get(pid)
                if i is not None:
                    mask[i] = 1.0
            scores = scores * mask
        k = min(k, len(self.ids))
        top = np.argpartition(-scores, k - 1)[:k] if k < len(self.ids) else np.arange(len(self.ids))
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(self.ids[int(i)], float(scores[i])) for i in top if scores[i] > 0]

    def search(self, query: str, k: int, allowed: set[str] | None = None) -> list[tuple[str, float]]:
        """Best ``k`` passages for ``query`` as ``(passage_id, BM25 score)``; only ``allowed`` ids if given."""
        return self.top(self.scores(query), k, allowed)
