"""Ingest: files in, decisions indexed, incrementally and safely.

Unchanged decisions (same content hash) are skipped without embedding; changed ones replace their
passages; one bad file is reported and the rest of the batch still goes in. A long ingest runs the
model in a child process (``index.encoder_process``) and sends it a first batch while the files
are still being parsed, so that the encoder is busy from start to end. After the vectors, the
catalogue (lexical index, boilerplate table, vector copy) gets a segment joined from the columns
the writer made of each batch as it stored it (see ``index.catalogue``).
"""

from __future__ import annotations

import gc
import logging
import queue
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from collections import OrderedDict, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from index.config import whole_setting
from index.decision import Decision
from index.embedder import Embedder
from index.encoder_process import ingest_cores
from index import catalogue
from index.catalogue import refresh
from index.segment import Columns, columns_of_writes
from index.parse import DecisionError, parse_file
from index.passage import Passage, passages_of
from index.store import DecisionWrite, Store, StoreError, absolute_source

log = logging.getLogger(__name__)

SUFFIXES = {".txt", ".html", ".htm"}
ADDED, REPLACED, UNCHANGED, FAILED, REMOVED, REPAIRED = "added", "replaced", "unchanged", "failed", "removed", "repaired"
# Windows embedded per batch: large enough to sort by length and keep the encoder busy, small
# enough that a killed ingest loses little (about 20 s of work) and memory stays flat (about 10 MB).
# Measured: 1024 windows embed about 1.3x faster than 256 (less padding after sorting by length);
# `OMBUDSMAN_INGEST_BATCH=N python -m eval.bench_ingest --encoder onnx-int8 --repeat 20 --rounds 2`
# (16,800 paragraphs, measured before repeated texts were embedded once and the benchmark's
# copies marked): ingest at 0.81 of the encoder-alone rate with 1024, 0.88 with 4096 and 0.83
# with 8192 (fewer, larger writes to Chroma; with 8192 the last batch's write is long and
# overlaps nothing).
BATCH_WINDOWS = 4096  # OMBUDSMAN_INGEST_BATCH sets another (see ``Batching``)
# ... but a short ingest embeds about a quarter of its windows per batch (at least this many): in
# one or two large batches, embedding and writing would run one after the other. Same command
# with `--repeat 5` (4,200 paragraphs): 0.85 with batches of 1024, 0.82 with 4096.
SHORT_BATCH_WINDOWS = 1024
# ... and the first batch is small: the encoder waits for it to be prepared (parsed, cut into
# passages and windows, its word pieces counted), and the next, full-size batch is prepared while
# it is embedded. With a first batch of 4096 windows the encoder started 2.5 s after the ingest
# did (reading and parsing every file, then preparing the batch), 3% of the whole ingest; with 256,
# 1.5 to 1.8 s. `python -m eval.bench_ingest --encoder onnx-int8 --repeat 20` reports the wait as
# `ingest_seconds_before_embedding`.
FIRST_BATCH_WINDOWS = 256
# ... and with the model in the child process, the last batches are smaller and smaller, down to
# this many windows: a batch is written while the next is embedded, so what is left at the end,
# overlapping no embedding, is writing the last one. Each batch of the taper is ``TAPER`` times the
# next: a batch's write took a quarter to a third of the time the next full batch took to embed
# (4,099 windows written in 3.0 to 4.8 s beside the encoder, each batch embedded in about 14 s),
# and a taper of quarters left the 1,024-window batch still being written (0.93 s) when the
# 256-window one after it was embedded (both seen by timing the writer's calls through
# `python -m eval.bench_ingest --encoder onnx-int8 --repeat 20`'s ingest). Full batches of 4,096
# end with 2,304, 768 and 256.
LAST_BATCH_WINDOWS = 256  # OMBUDSMAN_LAST_BATCH
TAPER = 3
# With the model in this process, one smaller last batch only: there, writes hold up the encoder
# (see ``index.encoder_process``) and small batches embed more slowly; halving the last batches
# down to 256 windows made ingest slower (0.807 and 0.809 of the encoder-alone rate against 0.837
# and 0.844, `python -m eval.bench_ingest --encoder onnx-int8 --repeat 20`).
LAST_BATCH_IN_PROCESS = 1024
# ... but a first batch sent while the files are still parsed (``_EarlyBatch``) is larger: the
# encoder embeds it while the rest are parsed and the next batch is prepared.
EARLY_BATCH_WINDOWS = 1024  # OMBUDSMAN_EARLY_BATCH
# Decisions (files, or decisions to embed) from which an ingest runs the model in a child process
# (see ``index.encoder_process``), which takes about 0.3 s to load it. `OMBUDSMAN_BULK_DECISIONS=N
# python -m eval.bench_ingest --encoder onnx-int8 --repeat R`: 150 files (R 1), 0.717 of the
# encoder-alone rate with the child against 0.83 without; 750 (R 5), 0.839 and 0.791 with against
# 0.801 without; 3,000 (R 20), 0.88 to 0.91 with against 0.84 to 0.88 without.
BULK_DECISIONS = 750  # OMBUDSMAN_BULK_DECISIONS
# Vectors an ingest keeps of texts found in two batches one after the other (standard paragraphs),
# for any batch after: about 1.5 KB each (see ``_Repeats``). A batch embeds each distinct text
# once; without these, every batch embedded each standard paragraph again. Memory only: an
# archive's standard paragraphs are a few hundred texts; past this many kept, the one least
# recently reused goes (and is embedded again where it next comes, then kept again).
REPEATS_KEPT = 4096


@dataclass(frozen=True)
class Batching:
    """The sizes one ingest batches by: the constants above, or what the environment sets. Read
    when the ingest starts, not when this module is imported, so that a process that stays up
    (the app) and a benchmark comparing two settings in one process (``eval.bench_ingest
    --also-with``) ingest with the setting of the moment."""

    full: int  # windows in a full batch
    early: int  # windows in a first batch sent while the files are still parsed
    last: int  # windows in the last batch of the taper (with the child process)
    bulk_from: int  # files (or decisions to embed) from which the model runs in a child process

    @classmethod
    def from_environment(cls) -> "Batching":
        """The module's constants (as they are now), each replaced by its variable when set;
        a value that is not a whole number of at least 1 is refused, naming the variable (as is a
        bad ``OMBUDSMAN_INGEST_CORES``, read when the child starts: checked here, it stops every
        ingest, not only those long enough for the child)."""
        ingest_cores(1)
        return cls(whole_setting("OMBUDSMAN_INGEST_BATCH", BATCH_WINDOWS),
                   whole_setting("OMBUDSMAN_EARLY_BATCH", EARLY_BATCH_WINDOWS),
                   whole_setting("OMBUDSMAN_LAST_BATCH", LAST_BATCH_WINDOWS),
                   whole_setting("OMBUDSMAN_BULK_DECISIONS", BULK_DECISIONS))


@dataclass
class FileResult:
    """What happened to one input (a file, or a decision repaired or pruned)."""

    source: str
    status: str
    reference: str = ""
    reason: str = ""
    paragraphs: int = 0


@dataclass
class IngestReport:
    results: list[FileResult] = field(default_factory=list)
    seconds: float = 0.0
    embed_seconds: float = 0.0
    # From the start to the first batch sent to the encoder (0: none), an early batch the plan then
    # dropped included; ``embed_seconds``: time spent sending batches to the encoder and waiting for
    # their vectors (the encoder's own time when it runs in the ingesting process).
    seconds_before_embedding: float = 0.0
    embedded_passages: int = 0
    embedded_windows: int = 0
    reused_windows: int = 0  # windows sent to be stored with a vector made for an earlier batch
    lexical_rebuilt: bool = False

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r.status == status)

    @property
    def failed(self) -> list[FileResult]:
        return [r for r in self.results if r.status == FAILED]

    @property
    def rate(self) -> float:
        """Paragraphs (passages) embedded and stored per second of ingest."""
        return self.embedded_passages / self.seconds if self.seconds else 0.0

    def summary(self) -> str:
        parts = [f"{self.count(s)} {s}" for s in (ADDED, REPLACED, UNCHANGED, REPAIRED, REMOVED, FAILED)]
        line = ", ".join(parts) + f" in {self.seconds:.1f} s"
        if self.embedded_passages:
            line += f" ({self.embedded_passages} paragraphs embedded, {self.rate:.1f} paragraphs/s)"
        return line

    def to_json(self) -> dict:
        return {
            "added": self.count(ADDED), "replaced": self.count(REPLACED), "unchanged": self.count(UNCHANGED),
            "repaired": self.count(REPAIRED), "removed": self.count(REMOVED), "failed": self.count(FAILED),
            "seconds": round(self.seconds, 3), "embedded_paragraphs": self.embedded_passages,
            "reused_windows": self.reused_windows,
            "paragraphs_per_second": round(self.rate, 2),
            "results": [r.__dict__ for r in self.results],
        }


def collect_files(paths: list[Path]) -> tuple[list[Path], list[FileResult]]:
    """Decision files named directly or found in folders (recursively), and the paths that fail."""
    files: list[Path] = []
    failures: list[FileResult] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
            if not found:
                failures.append(FileResult(str(path), FAILED, reason="the folder holds no .txt or .html files"))
            files.extend(found)
        elif path.exists():
            files.append(path)
        else:
            failures.append(FileResult(str(path), FAILED, reason="no such file or folder"))
    seen: set[Path] = set()
    unique = []
    for f in files:
        key = f.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(f)
    return unique, failures


ProgressFn = Callable[[int, int, int], None]  # (decisions done, decisions total, paragraphs embedded)
EmbedderSource = Embedder | Callable[[], Embedder]


class _Writer:
    """Embeds decisions in batches large enough to keep the encoder efficient, then stores each."""

    def __init__(self, store: Store, embedder: EmbedderSource, label: str, report: IngestReport,
                 progress: ProgressFn | None, total: int, started: float, batching: Batching):
        self.store, self._embedder, self.label, self.report = store, embedder, label, report
        self.batching = batching  # read once, when the ingest starts
        self.progress, self.total, self.done = progress, total, 0
        self.started = started  # when the ingest began (for ``seconds_before_embedding``)
        self.pending: list[tuple[Decision, list[Passage], list[list[str]], FileResult]] = []
        self.pending_windows = 0
        self.batch_windows = self.batching.full
        self.flushed = False  # whether a batch went to the encoder yet (the first one is small)
        self.first_batch = FIRST_BATCH_WINDOWS  # ``batching.early`` when prepared early
        self.expected: int | None = None  # windows this ingest expects to embed, if known
        self.sent = 0  # windows sent to the encoder so far
        self.sent_batch: tuple[list, Callable[[], np.ndarray]] | None = None  # sent, not yet stored
        self.early: tuple[list[Decision], Callable[[], np.ndarray]] | None = None  # see ``send_early``
        self.repeats: _Repeats | None = None  # made with the embedder (see ``_embed_later``)
        self._early_prepared: dict[int, tuple[Decision, list[Passage], list[list[str]]]] = {}
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ombudsman-store")
        self._writing: Future | None = None
        self._lock = threading.Lock()  # the writer thread and the main thread both report
        # The catalogue's columns of the decisions stored since the last segment, made as each batch
        # is written (beside the encoder), so that saving the segment at the end only joins them:
        # made at the end from every decision, they took 0.5 s of the last 0.6 s of an ingest of
        # 16,800 paragraphs, beside no embedding.
        self.columns: list[Columns] = []
        self.column_windows = 0
        self.segment_passages = 0  # passages this run added to the catalogue

    @property
    def embedder(self) -> Embedder:
        """Loaded on first use: an ingest with nothing new to embed never loads the model."""
        if not isinstance(self._embedder, Embedder):
            self._embedder = self._embedder()
            if self._embedder.label != self.label:
                raise StoreError(f"the embedder is {self._embedder.label}, expected {self.label}")
        return self._embedder

    def prepare(self, decision: Decision) -> tuple[list[Passage], list[list[str]]]:
        """A decision's passages and the windows the encoder will embed for each."""
        early = self._early_prepared.pop(id(decision), None)
        if early is not None and early[0] is decision:
            return early[1], early[2]
        return cut(decision, self.embedder)

    def prepare_early(self, decisions: list[Decision]) -> bool:
        """Prepare the first batch before the plan is made, while the first pass still parses the
        rest of the files (``_EarlyBatch``): ``decisions`` as far as the first batch reaches.
        False if they do not fill one (what was prepared is used if the plan's first batch holds
        it)."""
        limit, windows, prepared = min(self.batching.early, self.batch_windows), 0, []
        for d in decisions:
            passages, ws = self.prepare(d)
            prepared.append((d, passages, ws))
            windows += sum(len(w) for w in ws)
            if windows >= limit:
                break
        self._early_prepared = {id(d): (d, passages, ws) for d, passages, ws in prepared}
        if windows < limit:
            return False
        self.first_batch = self.batching.early  # ready at once, sent early or not
        return True

    def send_early(self) -> None:
        """Send the batch ``prepare_early`` prepared to the encoder. It is used if the plan's first
        batch is the same decisions, which it is unless a later file repeats one's reference;
        otherwise its vectors are dropped. Nothing is written before the plan."""
        prepared = list(self._early_prepared.values())
        self._first_sent()
        texts = [w for _, _, ws in prepared for x in ws for w in x]
        self.early = ([d for d, _, _ in prepared], self._embed_later(texts))

    def _first_sent(self) -> None:
        """Records when the first batch went to the encoder (``seconds_before_embedding``)."""
        if not self.report.seconds_before_embedding:
            self.report.seconds_before_embedding = time.perf_counter() - self.started

    def add(self, decision: Decision, passages: list[Passage], windows: list[list[str]], result: FileResult) -> None:
        self.pending.append((decision, passages, windows, result))
        self.pending_windows += sum(len(w) for w in windows)
        if self.pending_windows >= self._batch_limit():
            self.flush()

    def _batch_limit(self) -> int:
        """Windows to gather before the next batch goes to the encoder: a small first batch, then
        full ones (the last of them with what is left before the taper, if less than the taper's
        first batch), and when the end is in sight, the taper (``_taper`` with the child process;
        in this process, one last batch of ``LAST_BATCH_IN_PROCESS``)."""
        if not self.flushed:
            return min(self.first_batch, self.batch_windows)
        if self.expected is None:
            return self.batch_windows
        left = self.expected - self.sent
        taper = _taper(self.batch_windows, self.batching.last) if self.embedder.embeds_elsewhere else [LAST_BATCH_IN_PROCESS]
        after = sum(taper)  # windows left for the batches after this one
        if left >= self.batch_windows + after:
            # What would be left before the taper joins this batch when it is smaller than the
            # taper's first: alone, a batch of a few windows sorts badly by length and pads (the
            # 16,798 windows of `python -m eval.bench_ingest --encoder onnx-int8` left 143 there;
            # joined, the word pieces run with their padding are 0.27% fewer).
            rest = left - self.batch_windows - after
            return self.batch_windows + (rest if taper and rest < taper[0] else 0)
        for size in taper:
            if left > after:  # this batch takes what the rest of the taper leaves
                return left - after
            after -= size
        # The last batch: everything left (the count expected a window per passage, and a long
        # paragraph has several), up to a full batch.
        return self.batch_windows

    def report_result(self, result: FileResult) -> None:
        with self._lock:
            self.report.results.append(result)

    def skip(self) -> None:
        with self._lock:
            self.done += 1
            self._tick()

    def _tick(self) -> None:
        if self.progress:
            self.progress(self.done, self.total, self.report.embedded_passages)

    def flush(self) -> None:
        """Send what is pending to the encoder, and hand the batch sent before it, once embedded,
        to the store writer thread.

        In the ONNX encoder's child process (within ``bulk``) a batch is embedded while the next is
        gathered and sent, and the child starts on that one the moment this one ends: the parent's
        work between two batches (counting word pieces, ordering the runs, the store writer's
        first call) no longer leaves the child waiting, which cost about 0.3 s of both cores at
        every batch. The store writer writes a batch while the next ones are embedded, with at
        most one batch waiting, so memory stays bounded however large the ingest. With the model
        in this process a batch's vectors exist once it is sent, so it goes to the writer at once
        and is written while the next is embedded (held back like a child's, both were written
        after the last was embedded: 0.33 s at the end of an ingest of the seeds and the corpus
        instead of 0.19 s).
        """
        sending = None
        if self.pending:
            t = time.perf_counter()
            self.flushed = True
            self._first_sent()
            elsewhere = self.embedder.embeds_elsewhere
            sending = (self.pending, self._send_pending())
            self.report.embed_seconds += time.perf_counter() - t
            self.sent += self.pending_windows
            self.pending, self.pending_windows = [], 0
            if not elsewhere:  # embedded already, here
                previous, self.sent_batch = self.sent_batch, None
                self._store(previous)
                self._store(sending)
                return
        previous, self.sent_batch = self.sent_batch, sending
        self._store(previous)

    def _send_pending(self) -> Callable[[], np.ndarray]:
        """What gives the pending batch's vectors: the early batch's when it is these decisions
        (the same objects, in order), else the pending windows sent now."""
        early, self.early = self.early, None
        self._early_prepared = {}  # what the plan refused of it is never asked for
        if early is not None and len(early[0]) == len(self.pending) and all(
                d is e for e, (d, *_) in zip(early[0], self.pending)):
            return early[1]
        return self._embed_later([w for _, _, windows, _ in self.pending for ws in windows for w in ws])

    def _embed_later(self, texts: list[str]) -> Callable[[], np.ndarray]:
        """A batch's windows sent to the encoder, but for those an earlier batch embedded."""
        if self.repeats is None:
            self.repeats = _Repeats(self.embedder, REPEATS_KEPT)
        return self.repeats.embed_later(texts)

    def _store_sent(self) -> None:
        """The batch sent to the encoder last (if any), once embedded, to the store writer thread."""
        sent, self.sent_batch = self.sent_batch, None
        self._store(sent)

    def _store(self, sent: tuple[list, Callable[[], np.ndarray]] | None) -> None:
        """A batch sent to the encoder, once embedded, to the store writer thread."""
        if sent is None:
            return
        pending, vectors_of = sent
        t = time.perf_counter()
        vectors = vectors_of()
        self.report.embed_seconds += time.perf_counter() - t
        batch, at = [], 0
        for decision, passages, windows, _ in pending:
            n = sum(len(w) for w in windows)
            batch.append(DecisionWrite(decision, passages, windows, vectors[at : at + n]))
            at += n
        self.wait()
        self._writing = self._pool.submit(self._write, batch, pending)

    def _write(self, batch: list[DecisionWrite], pending: list) -> None:
        self.store.write_decisions(batch, self.label)
        columns = columns_of_writes(batch, batch[0].vectors.shape[1])  # rows sliced from one 2-D array
        self.columns.append(columns)
        self.column_windows += len(columns.vectors)
        if self.column_windows >= SEGMENT_WINDOWS:
            self.save_segment()
        with self._lock:
            for _, passages, windows, result in pending:
                result.paragraphs = len(passages)
                self.report.results.append(result)
                self.report.embedded_passages += len(passages)
                self.report.embedded_windows += sum(len(w) for w in windows)
                self.done += 1
            self._tick()

    def wait(self) -> None:
        """Until the batch being written is stored (re-raising what the write raised)."""
        if self._writing is not None:
            writing, self._writing = self._writing, None
            writing.result()

    def save_segment(self) -> None:
        """Add what was stored since the last segment to the catalogue, as a segment."""
        columns, self.columns, self.column_windows = self.columns, [], 0
        if columns:
            catalogue.add_columns(self.store, columns)
            self.report.lexical_rebuilt = True
            self.segment_passages += sum(len(c.passages) for c in columns)

    def close(self, embedded: Callable[[], None] | None = None) -> None:
        """Send what is pending, write it, and save the segment. ``embedded`` is called once the
        last vectors are in, while the last batch is written: ingest ends the encoder's child
        there, whose exit (about 0.1 s) overlapped nothing when it came after."""
        self.flush()
        self._store_sent()
        self.report.reused_windows = self.repeats.reused if self.repeats is not None else 0
        self.repeats = None  # the kept vectors go with the last batch
        if embedded is not None:
            embedded()
        self.wait()
        self._pool.shutdown(wait=True)
        self.save_segment()


class _Repeats:
    """The texts of the batch sent last, and those kept (found in two batches one after the other),
    with (what gives) their vectors: a batch's texts found there are not sent to the encoder again.
    Standard paragraphs recur across a whole archive, word for word, so nearly every batch has them
    and they are soon kept: the encoder embeds each once per batch (``Embedder.embed``), and with
    these about once per ingest. A text seen in one batch only and next two or more batches later
    is embedded again (only the last batch's texts are looked up, not every text seen). A text
    reused from the batch sent last takes its vector when that batch's come back, which is before
    this batch's (the encoder answers in order). The reused vector was made beside other texts
    than this batch's, which changes only its last digits (``Embedder.embed``)."""

    def __init__(self, embedder: Embedder, kept: int) -> None:
        self.embedder, self.limit = embedder, kept
        self.kept: OrderedDict[str, np.ndarray] = OrderedDict()  # recurred; the least recently used first
        self.last: tuple[dict[str, int], Callable[[], np.ndarray]] | None = None
        self.reused = 0  # windows given vectors made for an earlier batch

    def embed_later(self, texts: list[str]) -> Callable[[], np.ndarray]:
        """``Embedder.embed_later`` of ``texts``, sending only those neither kept nor in the batch
        sent last."""
        last_rows, last_vectors = self.last or ({}, None)
        kept: list[tuple[int, np.ndarray]] = []
        from_last: list[tuple[int, int]] = []
        fresh: list[int] = []
        for i, text in enumerate(texts):
            vector = self.kept.get(text)
            if vector is not None:
                self.kept.move_to_end(text)
                kept.append((i, vector))
            elif text in last_rows:
                from_last.append((i, last_rows[text]))
            else:
                fresh.append(i)
        if kept or from_last:
            self.embedder.not_embedding([texts[i] for i, _ in kept] + [texts[i] for i, _ in from_last])
        made = self.embedder.embed_later([texts[i] for i in fresh]) if fresh else None
        self.reused += len(kept) + len(from_last)
        if not from_last:
            last_vectors = None  # not needed: this batch's closure should not hold that one's
        got: list[np.ndarray] = []

        def vectors() -> np.ndarray:
            nonlocal made, last_vectors  # let go once used: each batch's would hold the one's before
            if got:
                return got[0]
            out = np.empty((len(texts), self.embedder.dimension), dtype=np.float32)
            if made is not None:
                out[fresh] = made()
            if from_last:
                rows, earlier = [i for i, _ in from_last], last_vectors()[[r for _, r in from_last]]
                out[rows] = earlier
                for i, vector in zip(rows, earlier):
                    self._keep(texts[i], vector)
            for i, vector in kept:
                out[i] = vector
            got.append(out)
            made = last_vectors = None
            return out

        self.last = ({text: i for i, text in enumerate(texts)}, vectors)
        return vectors

    def _keep(self, text: str, vector: np.ndarray) -> None:
        self.kept[text] = vector.copy()
        self.kept.move_to_end(text)
        while len(self.kept) > self.limit:
            self.kept.popitem(last=False)


def cut(decision: Decision, embedder: Embedder) -> tuple[list[Passage], list[list[str]]]:
    """A decision's passages and the windows the encoder embeds for each (each window led by its
    passage's context): what ingest embeds, and what benchmarks compare the encoder alone on."""
    passages = passages_of(decision)
    return passages, embedder.windows_many([p.text for p in passages], [p.context for p in passages])


def embedded(decision: Decision, embedder: Embedder) -> DecisionWrite:
    """One decision cut and embedded as ingest does, ready for ``Store.write_decisions``: a write
    made outside an ingest (another process's, in a benchmark or a test)."""
    passages, windows = cut(decision, embedder)
    return DecisionWrite(decision, passages, windows, embedder.embed([w for ws in windows for w in ws]))


# Windows stored before the writer adds them to the catalogue as a segment: bounds the memory a
# long ingest holds (its columns, about 1.2 KB a window: the int8 vector, postings and text, for
# the corpus's passages) and what a crash leaves for ``refresh`` to remake.
SEGMENT_WINDOWS = 200_000
# Parsed decisions the first pass keeps for writing, in paragraphs: an ordinary ingest parses each
# file once, while one of a whole archive keeps only this many (the rest are parsed again when
# their turn comes) so memory stays flat.
KEEP_PARSED_PARAGRAPHS = 50_000
# Decisions prepared (parsed, split into passages and windows) ahead of the encoder: more than a
# batch, so that the next batch is ready when the encoder finishes one (at ~6 paragraphs a decision,
# 1,024 decisions are a few megabytes of text).
PREPARE_AHEAD = 1024


@dataclass(frozen=True)
class _Seen:
    """What the first pass keeps of a parsed file: enough to decide, and the parsed decision while
    the budget of ``KEEP_PARSED_PARAGRAPHS`` lasts."""

    reference: str
    content_hash: str
    path: Path
    decision: Decision | None = None

    @property
    def source(self) -> str:
        return str(self.path)


@dataclass
class _Job:
    """A decision to embed and store, with the result to report; ``decision`` None: parse ``path``."""

    result: FileResult
    path: Path | None = None
    decision: Decision | None = None


def _holds(records: dict, reference: str, content_hash: str) -> bool:
    """Whether the store's records hold this version of the decision complete already (nothing to
    embed): asked by the first pass and by the early batch, which must agree on what is new."""
    old = records.get(reference)
    return old is not None and old.holds(content_hash)


def _plan(seen: dict[str, list[_Seen]], records: dict, store: Store, writer: _Writer) -> list[_Job]:
    """Decide what each decision needs (nothing, a write, a refusal); report the first and last."""
    jobs: list[_Job] = []
    for ref, versions in seen.items():
        hashes = {v.content_hash for v in versions}
        if len(hashes) > 1:
            names = ", ".join(v.source for v in versions)
            for v in versions:
                writer.report_result(FileResult(
                    v.source, FAILED, ref,
                    f"duplicate reference {ref} with different text in {names}; none of them was indexed "
                    "(the index keeps what it had): remove or fix all but one",
                ))
            writer.skip()
            continue
        first = versions[0]
        for dup in versions[1:]:
            writer.report_result(FileResult(dup.source, UNCHANGED, ref, f"same decision as {first.source}"))
        old = records.get(ref)
        if old is not None and old.holds(first.content_hash):
            if old.source != absolute_source(first.source):
                store.move_source(ref, first.source)
            writer.report_result(FileResult(first.source, UNCHANGED, ref, paragraphs=old.paragraphs))
            writer.skip()
            continue
        status = ADDED if old is None else REPLACED
        if old is not None and not old.complete:
            status = REPAIRED
        jobs.append(_Job(FileResult(first.source, status, ref), first.path, first.decision))
    # Decisions a killed ingest left half-written, whose files are not in this batch: rewrite them
    # from the JSON the store kept.
    for ref, rec in records.items():
        if not rec.complete and ref not in seen:
            try:
                jobs.append(_Job(FileResult(rec.source, REPAIRED, ref), decision=store.stored_decision(ref)))
            except KeyError:
                store.delete_decision(ref)
    return jobs


def expected_windows(jobs: list[_Job]) -> int | None:
    """About how many windows these jobs will embed (a window per passage), None when some were not
    kept parsed (an ingest that large is long)."""
    if any(j.decision is None for j in jobs):
        return None
    return sum(len(j.decision.paragraphs) + 1 for j in jobs if j.decision is not None)


def _taper(full: int, last: int | None = None) -> list[int]:
    """The sizes of the batches that end an ingest of full batches of ``full`` windows, largest
    first, each ``TAPER`` times the next, down to ``last`` (default ``LAST_BATCH_WINDOWS``):
    2,304, 768 and 256 after batches of 4,096."""
    sizes, size = [], max(1, LAST_BATCH_WINDOWS if last is None else last)
    while size < full:
        sizes.insert(0, size)
        size *= TAPER
    return sizes


def batch_windows(jobs: list[_Job], full: int | None = None) -> int:
    """Windows per embedding batch for these jobs, full batches being of ``full`` (default
    ``BATCH_WINDOWS``; see ``SHORT_BATCH_WINDOWS``)."""
    full = BATCH_WINDOWS if full is None else full
    windows = expected_windows(jobs)
    if windows is None:
        return full
    return max(min(full, SHORT_BATCH_WINDOWS), min(full, windows // 4))


_DONE = object()


def _write_all(jobs: list[_Job], writer: _Writer) -> None:
    """Embed and store every job. A thread prepares decisions ahead (parsing, passages, windows:
    Python work that runs while onnxruntime, which releases the GIL, embeds the batch before)."""
    if not jobs:
        return
    writer.embedder  # loaded here, once, before two threads use it
    ready: queue.Queue = queue.Queue(maxsize=PREPARE_AHEAD)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def prepare_all() -> None:
        try:
            for job in jobs:
                try:
                    d = job.decision if job.decision is not None else parse_file(job.path)
                except DecisionError as e:  # the file changed or went away since the first pass
                    source = job.result.source
                    job.result = FileResult(source, FAILED, job.result.reference, str(e).removeprefix(f"{source}: "))
                    if not put((job, None)):
                        return
                    continue
                if not put((job, (d, *writer.prepare(d)))):
                    return
            put(_DONE)
        except BaseException as e:  # handed to the main thread, which raises it
            put(e)

    producer = threading.Thread(target=prepare_all, name="ombudsman-prepare", daemon=True)
    producer.start()
    try:
        while True:
            item = ready.get()
            if item is _DONE:
                break
            if isinstance(item, BaseException):
                raise item
            job, prepared = item
            if prepared is None:
                writer.report_result(job.result)
                writer.skip()
                continue
            d, passages, windows = prepared
            job.result.source = d.source or job.result.source
            writer.add(d, passages, windows, job.result)
    finally:
        stop.set()
        producer.join()


class _EarlyBatch:
    """Watches the first pass and sends the writer's first batch to the encoder's child process as
    soon as enough new decisions are parsed and the child is ready: the encoder then starts while
    the rest of the files are parsed, instead of after all of them (1.3 s of 3,000 files, with
    one core idle). The batch is prepared (passages, windows, word pieces) as soon as its
    decisions are parsed, while the child may still be loading the model, so that it goes the
    moment the child is ready. A decision is new when the store holds no record of its reference
    with the same content hash."""

    def __init__(self, writer: _Writer, store: Store) -> None:
        self.writer, self.store = writer, store
        self.candidates: list[Decision] = []
        self.windows = 0  # a window per passage, as ``expected_windows`` counts
        self.prepared = False
        self.done = False  # sent, or given up: an ingest whose first files are unchanged gets none

    def parsed(self, decision: Decision) -> None:
        if self.done:
            return
        if not self.prepared:
            self.candidates.append(decision)
            self.windows += len(decision.paragraphs) + 1
            if self.windows < self.writer.batching.early:
                return
            if not self.writer.embedder.may_embed_elsewhere:  # no child (torch), or it failed: the
                self.done = True  # batches are made as in one process, the first a small one
                return
            records = self.store.records(sorted({d.reference for d in self.candidates}))
            first: dict[str, Decision] = {}  # the plan takes a reference's first file (or none)
            for d in self.candidates:
                first.setdefault(d.reference, d)
            self.prepared = self.writer.prepare_early([d for d in first.values()
                                                       if not _holds(records, d.reference, d.content_hash)])
            self.done = not self.prepared
        if self.prepared and self.writer.embedder.embeds_elsewhere:
            self.writer.send_early()
            self.done = True


def _first_pass(files: list[Path], report: IngestReport,
                early: _EarlyBatch | None = None) -> list[tuple[Path, Decision | None, str, str]]:
    """Each file parsed: (file, the decision while ``KEEP_PARSED_PARAGRAPHS`` lasts, its reference,
    its content hash); a file that fails is reported. ``early`` sees each decision kept."""
    parsed = []
    budget = KEEP_PARSED_PARAGRAPHS
    for f in files:
        try:
            d = parse_file(f)
        except DecisionError as e:
            report.results.append(FileResult(str(f), FAILED, reason=str(e).removeprefix(f"{f}: ")))
            continue
        keep = budget >= len(d.paragraphs)
        budget -= len(d.paragraphs) if keep else 0
        parsed.append((f, d if keep else None, d.reference, d.content_hash))
        if keep and early is not None:
            early.parsed(d)
    return parsed


# Allocations between two collections of the garbage collector's youngest generation while an
# ingest runs (Python's default is 700): an ingest makes and drops millions of small objects
# (passages, tokens, rows), few of them in cycles. With the objects older than the ingest frozen
# (out of the collector's reach), 3,000 decisions cost the collector 0.13 s of CPU in 14
# collections instead of 0.31 to 0.37 s in about 290 (0.22 s frozen alone), measured with
# ``gc.callbacks`` around two ingests of each (a one-off script, ``python -m eval.bench_ingest``'s
# files).
YOUNG_COLLECTION_EVERY = 10_000
_collector_lock = threading.Lock()
_collector_users = 0  # ingests running in this process
_threshold_before: tuple[int, ...] = ()  # the collector's thresholds before the first of them
_eased_threshold: tuple[int, ...] = ()  # what the first of them set
_froze = False  # whether the first of them froze (nobody else had)


@contextmanager
def _collector_eased() -> Iterator[None]:
    """Within: the objects made before it frozen and the youngest generation collected every
    ``YOUNG_COLLECTION_EVERY`` allocations. The collector's settings are the process's: ingests
    running at once (the app's and a test's) share one easing, undone when the last ends. What
    someone else set is left as it is: objects frozen before, collection turned off (a threshold of
    0), a threshold changed during the ingest."""
    global _collector_users, _threshold_before, _eased_threshold, _froze
    with _collector_lock:
        _collector_users += 1
        if _collector_users == 1:
            _froze = gc.get_freeze_count() == 0
            if _froze:
                gc.freeze()
            _threshold_before = gc.get_threshold()
            if _threshold_before[0]:
                gc.set_threshold(max(_threshold_before[0], YOUNG_COLLECTION_EVERY), *_threshold_before[1:])
            _eased_threshold = gc.get_threshold()
    try:
        yield
    finally:
        with _collector_lock:
            _collector_users -= 1
            if _collector_users == 0:
                if gc.get_threshold() == _eased_threshold:
                    gc.set_threshold(*_threshold_before)
                if _froze:
                    gc.unfreeze()


def ingest(
    paths: list[Path],
    store: Store,
    embedder: EmbedderSource,
    *,
    label: str | None = None,
    prune: bool = False,
    rebuild: bool = False,
    progress: ProgressFn | None = None,
) -> IngestReport:
    """Index the decisions in ``paths`` into ``store``; see the module docstring.

    ``embedder`` may be a function that loads it, called only if something needs embedding; then
    ``label`` (what the embedder will be) must be given so the store can check it up front.
    """
    start = time.perf_counter()
    report = IngestReport()
    batching = Batching.from_environment()
    if label is None:
        if not isinstance(embedder, Embedder):
            embedder = embedder()
        label = embedder.label
    files, failures = collect_files(paths)
    report.results.extend(failures)
    with _collector_eased(), ExitStack() as bulk:
        long = isinstance(embedder, Embedder) and len(files) >= batching.bulk_from
        if long:  # first: the child loads the model while the store is opened and the files parsed
            bulk.enter_context(embedder.bulk())
        if rebuild:
            store.drop()
            catalogue.clear(store)
        store.passages_collection(label)  # creates the collection or refuses a model mismatch
        generation = store.generation()
        in_step = catalogue.in_step(store, generation)  # the catalogue holds what the store holds, as of now
        from_empty = in_step and not generation  # a store never written to (or dropped): it has no log either
        store.watch(generation)
        writer = _Writer(store, embedder, label, report, progress, total=0, started=start, batching=batching)
        try:
            parsed = _first_pass(files, report, _EarlyBatch(writer, store) if long else None)
            # Only the records of the decisions in these files, and those a killed write left: an
            # ingest of a few decisions into a large archive reads what it adds, not the archive.
            records = {**store.incomplete_records(), **store.records(sorted({ref for _, _, ref, _ in parsed}))}
            seen: dict[str, list[_Seen]] = defaultdict(list)
            for f, d, ref, content_hash in parsed:
                seen[ref].append(_Seen(ref, content_hash, f, None if _holds(records, ref, content_hash) else d))
            writer.total = len(seen)
            writer._tick()
            jobs = _plan(seen, records, store, writer)
            writer.batch_windows, writer.expected = batch_windows(jobs, batching.full), expected_windows(jobs)
            if len(jobs) >= batching.bulk_from:
                bulk.enter_context(writer.embedder.bulk())  # nothing new when entered above
            _write_all(jobs, writer)
        finally:
            writer.close(embedded=bulk.close)

    if prune:
        for ref, rec in store.records().items():
            if ref not in seen and rec.source and not Path(rec.source).exists():
                store.delete_decision(ref)
                report.results.append(FileResult(rec.source, REMOVED, ref, "its file is gone"))

    # The catalogue got a segment for every decision this run wrote: when it was in step before and
    # nobody else wrote since, it is in step now, without reading every record of the store.
    ours = store.only_ours() if in_step else None
    if ours is not None and not prune:
        catalogue.mark_in_step(store, ours, from_empty)
    else:
        report.lexical_rebuilt = refresh(store) or report.lexical_rebuilt
    catalogue.compact_if_mostly_new(store, writer.segment_passages)
    report.seconds = time.perf_counter() - start
    log.info("ingest: %s", report.summary())
    return report
