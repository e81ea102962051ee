"""Segments: immutable slices of the catalogue, written once and memory-mapped when read.

A segment holds what the retriever needs of a set of decisions: their metadata, one record per
passage (named columns), the passages' BM25 postings, and one int8 copy of their window vectors
with a coarse clustering of them for approximate nearest-neighbour search. Ingest writes a segment
per run (or per ``SEGMENT_WINDOWS`` windows of a long one), so adding decisions costs what they
cost, whatever the archive's size; the catalogue merges small segments when there are too many.

Files of a segment folder (arrays are ``.npy``, opened with ``mmap_mode="r"``):

- ``decisions.json``: a record per decision (reference, content hash, authority, category, outcome,
  date, URL, aliases, facts, ``first`` passage and passage ``count``).
- ``strings.json``: the tables the integer columns point into (sections, subsections, statutes,
  BM25 terms).
- ``passages.npy``: one record per passage, with named fields (``PASSAGE_DTYPE``).
- ``statutes.npy``: statute numbers of the passages, ``statute_start``/``statute_count`` of each.
- ``term_start.npy``, ``posting_doc.npy``, ``posting_tf.npy``: BM25 postings by term.
- ``vectors.npy`` (int8) and ``scales.npy`` (float32): window ``w`` is ``vectors[w] * scales[w]``
  (in segments without clusters).
- ``window_passage.npy``: the passage of each window.
- ``text_bytes.npy`` (uint8) and ``text_start.npy``: the passages' texts, UTF-8, one after the
  other (passage ``p`` is bytes ``text_start[p]`` to ``text_start[p + 1]``), so that a search
  shows its hits without reading their decisions from the store. A segment written without them
  gets them when a catalogue is opened (from the decisions in the store, written beside them).
- ``decision_vectors.npy`` (int8) and ``decision_scales.npy``: each decision's direction as a whole
  (the sum of its windows, normalised), quantised like the windows. A segment written without
  them gets them the first time it is opened (made from its windows, written beside them).
- ``centroids.npy``, ``cluster_start.npy``, ``cluster_rows.npy``: windows grouped by nearest
  centroid (only in segments of at least ``CLUSTER_MIN_WINDOWS`` windows). Such a segment keeps
  its one copy of the vectors in cluster order instead, so that a probed cluster is one run of
  memory: ``slot_vectors.npy`` and ``slot_scales.npy`` (cluster ``c``'s windows
  ``cluster_rows[a:b]`` are slots ``a = cluster_start[c]`` to ``b``) and ``window_slot.npy``,
  each window's slot. A segment written in window order is rewritten so the first time it is opened.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from index.decision import Decision
from index.facts import facts_of
from index.lexical import tokenize
from index.passage import SUMMARY, Passage
from index.store import DecisionWrite

log = logging.getLogger(__name__)

PASSAGE_DTYPE = np.dtype([
    ("decision", "<i4"),       # row of decisions.json
    ("paragraph", "<i4"),      # the LGSCO's number; -1 for the Summary
    ("section", "<i4"),        # into strings.sections
    ("subsection", "<i4"),     # into strings.subsections
    ("boilerplate", "<u8"),    # the passage's boilerplate key (index.passage.boilerplate_key) as a number
    ("tokens", "<i4"),         # tiktoken count of the passage text
    ("length", "<i4"),         # BM25 document length (its tokens, with repeats)
    ("statute_start", "<i8"),  # into statutes.npy
    ("statute_count", "<i4"),
    ("window_start", "<i8"),   # its first window; its windows are consecutive
    ("window_count", "<i4"),
])
# Segments with at least this many windows are searched by cluster; smaller ones exactly (scoring
# 20,000 int8 windows takes about as long as probing the clusters of a large segment).
CLUSTER_MIN_WINDOWS = 20_000
# Windows per cluster, on average: sqrt-sized clusterings keep both the centroid scan and the
# probed rows small. The number probed is ``rag.parameters.DENSE_PROBES``.
WINDOWS_PER_CLUSTER = 400
KMEANS_SAMPLE = 60_000
KMEANS_ROUNDS = 8


class CatalogueFileError(RuntimeError):
    """A segment's files are not all there; the message names the segment and what to do."""


@dataclass
class Part:
    """One decision's share of a segment, before it is written."""

    decision: dict  # the record decisions.json keeps
    passages: list[Passage]
    tokens: list[list[str]]  # BM25 tokens of each passage
    window_counts: list[int]
    vectors: np.ndarray  # float32, one row per window

    @property
    def reference(self) -> str:
        return self.decision["ref"]


def decision_record(decision: Decision, passages: list[Passage]) -> dict:
    """What a segment keeps of a decision beside its passages (its aliases: those its passages name)."""
    return {
        "ref": decision.reference, "content_hash": decision.content_hash, "authority": decision.authority,
        "category": decision.category_path, "outcome": decision.outcome,
        "decision_date": decision.decision_date.isoformat() if decision.decision_date else "",
        "url": decision.url, "paragraphs": len(decision.paragraphs),
        "aliases": sorted({a for p in passages for a in p.aliases}),
        "facts": facts_of(decision).to_json(),
    }


def part_of(decision: Decision, passages: list[Passage], window_counts: list[int], vectors: np.ndarray) -> Part:
    if sum(window_counts) != len(vectors):
        raise ValueError(f"{decision.reference}: {len(vectors)} vectors for {sum(window_counts)} windows")
    record = decision_record(decision, passages)
    # BM25 indexes what the encoder embeds: the heading gives short paragraphs the words of their role.
    tokens = [tokenize(p.embedding_text()) or ["_empty_"] for p in passages]
    return Part(record, passages, tokens, list(window_counts), np.asarray(vectors, dtype=np.float32))


def parts_of_writes(batch: list[DecisionWrite]) -> list[Part]:
    """Parts of decisions just written to the store (ingest's writer calls this)."""
    return [part_of(w.decision, w.passages, [len(ws) for ws in w.windows], w.vectors) for w in batch]


def columns_of_writes(batch: list[DecisionWrite], dimension: int) -> "Columns":
    """The catalogue's columns of decisions just written to the store (ingest's writer makes them
    batch by batch; ``concatenate`` joins them into one segment's)."""
    return columns_of_parts(parts_of_writes(batch), dimension)


def quantise(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """int8 rows and a scale per row: a quarter of float32's size, cosine within about 0.002 of it
    for unit vectors (``python -m eval.bench_search`` reports the ranking agreement)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    peak = np.abs(vectors).max(axis=1) if len(vectors) else np.zeros(0, np.float32)
    scales = np.where(peak > 0, peak / 127.0, 1.0).astype(np.float32)
    return np.round(vectors / scales[:, None]).astype(np.int8), scales


# Rows converted to float32 at a time by ``dot_rows``: 1.5 MB for 384 dimensions, within a core's
# cache. Speed only (256 rows: 20% slower).
DOT_BLOCK = 1024
DOT_GROUP = 16  # rows a block is padded to a multiple of (see ``dot_rows``)
_buffers = threading.local()


def dot_rows(vectors: np.ndarray, vector: np.ndarray, runs: list[tuple[int, int]] | None = None) -> np.ndarray:
    """``vectors @ vector`` for int8 ``vectors`` (each row, or the rows of each ``(start, end)`` of
    ``runs``, in order) and a float32 ``vector``. A block of rows at a time is converted into a
    float32 buffer that stays in cache and multiplied there by BLAS: about 1.8 times as fast as
    numpy's mixed int8/float32 product, which converts as it goes, and the same but for the order
    of float32 sums (a relative difference of about 1e-7). Blocks are padded with zero rows to a
    multiple of ``DOT_GROUP``: BLAS computes a block's last few rows with another kernel, and
    identical rows (a standard paragraph in many decisions) must score identically wherever they
    fall, or ties between them would be broken by rounding instead of by position."""
    vector = np.asarray(vector, dtype=np.float32)
    runs = [(0, len(vectors))] if runs is None else runs
    out = np.empty(sum(b - a for a, b in runs), dtype=np.float32)
    if not len(out):
        return out
    buffer = getattr(_buffers, "rows", None)
    if buffer is None or buffer.shape[1] != vectors.shape[1]:
        buffer = _buffers.rows = np.empty((DOT_BLOCK, vectors.shape[1]), dtype=np.float32)
    at = 0
    for a, b in runs:
        for start in range(a, b, DOT_BLOCK):
            end = min(start + DOT_BLOCK, b)
            n = end - start
            padded = -(-n // DOT_GROUP) * DOT_GROUP
            np.copyto(buffer[:n], vectors[start:end], casting="unsafe")
            buffer[n:padded] = 0.0
            out[at: at + n] = np.dot(buffer[:padded], vector)[:n]
            at += n
    return out


def take_rows(array: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``array[rows]`` for a 2-D array: ``np.take`` copies each row whole, about twice as fast as
    indexing, which copies element by element (20,000 scattered rows of 384 bytes: 2.5 ms instead
    of 4.8 ms, a named council's passages at 1.5 million paragraphs)."""
    return np.take(np.asarray(array), rows, axis=0)


def kmeans(sample: np.ndarray, k: int, rounds: int = KMEANS_ROUNDS, seed: int = 7) -> np.ndarray:
    """Spherical k-means centroids of ``sample`` (float32 unit rows)."""
    rng = np.random.default_rng(seed)
    centroids = sample[rng.choice(len(sample), k, replace=False)].copy()
    for _ in range(rounds):
        nearest = np.argmax(sample @ centroids.T, axis=1)
        sums = np.zeros_like(centroids)
        np.add.at(sums, nearest, sample)
        empty = ~sums.any(axis=1)
        sums[empty] = sample[rng.choice(len(sample), int(empty.sum()), replace=False)]
        centroids = sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-9)
    return centroids.astype(np.float32)


class _Table:
    """Strings to small integers, in order of first sight."""

    def __init__(self, values: list[str] = ()) -> None:
        self.index: dict[str, int] = {}
        for v in values:
            self(v)

    def __call__(self, value: str) -> int:
        return self.index.setdefault(value, len(self.index))

    def remap(self, values: list[str]) -> np.ndarray:
        """The ids in this table of another table's ``values`` (added when new)."""
        return np.asarray([self(v) for v in values], dtype=np.int64)

    @property
    def values(self) -> list[str]:
        return list(self.index)


@dataclass
class Columns:
    """A segment's content in memory: what ``save`` writes and ``merge`` concatenates."""

    decisions: list[dict]
    sections: list[str]
    subsections: list[str]
    statutes: list[str]
    terms: list[str]
    passages: np.ndarray  # PASSAGE_DTYPE
    statute_ids: np.ndarray
    posting_term: np.ndarray  # one entry per (term, passage): the term's id
    posting_doc: np.ndarray
    posting_tf: np.ndarray
    vectors: np.ndarray  # int8
    scales: np.ndarray
    text_bytes: np.ndarray | None = None  # uint8: the passages' texts, UTF-8, one after the other
    text_start: np.ndarray | None = None  # int64, one more than passages: where each text starts
    # Each decision's direction (``decision_vectors``), when made with the rows (ingest's writer
    # makes them batch by batch, beside the encoder); None: made when the segment is saved.
    decision_vectors: tuple[np.ndarray, np.ndarray] | None = None


def texts_of(texts) -> tuple[np.ndarray, np.ndarray]:
    """``text_bytes`` and ``text_start`` of some texts (any iterable), in order: encoded one at a
    time into one buffer, never a list of them all (an archive's are half a gigabyte)."""
    text_bytes, lengths = bytearray(), []
    for text in texts:
        encoded = text.encode("utf-8")
        text_bytes += encoded
        lengths.append(len(encoded))
    start = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=start[1:])
    return np.frombuffer(text_bytes, dtype=np.uint8), start


def boilerplate_number(key: str) -> int:
    """A passage's boilerplate key (16 hex digits) as the integer a segment stores."""
    return int(key, 16)


def boilerplate_text(number: int) -> str:
    return f"{int(number):016x}"


def columns_of_parts(parts: list[Part], dimension: int) -> Columns:
    """The columns of some parts. Ingest's writer makes them beside the encoder, whose cores they
    share, so they are made a column at a time: each passage field set as a whole column, and the
    postings counted at once (``_postings``), instead of a record and a ``Counter`` per passage:
    0.28 to 0.34 s of CPU instead of 0.49 to 0.55 s for the 16,780 passages of
    ``python -m eval.bench_ingest``'s copies, the same columns (one thread, four alternations after
    one to warm up; one-off timing)."""
    sections, subsections, statutes, terms = _Table(), _Table(), _Table(), _Table()
    passages = [p for part in parts for p in part.passages]
    rows = np.zeros(len(passages), dtype=PASSAGE_DTYPE)
    decisions, at = [], 0
    for part in parts:
        decisions.append({**part.decision, "first": at, "count": len(part.passages)})
        at += len(part.passages)
    window_counts = [n for part in parts for n in part.window_counts]
    lengths = [len(toks) for part in parts for toks in part.tokens]
    p_term, p_doc, p_tf = _postings([t for part in parts for toks in part.tokens for t in toks], lengths, terms)
    statute_ids: list[int] = []
    if passages:
        rows["decision"] = np.repeat(np.arange(len(parts)), [len(part.passages) for part in parts])
        rows["paragraph"] = [-1 if p.paragraph == SUMMARY else int(p.paragraph) for p in passages]
        rows["section"] = [sections(p.section) for p in passages]
        rows["subsection"] = [subsections(p.subsection) for p in passages]
        rows["boilerplate"] = [boilerplate_number(p.boilerplate_key) for p in passages]
        rows["tokens"] = [p.token_count for p in passages]
        rows["length"] = lengths
        statute_counts = [len(p.statutes) for p in passages]
        rows["statute_count"] = statute_counts
        rows["statute_start"] = starts_of(statute_counts)
        statute_ids = [statutes(s) for p in passages for s in p.statutes]
        rows["window_count"] = window_counts
        rows["window_start"] = starts_of(window_counts)
    vectors = np.concatenate([p.vectors for p in parts]) if parts else np.zeros((0, dimension), np.float32)
    q, scales = quantise(vectors)
    text_bytes, text_start = texts_of(p.text for part in parts for p in part.passages)
    return Columns(decisions, sections.values, subsections.values, statutes.values, terms.values, rows,
                   np.asarray(statute_ids, dtype=np.int32), p_term, p_doc, p_tf, q, scales,
                   text_bytes, text_start, decision_vectors(q, scales, rows, len(decisions)))


def _postings(tokens: list[str], lengths: list[int], terms: _Table) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """BM25 postings of passages whose tokens are ``tokens`` (one after the other, ``lengths`` of
    them each): term id (terms added to ``terms`` in order of first sight), passage and term
    frequency (at most 65,535), each passage's in the order its terms first occur in it (as a
    ``Counter`` per passage gives them, so that columns made batch by batch and joined are those
    made at once). Counted with one ``np.unique`` over (passage, term) keys."""
    ids = np.fromiter(map(terms, tokens), dtype=np.int64, count=len(tokens))
    docs = np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)
    width = max(len(terms.index), 1)
    keys, first, tf = np.unique(docs * width + ids, return_index=True, return_counts=True)
    order = np.argsort(first, kind="stable")
    keys, tf = keys[order], tf[order]
    return ((keys % width).astype(np.int32), (keys // width).astype(np.int32),
            np.minimum(tf, 65535).astype(np.uint16))


def columns_of_segment(segment: "Segment", keep: np.ndarray) -> Columns:
    """The decisions ``keep`` (bool per decision) of a written segment, as columns."""
    decisions = []
    passage_keep = keep[segment.passages["decision"]]
    new_row = np.cumsum(passage_keep) - 1
    rows = np.array(segment.passages[passage_keep])
    old_of_decision = np.flatnonzero(keep)
    renumber = np.full(len(keep), -1, dtype=np.int64)
    renumber[old_of_decision] = np.arange(len(old_of_decision))
    at = 0
    for d in old_of_decision:
        rec = dict(segment.decisions[d])
        rec["first"] = at
        at += rec["count"]
        decisions.append(rec)
    # statutes and windows of the kept passages, renumbered
    starts, counts = rows["statute_start"], rows["statute_count"]
    statute_ids = np.asarray(segment.statute_ids)[spans(starts, counts)] if len(rows) else np.zeros(0, np.int32)
    rows["statute_start"] = starts_of(counts)
    w_starts, w_counts = rows["window_start"].copy(), rows["window_count"]
    windows = spans(w_starts, w_counts)
    rows["window_start"] = starts_of(w_counts)
    rows["decision"] = renumber[rows["decision"]]
    terms = np.repeat(np.arange(len(segment.term_start) - 1, dtype=np.int32), np.diff(segment.term_start))
    docs = np.asarray(segment.posting_doc)
    live = passage_keep[docs]
    text_bytes = text_start = None
    if segment.text_start is not None:
        kept = np.flatnonzero(passage_keep)
        first, ends = segment.text_start[kept], segment.text_start[kept + 1]
        # A slice per kept decision (its passages' texts are one run), not an index per byte.
        runs = [(int(segment.text_start[rec["first"]]), int(segment.text_start[rec["first"] + rec["count"]]))
                for rec in (segment.decisions[d] for d in old_of_decision)]
        source = segment.text_bytes
        text_bytes = np.concatenate([np.asarray(source[a:b]) for a, b in runs] or [np.zeros(0, np.uint8)]).astype(np.uint8)
        text_start = np.concatenate(([0], np.cumsum(ends - first))).astype(np.int64)
    return Columns(decisions, segment.sections, segment.subsections, segment.statutes, list(segment.terms),
                   rows, statute_ids.astype(np.int32), terms[live], new_row[docs[live]].astype(np.int32),
                   np.asarray(segment.posting_tf)[live], *segment.window_rows(windows), text_bytes, text_start)


def starts_of(counts) -> np.ndarray:
    """Where each of some runs, ``counts`` long one after the other, starts (none for none)."""
    counts = np.asarray(counts, dtype=np.int64)
    return np.cumsum(counts) - counts


def spans(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The indices ``start .. start + count`` of each pair, concatenated."""
    counts = np.asarray(counts, dtype=np.int64)
    if not len(counts) or not counts.sum():
        return np.zeros(0, dtype=np.int64)
    ends = np.cumsum(counts)
    offsets = np.repeat(np.asarray(starts, dtype=np.int64) - (ends - counts), counts)
    return np.arange(ends[-1], dtype=np.int64) + offsets


def concatenate(parts: list[Columns]) -> Columns:
    """One segment's columns from several (their strings merged, their rows renumbered)."""
    sections, subsections, statutes, terms = _Table(), _Table(), _Table(), _Table()
    decisions, rows, statute_ids, p_term, p_doc, p_tf = [], [], [], [], [], []
    at = n_decisions = n_statutes = n_windows = 0
    for c in parts:
        for rec in c.decisions:
            decisions.append({**rec, "first": rec["first"] + at})
        r = c.passages.copy()
        r["decision"] += n_decisions
        r["section"] = sections.remap(c.sections)[r["section"]] if len(r) else r["section"]
        r["subsection"] = subsections.remap(c.subsections)[r["subsection"]] if len(r) else r["subsection"]
        r["statute_start"] += n_statutes
        r["window_start"] += n_windows
        rows.append(r)
        statute_ids.append(statutes.remap(c.statutes)[c.statute_ids] if len(c.statute_ids) else c.statute_ids)
        p_term.append(terms.remap(c.terms)[c.posting_term] if len(c.posting_term) else c.posting_term)
        p_doc.append(c.posting_doc.astype(np.int64) + at)
        p_tf.append(c.posting_tf)
        at += len(r)
        n_decisions += len(c.decisions)
        n_statutes += len(c.statute_ids)
        n_windows += len(c.vectors)
    dim = parts[0].vectors.shape[1]
    text_bytes = text_start = None
    if all(c.text_start is not None for c in parts):  # else the merged segment gets them when opened
        text_bytes = np.concatenate([c.text_bytes for c in parts]).astype(np.uint8)
        shifts = np.cumsum([0] + [int(c.text_start[-1]) for c in parts[:-1]])
        text_start = np.concatenate([[0]] + [c.text_start[1:] + shift for c, shift in zip(parts, shifts)]).astype(np.int64)
    directions = None
    if all(c.decision_vectors is not None for c in parts):
        directions = (np.concatenate([c.decision_vectors[0] for c in parts]).reshape(-1, dim),
                      np.concatenate([c.decision_vectors[1] for c in parts]))
    return Columns(decisions, sections.values, subsections.values, statutes.values, terms.values,
                   np.concatenate(rows), np.concatenate(statute_ids).astype(np.int32),
                   np.concatenate(p_term).astype(np.int32), np.concatenate(p_doc).astype(np.int32),
                   np.concatenate(p_tf), np.concatenate([c.vectors for c in parts]).reshape(-1, dim),
                   np.concatenate([c.scales for c in parts]), text_bytes, text_start, directions)


def write_segment(folder: Path, columns: Columns) -> None:
    """Write ``columns`` as a segment at ``folder`` (atomically: built beside it, then renamed)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}-"))
    try:
        _save(tmp, columns)
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _slotted(vectors: np.ndarray, scales: np.ndarray, cluster_rows: np.ndarray) -> dict[str, np.ndarray]:
    """The vectors and scales in cluster order, and each window's slot."""
    window_slot = np.empty(len(cluster_rows), dtype=np.int32)
    window_slot[cluster_rows] = np.arange(len(cluster_rows), dtype=np.int32)
    return {"slot_vectors": np.asarray(vectors)[cluster_rows], "slot_scales": np.asarray(scales)[cluster_rows],
            "window_slot": window_slot}


def _write_slotted(folder: Path, vectors: np.ndarray, scales: np.ndarray, cluster_rows: np.ndarray) -> None:
    """Rewrite a clustered segment written in window order in cluster order (``window_slot.npy``,
    written last, says the rest is there; the window-order files are removed after)."""
    arrays = _slotted(vectors, scales, cluster_rows)
    _write_beside(folder, [(name, arrays[name]) for name in ("slot_vectors", "slot_scales", "window_slot")])
    for name in ("vectors", "scales"):
        (folder / f"{name}.npy").unlink(missing_ok=True)


def _write_decision_vectors(folder: Path, vectors: np.ndarray, scales: np.ndarray, passages: np.ndarray, n: int) -> None:
    """Add the decision vectors to a segment written before they existed (each file written
    beside and renamed, so a process opening it at the same time sees all of a file or none)."""
    q, sc = decision_vectors(vectors, scales, passages, n)
    _write_beside(folder, [("decision_scales", sc), ("decision_vectors", q)])  # vectors last: their presence says both are there


def _texts(folder: Path, array, passages: int) -> tuple[np.ndarray | None, np.ndarray | None]:
    """A segment's texts, when both files are there (``text_start`` is written last) and agree with
    each other and with its ``passages`` (else None: the catalogue makes them again from the store)."""
    if not (folder / "text_start.npy").exists():
        return None, None
    try:
        text_bytes, text_start = array("text_bytes"), array("text_start")
    except (OSError, ValueError) as e:
        log.warning("%s: the passages' texts cannot be read (%s); they are made again", folder, e)
        return None, None
    if text_bytes is None or len(text_start) != passages + 1 or int(text_start[-1]) != len(text_bytes):
        log.warning("%s: the passages' texts do not match the segment's passages; they are made again", folder)
        return None, None
    return text_bytes, text_start


def _write_beside(folder: Path, arrays: list[tuple[str, np.ndarray]]) -> None:
    """Add arrays to a written segment, in order, each saved beside and renamed into place."""
    for name, array in arrays:
        tmp = folder / f".{name}.{os.getpid()}.npy"
        np.save(tmp, array)
        os.replace(tmp, folder / f"{name}.npy")


def _save(tmp: Path, c: Columns) -> None:
    order = np.lexsort((c.posting_doc, c.posting_term))  # by term, then passage
    term_start = np.concatenate(([0], np.cumsum(np.bincount(c.posting_term, minlength=len(c.terms))))).astype(np.int64)
    window_passage = np.repeat(np.arange(len(c.passages), dtype=np.int32), c.passages["window_count"])
    arrays = {"passages": c.passages, "statutes": c.statute_ids, "term_start": term_start,
              "posting_doc": c.posting_doc[order], "posting_tf": c.posting_tf[order], "vectors": c.vectors,
              "scales": c.scales, "window_passage": window_passage}
    arrays["decision_vectors"], arrays["decision_scales"] = (
        c.decision_vectors or decision_vectors(c.vectors, c.scales, c.passages, len(c.decisions)))
    if c.text_start is not None:
        arrays["text_bytes"], arrays["text_start"] = c.text_bytes, c.text_start
    if len(c.vectors) >= CLUSTER_MIN_WINDOWS:
        def block(i: int) -> np.ndarray:
            return np.asarray(c.vectors[i: i + 50_000], dtype=np.float32) * c.scales[i: i + 50_000, None]

        rng = np.random.default_rng(7)
        sample = np.sort(rng.choice(len(c.vectors), min(len(c.vectors), KMEANS_SAMPLE), replace=False))
        centroids = kmeans(np.asarray(c.vectors[sample], dtype=np.float32) * c.scales[sample, None],
                           max(2, len(c.vectors) // WINDOWS_PER_CLUSTER))
        nearest = np.concatenate([np.argmax(block(i) @ centroids.T, axis=1) for i in range(0, len(c.vectors), 50_000)])
        cluster_rows = np.argsort(nearest, kind="stable").astype(np.int32)
        arrays.update(centroids=centroids, cluster_rows=cluster_rows,
                      cluster_start=np.concatenate(([0], np.cumsum(np.bincount(nearest, minlength=len(centroids))))))
        arrays.update(_slotted(c.vectors, c.scales, cluster_rows))
        del arrays["vectors"], arrays["scales"]
    for name, array in arrays.items():
        np.save(tmp / f"{name}.npy", array)
    (tmp / "decisions.json").write_text(json.dumps(c.decisions, ensure_ascii=False))
    (tmp / "strings.json").write_text(json.dumps({
        "sections": c.sections, "subsections": c.subsections, "statutes": c.statutes, "terms": c.terms,
    }, ensure_ascii=False))


# Windows converted to float32 at a time when summing decisions' directions (memory only: blocks
# end where a decision does, so the sums do not depend on the size).
DIRECTION_BLOCK = 65_536


def decision_vectors(vectors: np.ndarray, scales: np.ndarray, passages: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Each decision's windows summed and normalised (the direction of the decision as a whole),
    quantised: ``n`` decisions whose passages ``passages`` are in decision order. A block of
    windows at a time, so memory stays small whatever the segment's size; a block ends where a
    decision ends, so each decision is summed in one go and gets the same direction whether its
    segment is made whole or batch by batch (as ingest's writer makes them)."""
    dim = vectors.shape[1] if vectors.ndim == 2 else 0
    sums = np.zeros((n, dim), dtype=np.float32)
    if len(passages):
        decision_of_window = np.repeat(np.asarray(passages["decision"], dtype=np.int64),
                                       np.asarray(passages["window_count"], dtype=np.int64))
        firsts = np.flatnonzero(np.concatenate(([True], decision_of_window[1:] != decision_of_window[:-1])))
        ends = np.append(firsts[1:], len(decision_of_window))  # where each decision's windows end
        a = 0
        while a < len(decision_of_window):
            # the last decision ending within a block from ``a`` (or the one that starts at ``a``)
            k = max(int(np.searchsorted(ends, a + DIRECTION_BLOCK, side="right")) - 1,
                    int(np.searchsorted(ends, a, side="right")))
            b = int(ends[k])
            block = np.asarray(vectors[a:b], dtype=np.float32) * np.asarray(scales[a:b])[:, None]
            _add_rows(sums, decision_of_window[a:b], block)
            a = b
    norms = np.linalg.norm(sums, axis=1, keepdims=True)
    return quantise(sums / np.where(norms > 0, norms, 1.0))


def _add_rows(sums: np.ndarray, groups: np.ndarray, block: np.ndarray) -> None:
    """``sums[g] += row`` for each row of ``block`` and its group (groups ascending, as windows are)."""
    starts = np.flatnonzero(np.concatenate(([True], groups[1:] != groups[:-1])))
    sums[groups[starts]] += np.add.reduceat(block, starts, axis=0)


@dataclass
class Segment:
    """A written segment, opened: its arrays memory-mapped, its tables in memory."""

    folder: Path
    decisions: list[dict]
    sections: list[str]
    subsections: list[str]
    statutes: list[str]
    terms: dict[str, int]
    passages: np.ndarray
    statute_ids: np.ndarray
    term_start: np.ndarray
    posting_doc: np.ndarray
    posting_tf: np.ndarray
    vectors: np.ndarray  # int8, in slot order (cluster order; window order when not clustered)
    scales: np.ndarray
    window_passage: np.ndarray
    centroids: np.ndarray | None = None
    cluster_start: np.ndarray | None = None
    cluster_rows: np.ndarray | None = None
    decision_vectors: np.ndarray | None = None
    decision_scales: np.ndarray | None = None
    window_slot: np.ndarray | None = None  # each window's row in ``vectors`` (None: the same row)
    text_bytes: np.ndarray | None = None  # the passages' texts (None: a segment written without them)
    text_start: np.ndarray | None = None

    @classmethod
    def open(cls, folder: Path) -> "Segment":
        strings = json.loads((folder / "strings.json").read_text())
        decisions = json.loads((folder / "decisions.json").read_text())

        def array(name: str) -> np.ndarray | None:
            path = folder / f"{name}.npy"
            # a plain ndarray view of the mapping: numpy's memmap subclass costs per indexing
            return np.asarray(np.load(path, mmap_mode="r")) if path.exists() else None

        if (folder / "cluster_rows.npy").exists() and not (folder / "window_slot.npy").exists():
            try:
                old = array("vectors"), array("scales"), array("cluster_rows")
            except FileNotFoundError:
                old = None, None, None
            if all(a is not None for a in old):
                _write_slotted(folder, *old)
            elif not (folder / "window_slot.npy").exists():  # else another process rewrote it meanwhile
                raise CatalogueFileError(f"{folder}: a clustered segment without its vectors; "
                                         "`ombudsman ingest --rebuild PATH...` writes the index again")
        slotted = (folder / "window_slot.npy").exists()
        vectors, scales = (array("slot_vectors"), array("slot_scales")) if slotted else (array("vectors"), array("scales"))
        window_slot = array("window_slot") if slotted else None
        if not (folder / "decision_vectors.npy").exists():
            v, sc = (vectors[window_slot], scales[window_slot]) if slotted else (vectors, scales)
            _write_decision_vectors(folder, v, sc, array("passages"), len(decisions))
        return cls(folder, decisions, strings["sections"], strings["subsections"],
                   strings["statutes"], {t: i for i, t in enumerate(strings["terms"])}, array("passages"),
                   array("statutes"), array("term_start"), array("posting_doc"), array("posting_tf"),
                   vectors, scales, array("window_passage"), array("centroids"),
                   array("cluster_start"), array("cluster_rows"), array("decision_vectors"),
                   array("decision_scales"), window_slot, *_texts(folder, array, len(array("passages"))))

    def __post_init__(self) -> None:
        self.paragraph = self.passages["paragraph"]
        self.decision_of = self.passages["decision"]
        self._text_file: tuple | None = None  # (text_bytes.npy open, where its data begins)
        if self.text_start is not None and (self.folder / "text_start.npy").exists():
            self._open_texts()

    def _open_texts(self) -> None:
        """Open the texts' file with the segment: a merge may remove the folder while a search still
        reads this segment (its mapped arrays stay readable, and so does a file already open)."""
        try:
            f = open(self.folder / "text_bytes.npy", "rb", buffering=0)
            major, _ = np.lib.format.read_magic(f)
            (np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0)(f)
            self._text_file = (f, f.tell())
        except OSError:
            self._text_file = None  # read through the mapping instead

    def text(self, local: int) -> str:
        """The text of local passage ``local`` (the segment must keep texts). Read from the file
        by offset rather than through its memory mapping: a mapped read brings in the pages
        around it too, and a few thousand hits would count the whole file in the process's RSS."""
        assert self.text_start is not None and self.text_bytes is not None
        a, b = int(self.text_start[local]), int(self.text_start[local + 1])
        opened = self._text_file
        if opened is not None:
            f, offset = opened
            return os.pread(f.fileno(), b - a, offset + a).decode("utf-8")
        return self.text_bytes[a:b].tobytes().decode("utf-8")

    def add_texts(self, text_bytes: np.ndarray, text_start: np.ndarray) -> None:
        """Write the texts of a segment written without them (as ``texts_of`` makes them, a text
        per passage in order) beside its other files; kept in memory when the folder cannot be written."""
        if len(text_start) != len(self.passages) + 1:
            raise ValueError(f"{self.folder}: {len(text_start) - 1} texts for {len(self.passages)} passages")
        try:
            _write_beside(self.folder, [("text_bytes", text_bytes), ("text_start", text_start)])
        except OSError as e:
            log.warning("%s: the passages' texts could not be written beside the segment (%s)", self.folder, e)
            self.text_bytes, self.text_start = text_bytes, text_start
            return
        # Written: read from the files as a segment opened with them would (not held in memory).
        self.text_bytes, self.text_start = _texts(self.folder, lambda name: np.asarray(np.load(
            self.folder / f"{name}.npy", mmap_mode="r")), len(self.passages))
        self._open_texts()

    def __len__(self) -> int:
        return len(self.passages)

    @property
    def windows(self) -> int:
        return len(self.vectors)

    def postings(self, term: str) -> tuple[np.ndarray, np.ndarray]:
        """Documents containing ``term`` (local positions) and its count in each."""
        t = self.terms.get(term)
        if t is None:
            return np.zeros(0, np.int32), np.zeros(0, np.uint16)
        a, b = int(self.term_start[t]), int(self.term_start[t + 1])
        return self.posting_doc[a:b], self.posting_tf[a:b]

    def _slots(self, rows: np.ndarray) -> np.ndarray:
        """Where local window ``rows`` are in ``vectors`` and ``scales``."""
        return rows if self.window_slot is None else self.window_slot[rows]

    def window_rows(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """int8 vectors and scales of local window ``rows``."""
        slots = self._slots(np.asarray(rows, dtype=np.int64))
        return take_rows(self.vectors, slots), np.asarray(self.scales[slots])

    def window_vectors(self, rows: np.ndarray) -> np.ndarray:
        """float32 vectors of local window ``rows``."""
        v, sc = self.window_rows(rows)
        return v.astype(np.float32) * sc[:, None]

    def similarities(self, rows: np.ndarray, vector: np.ndarray) -> np.ndarray:
        """Cosine of local window ``rows`` with ``vector`` (float32, unit length): the int8 rows
        multiplied by ``dot_rows``, then scaled."""
        slots = self._slots(rows)
        return dot_rows(take_rows(self.vectors, slots), vector) * self.scales[slots]

    def probe(self, vector: np.ndarray, probes: int) -> tuple[np.ndarray, np.ndarray]:
        """Local window rows worth scoring for ``vector`` and their cosines: all of a small segment,
        the members of the ``probes`` nearest clusters of a large one (each read as one run)."""
        if self.centroids is None:
            rows = np.arange(self.windows)
            return rows, self.similarities(rows, vector)
        near = np.sort(np.argpartition(-(self.centroids @ vector), min(probes, len(self.centroids)) - 1)[:probes])
        bounds = [(int(self.cluster_start[c]), int(self.cluster_start[c + 1])) for c in near]
        sims = dot_rows(self.vectors, vector, bounds) * np.concatenate([self.scales[a:b] for a, b in bounds])
        rows = [self.cluster_rows[a:b] for a, b in bounds]
        return np.concatenate(rows).astype(np.int64), sims
