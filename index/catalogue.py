"""The catalogue: what the retriever keeps beside Chroma, as a list of immutable segments.

Chroma holds the text of record (each decision's JSON) and the vectors; the catalogue holds, per
decision and per passage, what a search filters, groups and scores on, in segments
(``index.segment``) that are memory-mapped when opened, so opening an index of any size reads a
manifest and a few tables and rebuilds nothing. Ingest adds a segment per run; a decision
written again later lives in the newer segment (the older copy is dead), and one removed from the
store is listed in the manifest's ``removed`` with the segment sequence it was removed at. When
there are more than ``MAX_SEGMENTS`` segments the smallest are merged (dead copies dropped), so
adding a thousand decisions to a large archive costs about what it costs to a small one.

``refresh`` reconciles the catalogue with the store: decisions the store holds that the catalogue
lacks (written by another process, or before a crash) get a segment made from their stored JSON
and vectors; decisions gone from the store are marked removed. The manifest lists the changes of
the store's log it has taken in (``changes``), so that a refresh reads the records of the others'
decisions only. Writers take a file lock, so several processes may share one catalogue folder.
"""

from __future__ import annotations

import bisect
import fcntl
import json
import logging
import os
import shutil
import uuid
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Iterator, NamedTuple

import numpy as np

from index.decision import Decision
from index.lexical import LexicalIndex
from index.passage import SUMMARY, aliases_in, passage_fields, passages_of
from index.segment import (Columns, Part, Segment, spans, boilerplate_text, columns_of_parts, columns_of_segment,
                           columns_of_writes, concatenate, dot_rows, part_of, parts_of_writes, take_rows, texts_of,
                           write_segment)
from index.store import DecisionRecord, Store, StoredPassage, window_id

log = logging.getLogger(__name__)

__all__ = ["Catalogue", "PassageRow", "PassageSet", "WindowBlock", "refresh", "add_parts", "add_columns", "parts_of_writes", "columns_of_writes", "CATALOGUE_VERSION"]

CATALOGUE_VERSION = "9"  # bumped when the manifest's or a segment's layout, or the lexical tokens, change
# A paragraph whose opening words (``boilerplate_key``) appear in at least this many decisions is
# boilerplate: the standard wording about the Ombudsman's role, powers and the law.
BOILERPLATE_MIN_DECISIONS = 3
DIMENSION = 384  # of an empty catalogue
# Decisions read from the store per call when a segment has to be made from it.
STORE_CHUNK = 200
# More segments than this and the smallest are merged: each segment costs a BM25 and a vector
# probe per search, and merging only small ones keeps an addition's cost independent of the
# archive's size (``python -m eval.bench_ingest`` measures both).
MAX_SEGMENTS = 8
MERGE_FANIN = 4
MANIFEST = "manifest.json"
# Passage lookups a catalogue keeps answered (a search looks up its few hundred candidates several
# times); speed only, about 200 bytes each.
LOCATED_KEPT = 200_000
EXACT_BLOCK = 65_536


class CatalogueError(RuntimeError):
    """The saved catalogue cannot be read as it is; the message says which and what to do."""


# -- the manifest and its folder ---------------------------------------------------------------------


def _read_manifest(folder: Path) -> dict | None:
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return manifest if manifest.get("layout") == CATALOGUE_VERSION else None


def _write_manifest(folder: Path, manifest: dict) -> None:
    manifest = {**manifest, "layout": CATALOGUE_VERSION, "generation": uuid.uuid4().hex}
    tmp = folder / f".{MANIFEST}.{os.getpid()}"
    tmp.write_text(json.dumps(manifest, indent=1))
    os.replace(tmp, folder / MANIFEST)


def saved_generation(folder: Path) -> str:
    """What the saved catalogue's manifest calls its current state ("" when there is none)."""
    manifest = _read_manifest(folder)
    return manifest["generation"] if manifest else ""


@contextmanager
def _locked(folder: Path) -> Iterator[dict]:
    """The manifest, for changing, with the folder's writer lock held (another process that writes
    to the same catalogue waits)."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            manifest = _read_manifest(folder)
            if manifest is None:
                _clear(folder)
                manifest = {"segments": [], "removed": {}, "next": 1, "store_generation": ""}
            yield manifest
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _clear(folder: Path) -> None:
    """Remove what a catalogue of another layout (or none) left in ``folder``."""
    for p in folder.iterdir():
        if p.name != ".lock":
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)


def _segment_dir(folder: Path, seq: int) -> Path:
    return folder / f"segment-{seq:06d}"


def _has_segment_folders(folder: Path) -> bool:
    """Whether ``folder`` holds any segment, listed in its manifest or not (one of another layout)."""
    return folder.is_dir() and any(folder.glob("segment-*"))


# -- writing -------------------------------------------------------------------------------------------


def add_parts(store: Store, parts: list[Part], store_generation: str | None = None) -> None:
    """Add a segment of ``parts`` (decisions just stored) to the catalogue of ``store``."""
    if parts:
        dimension = parts[0].vectors.shape[1] if parts[0].vectors.ndim == 2 else DIMENSION
        add_columns(store, [columns_of_parts(parts, dimension)], store_generation)


def add_columns(store: Store, columns: list[Columns], store_generation: str | None = None) -> None:
    """Add one segment of ``columns`` (of decisions just stored, batch by batch) to the catalogue of
    ``store``.

    The changes ``store`` logged are no longer counted as taken in, and the catalogue is marked out
    of step: another process sharing this folder may have taken them in already, and with them a
    later change of the same decisions (a removal) that this segment, saved after, would undo.
    The next reconciliation reads them again (an ingest that saw no other writer says it is in
    step with ``mark_in_step`` instead)."""
    if not columns:
        return
    folder = store.catalogue_dir
    with _locked(folder) as manifest:
        _add(folder, manifest, _joined(columns))
        if store_generation is not None:
            manifest["store_generation"] = store_generation
        if "changes" in manifest and store.logged:
            manifest["changes"] = sorted(set(manifest["changes"]) - set(store.logged))
            manifest["unread"] = sorted(set(manifest.get("unread", ())) | set(store.logged))
            manifest["store_generation"] = ""
        _merge_if_many(folder, manifest)
        _write_manifest(folder, manifest)


def _joined(columns: list[Columns]) -> Columns:
    """One segment's columns from those made a batch or chunk at a time (one alone is not copied)."""
    return columns[0] if len(columns) == 1 else concatenate(columns)


def _add(folder: Path, manifest: dict, columns: Columns) -> None:
    seq = manifest["next"]
    write_segment(_segment_dir(folder, seq), columns)
    manifest["next"] = seq + 1
    manifest["segments"].append({"seq": seq, "decisions": len(columns.decisions),
                                 "passages": len(columns.passages), "windows": len(columns.vectors)})
    manifest["dimension"] = int(columns.vectors.shape[1])


def _liveness(folder: Path, manifest: dict) -> list[tuple[dict, Segment, np.ndarray]]:
    """Each segment with a bool per decision: whether it is the live copy of that decision."""
    opened = [(s, Segment.open(_segment_dir(folder, s["seq"]))) for s in manifest["segments"]]
    latest: dict[str, int] = {}
    for s, seg in opened:
        for rec in seg.decisions:
            latest[rec["ref"]] = s["seq"]
    removed = manifest.get("removed", {})
    out = []
    for s, seg in opened:
        live = np.array([latest[r["ref"]] == s["seq"] and removed.get(r["ref"], 0) <= s["seq"]
                         for r in seg.decisions], dtype=bool)
        out.append((s, seg, live))
    return out


def _merge_if_many(folder: Path, manifest: dict, everything: bool = False) -> None:
    """Merge the smallest segments into one while there are more than ``MAX_SEGMENTS`` (all of
    them when ``everything``), dropping dead copies of decisions."""
    while len(manifest["segments"]) > (1 if everything else MAX_SEGMENTS):
        status = _liveness(folder, manifest)
        chosen = status if everything else sorted(status, key=lambda x: x[0]["passages"])[:MERGE_FANIN]
        columns = [columns_of_segment(seg, live) for _, seg, live in chosen if live.any()]
        gone = {s["seq"] for s, _, _ in chosen}
        manifest["segments"] = [s for s in manifest["segments"] if s["seq"] not in gone]
        if columns:
            _add(folder, manifest, concatenate(columns))
        kept = {rec["ref"] for s, seg, _ in status if s["seq"] not in gone for rec in seg.decisions}
        kept |= {rec["ref"] for c in columns for rec in c.decisions}
        manifest["removed"] = {r: q for r, q in manifest.get("removed", {}).items() if r in kept}
        _write_manifest(folder, manifest)
        for seq in gone:
            shutil.rmtree(_segment_dir(folder, seq), ignore_errors=True)


def compact(store: Store) -> None:
    """Merge every segment into one (after building a whole archive in one go)."""
    folder = store.catalogue_dir
    with _locked(folder) as manifest:
        _merge_if_many(folder, manifest, everything=True)
        _write_manifest(folder, manifest)


def compact_if_mostly_new(store: Store, added_passages: int) -> bool:
    """Merge everything into one segment after a run that added at least half of the catalogue's
    passages (building an archive from scratch): one segment searches fastest, and a run that
    wrote that much can afford rewriting it. Returns whether it merged."""
    manifest = _read_manifest(store.catalogue_dir)
    if manifest is None or len(manifest["segments"]) < 2:
        return False
    if 2 * added_passages < sum(s["passages"] for s in manifest["segments"]):
        return False
    compact(store)
    return True


def clear(store: Store) -> None:
    """Forget the catalogue (the store was dropped)."""
    with _locked(store.catalogue_dir) as manifest:
        _clear(store.catalogue_dir)
        manifest.clear()
        manifest.update({"segments": [], "removed": {}, "next": 1, "store_generation": ""})
        _write_manifest(store.catalogue_dir, manifest)


def _parts_from_store(store: Store, refs: list[str], records: dict[str, DecisionRecord]) -> list[Part]:
    """Parts of decisions the catalogue lacks, made from their stored JSON and vectors."""
    decisions = {d.reference: d for d in store.iter_decisions(refs)}
    vectors = store.vectors_of({ref: d.content_hash for ref, d in decisions.items()})
    out = []
    for ref, d in decisions.items():
        if d.content_hash != records[ref].content_hash:
            continue  # rewritten since the records were read: the next refresh takes it
        if ref not in vectors:
            log.info("%s is being written again by another process; the next refresh takes it", ref)
            continue
        passages = passages_of(d)
        found = vectors[ref]
        counts = []
        for p in passages:
            k = 0
            while window_id(p.id, k) in found:
                k += 1
            counts.append(k)
        if any(n == 0 for n in counts):
            log.warning("%s: some passages have no vector in the store, so it is left out of searches; "
                        "`ombudsman ingest --rebuild PATH...` writes it again", ref)
            continue
        matrix = np.stack([found[window_id(p.id, k)] for p, n in zip(passages, counts) for k in range(n)])
        out.append(part_of(d, passages, counts, matrix))
    return out


def _add_texts(store: Store, seg: Segment) -> None:
    """Give a segment written without its passages' texts those of the stored decisions (a copy
    the store has since rewritten or removed is dead here: its texts are left empty)."""
    log.info("adding the passages' texts of %d decisions to the catalogue", len(seg.decisions))

    def texts() -> Iterator[str]:
        for i in range(0, len(seg.decisions), STORE_CHUNK):
            records = seg.decisions[i: i + STORE_CHUNK]
            slugs = {r["ref"].replace(" ", "-"): r["ref"] for r in records}
            # The hash the store recorded, not one computed again (which a parser change would move).
            stored = {slugs[slug]: found for slug, found in store.read_decisions(list(slugs)).items()}
            for rec in records:
                d, content_hash = stored.get(rec["ref"], (None, ""))
                same = d is not None and content_hash == rec["content_hash"]
                for n in seg.paragraph[rec["first"]: rec["first"] + rec["count"]].tolist():
                    fields = passage_fields(d, SUMMARY if n < 0 else n) if same else None
                    yield fields[0] if fields else ""

    seg.add_texts(*texts_of(texts()))


def in_step(store: Store, generation: str) -> bool:
    """Whether the saved catalogue was reconciled with the store at ``generation``, or both are
    empty (a new index's first ingest then need not read back every record it wrote)."""
    manifest = _read_manifest(store.catalogue_dir)
    if manifest and generation and manifest.get("store_generation") == generation:
        return True
    return not (manifest or {}).get("segments") and not _has_segment_folders(store.catalogue_dir) \
        and not store.has_decisions()


def mark_in_step(store: Store, generation: str, from_empty: bool = False) -> None:
    """Record that the catalogue holds what the store holds at ``generation`` (an ingest that
    added a segment for everything it wrote, and saw no other writer, says so), and has taken in
    the changes ``store`` logged (all ended when it says so): with those it had taken in from the
    same log, or alone when the ingest began with the store and the catalogue empty (a catalogue
    that has taken in none reads every record once). Nothing is written when the manifest says so
    already: a rewritten manifest makes serving processes reload the catalogue."""
    log_id = store.log_identity()
    with _locked(store.catalogue_dir) as manifest:
        before = dict(manifest)
        if log_id is not None and (from_empty or ("changes" in manifest and manifest.get("log") == log_id)):
            manifest["changes"] = sorted(set(() if from_empty else manifest["changes"]) | set(store.logged))
            manifest["log"] = log_id
        # Changes whose segment another ingest saved in this folder after someone may have taken
        # them in (``add_columns``) are for a reconciliation to read: it stays out of step.
        manifest["unread"] = sorted(set(manifest.get("unread", ())) - set(store.logged))
        if not manifest["unread"]:
            manifest["store_generation"] = generation
        if manifest != before:
            _write_manifest(store.catalogue_dir, manifest)


def refresh(store: Store, force: bool = False) -> bool:
    """Bring the catalogue up to date with the store's content: a segment for the decisions it
    lacks, the removal of those the store no longer holds. Returns whether anything changed.

    Without ``force`` nothing is read when the store's generation is the one the catalogue was
    last reconciled with. Otherwise only the records of the decisions of the changes in the
    store's log that the catalogue has not taken in are read (``index.store.CHANGES``); every
    record when it has taken in none of this log (a catalogue made before the log, a log made
    again by ``--rebuild``, the store of a version that kept none), or with ``force``."""
    folder = store.catalogue_dir
    generation = store.generation()
    manifest = _read_manifest(folder)
    if not force and manifest is not None and generation and manifest.get("store_generation") == generation:
        return False
    # Under the folder's lock from the reads on: records read before another process sharing the
    # folder saved what it read later would be applied over it.
    with _locked(folder) as manifest:
        if not force and generation and manifest.get("store_generation") == generation:
            return False  # that process has just done it
        # The log before the records: a change that ends after they are read is taken in next
        # time. The records of changes not ended are read too (a decision being written, or left
        # half written, is kept out of searches, as it is by reading every record), but those are
        # taken in only once they have ended: a write logged before another may end after it.
        log_id, ended, running = store.change_log() or (None, [], [])
        partial = log_id is not None and not force and "changes" in manifest and manifest.get("log") == log_id
        taken = set(manifest["changes"]) if partial else set()
        new = [t for t in ended if t not in taken]
        changes = store.changes([*new, *running]) if partial else {}  # every record is read otherwise
        touched = sorted({ref for c in changes.values() for ref in c.references}) if partial else None
        records = store.records(touched)
        complete = {ref: r for ref, r in records.items() if r.complete}
        changed = False
        status = _liveness(folder, manifest)
        have = {rec["ref"]: rec["content_hash"] for _, seg, live in status
                for rec, alive in zip(seg.decisions, live) if alive}
        missing = [ref for ref, r in complete.items() if have.get(ref) != r.content_hash]
        gone = [ref for ref in (have if touched is None else touched) if ref in have and ref not in complete]
        added: set[str] = set()
        if missing:
            log.info("making the catalogue of %d decisions from the store", len(missing))
            # Columns a chunk at a time (int8 vectors), not every decision's parts (float32 vectors,
            # Python passages and tokens) held until the end: a whole archive's parts take gigabytes.
            columns: list[Columns] = []
            for i in range(0, len(missing), STORE_CHUNK):
                parts = _parts_from_store(store, missing[i: i + STORE_CHUNK], records)
                added.update(part.reference for part in parts)
                if parts:
                    columns.append(columns_of_parts(parts, parts[0].vectors.shape[1]))
            if columns:
                _add(folder, manifest, _joined(columns))
            changed = True
        if gone:
            for ref in gone:
                manifest["removed"][ref] = manifest["next"]
            changed = True
        if changed:
            _merge_if_many(folder, manifest)
        if log_id is None:
            manifest.pop("changes", None)
            manifest.pop("log", None)
        else:
            # A decision left out (being written again as its vectors were read) leaves its change
            # to be taken in again.
            kept_out = set(missing) - added
            if kept_out and not partial:
                changes = store.changes(new)
            now = {t for t in new if t in changes and not kept_out.intersection(changes[t].references)} \
                if kept_out else set(new)
            now_taken = sorted(now | taken)
            changed_log = manifest.get("changes") != now_taken or manifest.get("log") != log_id
            manifest["changes"], manifest["log"] = now_taken, log_id
            manifest["unread"] = sorted(set(manifest.get("unread", ())) - set(now_taken))
            changed = changed or changed_log
        if changed or manifest.get("store_generation") != generation or not (folder / MANIFEST).exists():
            manifest["store_generation"] = generation
            _write_manifest(folder, manifest)
    return changed


# -- the loaded view ---------------------------------------------------------------------------------


class PassageRow(NamedTuple):
    """What the retriever knows of a passage without reading its decision."""

    ref: str
    paragraph: str  # "summary" or the number as text
    section: str
    subsection: str
    boilerplate_key: str
    tokens: int
    statutes: list[str]


class _Located(NamedTuple):
    segment: int
    local: int  # passage position in its segment
    position: int  # in the whole catalogue


class Catalogue:
    """The saved catalogue, opened: what is indexed, and the lookups a search needs.

    Passages have positions ``0 .. size - 1`` across segments (a segment's passages follow the
    previous segment's); window rows likewise. Dead copies keep their positions and are masked.
    """

    def __init__(self, folder: Path, manifest: dict) -> None:
        self.folder = folder
        self.fingerprint = manifest["generation"]
        self.store_generation = manifest.get("store_generation", "")
        status = _liveness(folder, manifest)
        self.segments: list[Segment] = [seg for _, seg, _ in status]
        self.offsets = np.cumsum([0] + [len(s) for s in self.segments])
        self.window_offsets = np.cumsum([0] + [s.windows for s in self.segments])
        self.size = int(self.offsets[-1])
        self._starts = [int(o) for o in self.offsets[:-1]] or [0]
        self.live = np.zeros(self.size, dtype=bool)
        self.decisions: dict[str, dict] = {}
        self._where: dict[str, tuple[int, int, int]] = {}  # reference -> (segment, first local position, count)
        self._located: dict[str, _Located | None] = {}  # locate's answers, kept (bounded)
        self._row_cache: dict[int, PassageRow] = {}
        self._slugs: dict[str, str] = {}
        # per segment, the catalogue-wide number of each of its decisions (-1: a dead copy); and per
        # number, the segment and row holding it
        self._decision_number: list[np.ndarray] = []
        places: list[tuple[int, int]] = []
        for i, (_, seg, alive) in enumerate(status):
            if len(seg):
                self.live[self.offsets[i]: self.offsets[i + 1]] = alive[seg.passages["decision"]]
            numbers = np.full(len(seg.decisions), -1, dtype=np.int64)
            self._decision_number.append(numbers)
            for row, (rec, a) in enumerate(zip(seg.decisions, alive)):
                if a:
                    numbers[row] = len(places)
                    places.append((i, row))
                    self.decisions[rec["ref"]] = {k: v for k, v in rec.items() if k not in ("ref", "first", "count")}
                    self._where[rec["ref"]] = (i, rec["first"], rec["count"])
                    self._slugs[rec["ref"].replace(" ", "-")] = rec["ref"]
        spans_ = [(self._where[r][0], self._where[r][1], self._where[r][2]) for r in self.decisions]
        self._ref_index = {r: i for i, r in enumerate(self.decisions)}
        self._firsts = np.array([int(self.offsets[g]) + f for g, f, _ in spans_], dtype=np.int64)
        self._counts = np.array([c for _, _, c in spans_], dtype=np.int64)
        self._refs = list(self.decisions)  # by catalogue-wide decision number
        self._slug_of = [r.replace(" ", "-") for r in self._refs]
        self._places = np.array(places, dtype=np.int64).reshape(-1, 2)
        self.by_authority: dict[str, list[str]] = {}
        self.by_outcome: dict[str, list[str]] = {}  # lower-cased outcome -> references
        for ref, d in self.decisions.items():
            self.by_authority.setdefault(d["authority"], []).append(ref)
            self.by_outcome.setdefault(d["outcome"].lower(), []).append(ref)
        dated = sorted((d["decision_date"], ref) for ref, d in self.decisions.items() if d["decision_date"])
        self._dates = [d for d, _ in dated]
        self._dated = [r for _, r in dated]
        self.dimension = int(manifest.get("dimension", DIMENSION))
        self._shared_keys = np.zeros(0, dtype=np.uint64)
        self.boilerplate = self._shared_openings()
        self.lexical = LexicalIndex(self)
        self.passages = _Passages(self)
        self.by_ref = _ByRef(self)
        self.rows = _Rows(self)
        self.decision_rows = _DecisionRange(self, windows=True)
        self.decision_docs = _DecisionRange(self, windows=False)
        self.vectors = _Vectors(self) if self.window_offsets[-1] else None

    @classmethod
    def load(cls, store: Store) -> "Catalogue":
        """The catalogue of ``store``, reconciled first when the store changed since it was saved
        (another process wrote to it) or when there is none."""
        folder = store.catalogue_dir
        manifest = _read_manifest(folder)
        if manifest is None or manifest.get("store_generation") != store.generation():
            if manifest is None:
                log.info("no catalogue at %s yet; making it from the store", folder)
            refresh(store, force=manifest is None)
            manifest = _read_manifest(folder)
        if manifest is None:
            raise CatalogueError(f"the catalogue at {folder} could not be written")
        cat = cls(folder, manifest)
        for seg in cat.segments:
            if seg.text_start is None:
                _add_texts(store, seg)
        return cat

    # -- positions -----------------------------------------------------------------------------

    def locate(self, pid: str) -> _Located | None:
        """Where passage ``pid`` (``24-016-809#15``) is, or None when it is not indexed."""
        try:
            return self._located[pid]
        except KeyError:
            pass
        found = self._locate(pid)
        if len(self._located) > LOCATED_KEPT:
            self._located.clear()
        self._located[pid] = found
        return found

    def _locate(self, pid: str) -> _Located | None:
        slug, _, paragraph = pid.partition("#")
        ref = self._slugs.get(slug)
        if ref is None:
            return None
        seg_i, first, count = self._where[ref]
        number = -1 if paragraph == SUMMARY else (int(paragraph) if paragraph.isdigit() else None)
        if number is None:
            return None
        numbers = self.segments[seg_i].paragraph[first: first + count].tolist()
        if number not in numbers:
            return None
        local = first + numbers.index(number)
        return _Located(seg_i, local, int(self.offsets[seg_i]) + local)

    def position(self, pid: str) -> int:
        found = self.locate(pid)
        return -1 if found is None else found.position

    def segment_of(self, position: int) -> tuple[int, int]:
        """(segment, position in it) of a catalogue position."""
        i = bisect.bisect_right(self._starts, position) - 1
        return i, position - self._starts[i]

    def pid_at(self, position: int) -> str:
        i, local = self.segment_of(position)
        seg = self.segments[i]
        row = seg.passages[local]
        ref = seg.decisions[int(row["decision"])]["ref"]
        n = int(row["paragraph"])
        return f"{ref.replace(' ', '-')}#{SUMMARY if n < 0 else n}"

    def pids_at(self, positions) -> list[str]:
        """``pid_at`` of many live positions at once (a search names a few hundred candidates)."""
        positions = np.asarray(positions, dtype=np.int64)
        slugs = self._slug_of
        return [f"{slugs[d]}#{SUMMARY if n < 0 else n}"
                for d, n in zip(self.decision_numbers(positions).tolist(), self.paragraphs_at(positions).tolist())]

    def stored_passages(self, pids) -> dict[str, StoredPassage]:
        """Passages by id as the store gives them (``Store.passages``), made from the catalogue
        alone: a search shows its hits without reading their decisions. Ids not indexed are left out."""
        out: dict[str, StoredPassage] = {}
        for pid in pids:
            found = self.locate(pid)
            if found is None or self.segments[found.segment].text_start is None:
                continue
            seg = self.segments[found.segment]
            text = seg.text(found.local)
            if not text:  # a text the catalogue could not get when it was made: the store's, then
                continue
            row = self.row_at(found.position)
            d = self.decisions[row.ref]
            out[pid] = StoredPassage(pid, {
                "passage_id": pid, "ref": row.ref, "paragraph": row.paragraph, "section": row.section,
                "subsection": row.subsection, "authority": d["authority"], "category": d["category"],
                "outcome": d["outcome"], "decision_date": d["decision_date"], "url": d["url"],
                "decision_hash": d["content_hash"], "statutes": list(row.statutes),
                "aliases": list(aliases_in(text, tuple(d["aliases"]))),
            }, text)
        return out

    def row_at(self, position: int) -> PassageRow:
        try:
            return self._row_cache[position]
        except KeyError:
            pass
        if len(self._row_cache) > LOCATED_KEPT:
            self._row_cache.clear()
        row = self._row_cache[position] = self._row_at(position)
        return row

    def _row_at(self, position: int) -> PassageRow:
        i, local = self.segment_of(position)
        seg = self.segments[i]
        row = seg.passages[local]
        n = int(row["paragraph"])
        a, c = int(row["statute_start"]), int(row["statute_count"])
        return PassageRow(seg.decisions[int(row["decision"])]["ref"], SUMMARY if n < 0 else str(n),
                          seg.sections[int(row["section"])], seg.subsections[int(row["subsection"])],
                          boilerplate_text(row["boilerplate"]), int(row["tokens"]),
                          [seg.statutes[int(s)] for s in seg.statute_ids[a: a + c]])

    def decision_span(self, ref: str) -> tuple[int, int]:
        """The positions of a decision's passages: ``first, count`` (0, 0 when not indexed)."""
        where = self._where.get(ref)
        if where is None:
            return 0, 0
        seg_i, first, count = where
        return int(self.offsets[seg_i]) + first, count

    def window_span(self, position: int) -> tuple[int, int]:
        i, local = self.segment_of(position)
        row = self.segments[i].passages[local]
        return int(self.window_offsets[i]) + int(row["window_start"]), int(row["window_count"])

    def _by_segment(self, indexes: np.ndarray, windows: bool = False) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """For each segment holding some of ``indexes`` (passage positions, or window rows when
        ``windows``): its number, which of them, and their numbers within it."""
        offsets = self.window_offsets if windows else self.offsets
        seg_of = np.searchsorted(offsets, indexes, side="right") - 1
        for i in np.unique(seg_of):
            mask = seg_of == i
            yield int(i), mask, indexes[mask] - int(offsets[i])

    def decision_numbers(self, positions) -> np.ndarray:
        """The catalogue-wide number of the decision of each passage at ``positions`` (its index in
        ``decisions``; -1 for a dead copy)."""
        positions = np.asarray(positions, dtype=np.int64)
        out = np.full(len(positions), -1, dtype=np.int64)
        for i, mask, local in self._by_segment(positions):
            out[mask] = self._decision_number[i][self.segments[i].passages["decision"][local]]
        return out

    def decision_passages(self, numbers) -> tuple[np.ndarray, np.ndarray]:
        """The first position and the passage count of decisions ``numbers``."""
        numbers = np.asarray(numbers, dtype=np.int64)
        return self._firsts[numbers], self._counts[numbers]

    def paragraphs_at(self, positions) -> np.ndarray:
        """Paragraph numbers of the passages at ``positions`` (-1 for a Summary)."""
        positions = np.asarray(positions, dtype=np.int64)
        out = np.zeros(len(positions), dtype=np.int64)
        for i, mask, local in self._by_segment(positions):
            out[mask] = self.segments[i].paragraph[local]
        return out

    def passage_columns(self, positions, headings: bool = True) -> tuple[np.ndarray, list[str], np.ndarray, np.ndarray]:
        """For the passages at ``positions``: paragraph numbers (-1: Summary), section headings
        (all "" unless ``headings``), boilerplate keys (as stored) and token counts, read as columns."""
        positions = np.asarray(positions, dtype=np.int64)
        paragraphs = np.zeros(len(positions), dtype=np.int64)
        keys = np.zeros(len(positions), dtype=np.uint64)
        tokens = np.zeros(len(positions), dtype=np.int64)
        sections: list[str] = [""] * len(positions)
        for i, mask, local in self._by_segment(positions):
            seg = self.segments[i]
            paragraphs[mask] = seg.paragraph[local]
            keys[mask] = seg.passages["boilerplate"][local]
            tokens[mask] = seg.passages["tokens"][local]
            if headings:
                names = seg.sections
                for at, s in zip(np.flatnonzero(mask).tolist(), seg.passages["section"][local].tolist()):
                    sections[at] = names[s]
        return paragraphs, sections, keys, tokens

    def is_boilerplate_key(self, keys: np.ndarray) -> np.ndarray:
        """Whether each stored boilerplate key is one of the archive's boilerplate openings."""
        shared = self._shared_keys  # sorted (np.unique made it)
        if not len(shared):
            return np.zeros(len(keys), dtype=bool)
        keys = np.asarray(keys, dtype=np.uint64)
        return shared[np.searchsorted(shared, keys).clip(max=len(shared) - 1)] == keys

    def reference_of(self, number: int) -> str:
        """The reference of decision ``number`` (its index in ``decisions``)."""
        return self._refs[number]

    @cached_property
    def decision_columns(self) -> "DecisionColumns":
        """The fields a search compares with what a question names, a column per field by
        decision number (a search compares them for the hundred-odd decisions of its candidates)."""
        records = [self.decisions[r] for r in self._refs]
        return DecisionColumns(
            *_codes(r["authority"] for r in records), *_codes(r["outcome"] for r in records),
            *_codes(r["category"] for r in records),
            np.array([int((r["decision_date"] or "0")[:4] or 0) for r in records], dtype=np.int64))

    def cosines(self, rows, vector: np.ndarray) -> np.ndarray:
        """Cosine of window ``rows`` (catalogue-wide) with ``vector``, from the int8 rows."""
        rows = np.asarray(rows, dtype=np.int64)
        out = np.zeros(len(rows), dtype=np.float32)
        for i, mask, local in self._by_segment(rows, windows=True):
            out[mask] = self.segments[i].similarities(local, vector)
        return out

    def decision_cosines(self, numbers, vector: np.ndarray) -> np.ndarray:
        """Cosine of each decision's direction as a whole (its windows summed) with ``vector``."""
        numbers = np.asarray(numbers, dtype=np.int64)
        out = np.zeros(len(numbers), dtype=np.float32)
        places = self._places[numbers]
        for i in np.unique(places[:, 0]):
            mask = places[:, 0] == i
            seg = self.segments[int(i)]
            rows = places[mask, 1]
            out[mask] = dot_rows(take_rows(seg.decision_vectors, rows), vector) * seg.decision_scales[rows]
        return out

    def window_spans(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``window_span`` of many positions at once: first window rows and window counts."""
        positions = np.asarray(positions, dtype=np.int64)
        starts = np.zeros(len(positions), dtype=np.int64)
        counts = np.zeros(len(positions), dtype=np.int64)
        for i, mask, local in self._by_segment(positions):
            passages = self.segments[i].passages
            starts[mask] = passages["window_start"][local] + int(self.window_offsets[i])
            counts[mask] = passages["window_count"][local]
        return starts, counts

    def positions_of(self, refs) -> np.ndarray:
        """The positions of the passages of decisions ``refs``, in order (one numpy call for any
        number of decisions: a filter may keep a third of an archive's)."""
        idx = self.decision_indexes(refs)
        return spans(self._firsts[idx], self._counts[idx])

    def decision_indexes(self, refs) -> np.ndarray:
        index = self._ref_index
        return np.fromiter((index[r] for r in refs if r in index), dtype=np.int64)

    def passages_in(self, refs) -> int:
        return int(self._counts[self.decision_indexes(refs)].sum())

    def dated_between(self, lo: str, hi: str) -> list[str]:
        """References of the decisions dated ``lo`` to ``hi`` (ISO dates, both included)."""
        return self._dated[bisect.bisect_left(self._dates, lo): bisect.bisect_right(self._dates, hi)]

    # -- boilerplate ---------------------------------------------------------------------------

    def _shared_openings(self) -> dict[str, int]:
        """Boilerplate keys shared by at least ``BOILERPLATE_MIN_DECISIONS`` decisions, with how many."""
        keys, decisions = [], []
        for i, seg in enumerate(self.segments):
            alive = self.live[self.offsets[i]: self.offsets[i + 1]]
            keys.append(np.asarray(seg.passages["boilerplate"])[alive])
            decisions.append(np.asarray(seg.passages["decision"])[alive].astype(np.int64) + (i << 32))
        if not keys:
            return {}
        # Each (key, decision) pair once, found by sorting the two columns together: the same
        # pairs as ``np.unique`` of them as records, which sorted the records field by field in
        # 1.42 s at 1,500,006 passages, almost half of opening the catalogue (0.24 s this way).
        keys, decisions = np.concatenate(keys), np.concatenate(decisions)
        order = np.lexsort((decisions, keys))
        keys, decisions = keys[order], decisions[order]
        first = np.ones(len(keys), dtype=bool)
        first[1:] = (keys[1:] != keys[:-1]) | (decisions[1:] != decisions[:-1])
        shared, counts = np.unique(keys[first], return_counts=True)
        wanted = counts >= BOILERPLATE_MIN_DECISIONS
        self._shared_keys = shared[wanted]
        return {boilerplate_text(k): int(n) for k, n in zip(shared[wanted], counts[wanted])}

    def is_boilerplate(self, pid: str) -> bool:
        found = self.locate(pid)
        if found is None:
            return False
        key = self.segments[found.segment].passages["boilerplate"][found.local]
        return boilerplate_text(key) in self.boilerplate

    # -- dense search ------------------------------------------------------------------------------

    def nearest(self, vector: np.ndarray, n: int, probes: int, allowed: np.ndarray | None = None) -> list[tuple[int, float]]:
        """The ``n`` live passages nearest ``vector`` as ``(position, cosine of its best window)``,
        best first: small segments scored exactly, large ones through their ``probes`` nearest
        clusters; ``allowed`` (a bool per position) keeps only those passages."""
        vector = np.asarray(vector, dtype=np.float32)
        found_pos, found_sim = [], []
        for i, seg in enumerate(self.segments):
            if not seg.windows:
                continue
            rows, sims = seg.probe(vector, probes)
            local = np.asarray(seg.window_passage[rows], dtype=np.int64)
            positions = local + int(self.offsets[i])
            keep = self.live[positions] if allowed is None else (self.live[positions] & allowed[positions])
            found_pos.append(positions[keep])
            found_sim.append(sims[keep])
        if not found_pos:
            return []
        positions, sims = np.concatenate(found_pos), np.concatenate(found_sim)
        # The best windows are enough unless many belong to the same passages (a passage has at
        # most a few windows): take four per passage wanted, and all of them only when that falls short.
        if len(sims) > 4 * n:
            best = np.argpartition(-sims, 4 * n - 1)[: 4 * n]
            if len(np.unique(positions[best])) >= n:
                positions, sims = positions[best], sims[best]
        order = np.lexsort((positions, -sims))  # best first; a passage's best window first
        positions, sims = positions[order], sims[order]
        _, first = np.unique(positions, return_index=True)
        first = np.sort(first)[:n]
        return [(int(positions[j]), float(sims[j])) for j in first]


    def exact_nearest(self, vector: np.ndarray, positions: np.ndarray, n: int) -> list[tuple[int, float]]:
        """The ``n`` of the passages at ``positions`` nearest ``vector``, scored exactly (a block of
        ``EXACT_BLOCK`` passages at a time, so memory stays small however many there are)."""
        positions = np.asarray(positions, dtype=np.int64)
        if len(positions) > EXACT_BLOCK:
            best = [hit for a in range(0, len(positions), EXACT_BLOCK)
                    for hit in self.exact_nearest(vector, positions[a: a + EXACT_BLOCK], n)]
            return sorted(best, key=lambda h: (-h[1], h[0]))[:n]
        vector = np.asarray(vector, dtype=np.float32)
        positions = positions[self.live[positions]] if len(positions) else positions
        best = np.zeros(len(positions), dtype=np.float32)
        for i, mask, local in self._by_segment(positions):
            seg = self.segments[i]
            counts = seg.passages["window_count"][local].astype(np.int64)  # a column: not whole records
            sims = seg.similarities(spans(seg.passages["window_start"][local], counts), vector)
            best[mask] = np.maximum.reduceat(sims, np.concatenate(([0], np.cumsum(counts)[:-1])))
        return _best_n(positions, best, n)


@dataclass(frozen=True)
class DecisionColumns:
    """Decision fields by decision number: each a code into its table of values, and the year."""

    authority: np.ndarray
    authorities: dict[str, int]
    outcome: np.ndarray
    outcomes: dict[str, int]
    category: np.ndarray
    categories: dict[str, int]
    year: np.ndarray  # 0: not dated

    @cached_property
    def category_names(self) -> list[str]:
        return list(self.categories)

    def has(self, column: str, values, numbers: np.ndarray) -> np.ndarray:
        """Whether the ``column`` (authority, outcome, category) of each decision of ``numbers`` is
        one of ``values``."""
        table = getattr(self, {"authority": "authorities", "outcome": "outcomes", "category": "categories"}[column])
        return np.isin(getattr(self, column)[numbers], [table[v] for v in values if v in table])


def _codes(values) -> tuple[np.ndarray, dict[str, int]]:
    table: dict[str, int] = {}
    codes = np.fromiter((table.setdefault(v, len(table)) for v in values), dtype=np.int32)
    return codes, table


def _best_n(positions: np.ndarray, best: np.ndarray, n: int) -> list[tuple[int, float]]:
    """The ``n`` highest of ``best`` as ``(position, cosine)``, best first, ties in position order
    (only the best n, and any tied with the last of them, are sorted)."""
    if len(best) > n:
        cut = np.partition(best, len(best) - n)[len(best) - n]
        keep = best >= cut
        positions, best = positions[keep], best[keep]
    order = np.lexsort((positions, -best))[:n]
    return [(int(positions[j]), float(best[j])) for j in order]


class WindowBlock:
    """The window vectors of some passages gathered into one array, for scoring them all exactly
    again and again (a filter a user keeps for several questions): a read of one run of memory
    instead of windows scattered through a segment's cluster order."""

    def __init__(self, cat: Catalogue, positions: np.ndarray) -> None:
        positions = np.asarray(positions, dtype=np.int64)
        self.positions = positions[cat.live[positions]] if len(positions) else positions
        first, counts = cat.window_spans(self.positions)
        rows = spans(first, counts)
        self.starts = np.concatenate(([0], np.cumsum(counts)[:-1])).astype(np.int64)
        self.vectors = np.zeros((len(rows), cat.dimension), dtype=np.int8)
        self.scales = np.zeros(len(rows), dtype=np.float32)
        for i, mask, local in cat._by_segment(rows, windows=True):
            self.vectors[mask], self.scales[mask] = cat.segments[i].window_rows(local)

    def nearest(self, vector: np.ndarray, n: int) -> list[tuple[int, float]]:
        """``Catalogue.exact_nearest`` of these passages (the same cosines, the same order)."""
        if not len(self.positions):
            return []
        sims = dot_rows(self.vectors, vector) * self.scales
        return _best_n(self.positions, np.maximum.reduceat(sims, self.starts), n)


class PassageSet:
    """The passages of some decisions (and a few named passages), without listing them: a filter
    that keeps a third of an archive's decisions names hundreds of thousands of passages."""

    def __init__(self, cat: Catalogue, refs, extra=()) -> None:
        self.cat, self.refs, self.extra = cat, {r for r in refs if r in cat.decisions}, set(extra)
        self._mask: np.ndarray | None = None
        self._len: int | None = None
        self.block: WindowBlock | None = None  # its windows gathered, when a filter keeps it

    def __contains__(self, pid) -> bool:
        if pid in self.extra:
            return True
        ref = self.cat._slugs.get(str(pid).partition("#")[0])
        return ref in self.refs and pid in self.cat.passages

    def __len__(self) -> int:
        # Counted once: a kept filter's set is asked its size at every search, and counting looks
        # up each of its decisions (a third of an archive's, for an outcome).
        if self._len is None:
            self._len = self.cat.passages_in(self.refs) + sum(1 for p in self.extra if not self._in_refs(p))
        return self._len

    def _in_refs(self, pid: str) -> bool:
        return self.cat._slugs.get(pid.partition("#")[0]) in self.refs

    def __bool__(self) -> bool:
        return bool(self.refs) or bool(self.extra)

    def __iter__(self) -> Iterator[str]:
        for ref in self.refs:
            yield from self.cat.by_ref[ref]
        yield from (p for p in self.extra if not self._in_refs(p))

    def __or__(self, other) -> "PassageSet":
        return PassageSet(self.cat, self.refs, self.extra | set(other))

    __ror__ = __or__

    def positions(self) -> np.ndarray:
        extra = [self.cat.position(p) for p in self.extra if not self._in_refs(p)]
        return np.concatenate([self.cat.positions_of(self.refs),
                               np.asarray([e for e in extra if e >= 0], dtype=np.int64)])

    def mask(self) -> np.ndarray:
        """A bool per catalogue position."""
        if self._mask is None:
            m = np.zeros(self.cat.size, dtype=bool)
            m[self.positions()] = True
            self._mask = m
        return self._mask


class _Passages(Mapping):
    """Passage id -> ``PassageRow``, for the live passages."""

    def __init__(self, cat: Catalogue) -> None:
        self.cat = cat

    def __getitem__(self, pid: str) -> PassageRow:
        found = self.cat.locate(pid)
        if found is None:
            raise KeyError(pid)
        return self.cat.row_at(found.position)

    def __contains__(self, pid) -> bool:
        return isinstance(pid, str) and self.cat.locate(pid) is not None

    def __iter__(self) -> Iterator[str]:
        for ref in self.cat.decisions:
            yield from self.cat.by_ref[ref]

    def __len__(self) -> int:
        return int(self.cat.live.sum())


class _ByRef(Mapping):
    """Reference -> its passage ids, in order (Summary first)."""

    def __init__(self, cat: Catalogue) -> None:
        self.cat = cat

    def __getitem__(self, ref: str) -> list[str]:
        first, count = self.cat.decision_span(ref)
        if not count:
            raise KeyError(ref)
        seg_i, local = self.cat.segment_of(first)
        slug = ref.replace(" ", "-")
        numbers = self.cat.segments[seg_i].passages["paragraph"][local: local + count]
        return [f"{slug}#{SUMMARY if n < 0 else int(n)}" for n in numbers]

    def __iter__(self) -> Iterator[str]:
        return iter(self.cat.decisions)

    def __len__(self) -> int:
        return len(self.cat.decisions)


class _Rows(Mapping):
    """Passage id -> its window rows (in ``Catalogue.vectors``)."""

    def __init__(self, cat: Catalogue) -> None:
        self.cat = cat

    def __getitem__(self, pid: str) -> list[int]:
        found = self.cat.locate(pid)
        if found is None:
            raise KeyError(pid)
        start, count = self.cat.window_span(found.position)
        return list(range(start, start + count))

    def __contains__(self, pid) -> bool:
        return isinstance(pid, str) and self.cat.locate(pid) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(self.cat.passages)

    def __len__(self) -> int:
        return len(self.cat.passages)


class _DecisionRange(Mapping):
    """Reference -> all its window rows, or all its passage positions."""

    def __init__(self, cat: Catalogue, windows: bool) -> None:
        self.cat, self.windows = cat, windows

    def __getitem__(self, ref: str) -> np.ndarray:
        first, count = self.cat.decision_span(ref)
        if not count:
            raise KeyError(ref)
        if not self.windows:
            return np.arange(first, first + count, dtype=np.int64)
        start, _ = self.cat.window_span(first)
        end, n = self.cat.window_span(first + count - 1)
        return np.arange(start, end + n, dtype=np.int64)

    def __iter__(self) -> Iterator[str]:
        return iter(self.cat.decisions)

    def __len__(self) -> int:
        return len(self.cat.decisions)


class _Vectors:
    """The window vectors as float32, by catalogue-wide row."""

    def __init__(self, cat: Catalogue) -> None:
        self.cat = cat

    def __len__(self) -> int:
        return int(self.cat.window_offsets[-1])

    def __getitem__(self, rows) -> np.ndarray:
        rows = np.atleast_1d(np.asarray(rows, dtype=np.int64))
        out = np.zeros((len(rows), self.cat.dimension), dtype=np.float32)
        for i, mask, local in self.cat._by_segment(rows, windows=True):
            out[mask] = self.cat.segments[i].window_vectors(local)
        return out
