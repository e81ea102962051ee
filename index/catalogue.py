"""The catalogue: what the retriever keeps beside Chroma, kept current decision by decision.

For every indexed decision a *part* holds what the retriever needs of it: one row per passage
(the fields it filters and groups on), the passages' BM25 tokens, and its window vectors. Parts are
saved in a SQLite file beside the lexical index, keyed by reference and content hash. Ingest
writes the part of each decision as it stores the decision, so rebuilding the catalogue after an
ingest reads only parts (never the whole store) and tokenises nothing again; a part that is missing
or stale (another process wrote to a shared Chroma server, or an index built before parts existed)
is made from the store, once.

From the parts of the complete decisions, ``refresh`` writes the lexical index (BM25), the
catalogue JSON (passage rows, decision metadata, the boilerplate table) and a copy of the vectors
that lets a search restricted to a few decisions score them exactly.
"""

from __future__ import annotations

import json
import logging
import shutil
import sqlite3
import tempfile
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, NamedTuple

import numpy as np

from index.decision import Decision
from index.facts import facts_of
from index.lexical import LexicalIndex, tokenize
from index.passage import Passage, passages_of
from index.store import DecisionRecord, DecisionWrite, Store, passage_of_window, window_id

log = logging.getLogger(__name__)

CATALOGUE_VERSION = "7"  # bumped when the catalogue's layout, a part's layout or the lexical tokens change
# A paragraph whose opening words (``boilerplate_key``) appear in at least this many decisions is
# boilerplate: the standard wording about the Ombudsman's role, powers and the law.
BOILERPLATE_MIN_DECISIONS = 3
DIMENSION = 384  # of an empty vector copy
# Decisions read from the store per call when parts have to be made from it.
STORE_CHUNK = 200


@dataclass(frozen=True)
class Part:
    """One decision's share of the catalogue, as saved."""

    reference: str
    content_hash: str
    rows: list[list]  # per passage: [id, ref, paragraph, section, subsection, boilerplate key, tokens, statutes]
    aliases: list[str]
    tokens: list[str]  # per passage: its BM25 tokens joined by spaces
    window_ids: list[str]
    vectors: np.ndarray  # float32, one row per window id
    facts: dict = field(default_factory=dict)  # index.facts.Facts.to_json() of the decision


def part_of(decision: Decision, passages: list[Passage], window_counts: list[int], vectors: np.ndarray) -> Part:
    """The part of a decision whose passages have ``window_counts`` windows with these vectors."""
    rows = [[p.id, p.reference, str(p.paragraph), p.section, p.subsection, p.boilerplate_key, p.token_count,
             list(p.statutes)] for p in passages]
    window_ids = [window_id(p.id, k) for p, n in zip(passages, window_counts) for k in range(n)]
    if len(window_ids) != len(vectors):
        raise ValueError(f"{decision.reference}: {len(vectors)} vectors for {len(window_ids)} windows")
    aliases = sorted({a for p in passages for a in p.aliases})
    # BM25 indexes what the encoder embeds: the heading gives short paragraphs the words of their role.
    tokens = [" ".join(tokenize(p.embedding_text())) for p in passages]
    return Part(decision.reference, decision.content_hash, rows, aliases, tokens, window_ids,
                np.asarray(vectors, dtype=np.float32), facts_of(decision).to_json())


def parts_of_writes(batch: list[DecisionWrite]) -> list[Part]:
    """Parts of decisions just written to the store (ingest's writer calls this)."""
    return [part_of(w.decision, w.passages, [len(ws) for ws in w.windows], w.vectors) for w in batch]


class Parts:
    """The SQLite file of parts. Safe to share between threads (one connection, one lock)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
            version = db.execute("SELECT value FROM meta WHERE key='version'").fetchone()
            if version is None or version[0] != CATALOGUE_VERSION:
                db.execute("DROP TABLE IF EXISTS parts")  # parts of another layout are remade
                db.execute("INSERT OR REPLACE INTO meta VALUES ('version', ?)", (CATALOGUE_VERSION,))
            db.execute(
                "CREATE TABLE IF NOT EXISTS parts (ref TEXT PRIMARY KEY, content_hash TEXT NOT NULL,"
                " body TEXT NOT NULL, vectors BLOB NOT NULL, dim INTEGER NOT NULL)"
            )
            self._db = db
        return self._db

    def put(self, parts: Iterable[Part]) -> None:
        rows = [(p.reference, p.content_hash,
                 json.dumps({"rows": p.rows, "aliases": p.aliases, "tokens": p.tokens, "window_ids": p.window_ids,
                             "facts": p.facts},
                            ensure_ascii=False),
                 p.vectors.tobytes(), int(p.vectors.shape[1]) if p.vectors.ndim == 2 else 0)
                for p in parts]
        with self._lock:
            self.db.execute("BEGIN")
            self.db.executemany("INSERT OR REPLACE INTO parts VALUES (?, ?, ?, ?, ?)", rows)
            self.db.execute("COMMIT")

    def clear(self) -> None:
        """Forget every part (the store was dropped)."""
        with self._lock:
            self.db.execute("DELETE FROM parts")
        self.close()

    def hashes(self) -> dict[str, str]:
        with self._lock:
            return dict(self.db.execute("SELECT ref, content_hash FROM parts").fetchall())

    def delete(self, refs: Iterable[str]) -> None:
        with self._lock:
            self.db.execute("BEGIN")
            self.db.executemany("DELETE FROM parts WHERE ref = ?", [(r,) for r in refs])
            self.db.execute("COMMIT")

    def windows(self) -> int:
        """Window vectors held in all parts (the size of the vector copy, known before reading)."""
        with self._lock:
            got = self.db.execute("SELECT SUM(LENGTH(vectors) / (4 * dim)) FROM parts WHERE dim > 0").fetchone()
        return int(got[0] or 0)

    def dimension(self) -> int:
        """The length of the saved vectors (``DIMENSION`` when there are none)."""
        with self._lock:
            got = self.db.execute("SELECT dim FROM parts WHERE dim > 0 LIMIT 1").fetchone()
        return int(got[0]) if got else DIMENSION

    def iterate(self, page: int = 500) -> Iterator[Part]:
        """Every saved part, in reference order (so rebuilt catalogues come out the same), read a
        page at a time so that an archive's parts are never all in memory at once."""
        after = ""
        while True:
            with self._lock:
                rows = self.db.execute(
                    "SELECT ref, content_hash, body, vectors, dim FROM parts WHERE ref > ? ORDER BY ref LIMIT ?",
                    (after, page),
                ).fetchall()
            for ref, content_hash, body, blob, dim in rows:
                data = json.loads(body)
                vectors = np.frombuffer(blob, dtype=np.float32).reshape(-1, dim) if dim else np.zeros((0, 0), np.float32)
                yield Part(ref, content_hash, data["rows"], data["aliases"], data["tokens"], data["window_ids"], vectors,
                           data.get("facts", {}))
            if len(rows) < page:
                return
            after = rows[-1][0]

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None


def parts_for(store: Store) -> Parts:
    """The parts file of ``store``: beside its lexical index (per server in server mode)."""
    return Parts(store.lexical_dir.with_name("parts.sqlite"))


def fingerprint(store: Store, records: dict[str, DecisionRecord] | None = None) -> str:
    """What a saved catalogue must have been built from to be current."""
    return f"{store.fingerprint(records)}-v{CATALOGUE_VERSION}"


def _parts_from_store(store: Store, refs: list[str], records: dict[str, DecisionRecord]) -> list[Part]:
    """Parts of decisions the parts file lacks, made from their stored JSON and vectors."""
    decisions = {d.reference: d for d in store.iter_decisions(refs)}
    vectors = store.vectors_of({ref: d.content_hash for ref, d in decisions.items()})
    out = []
    for ref, d in decisions.items():
        if d.content_hash != records[ref].content_hash:
            continue  # rewritten since the records were read: the next refresh takes it
        passages = passages_of(d)
        found = vectors.get(ref, {})
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


def refresh(store: Store, force: bool = False) -> bool:
    """Bring the lexical index, catalogue and vector copy up to date with the store's content.

    Returns whether anything was rebuilt (nothing is when the saved fingerprint is current).
    """
    records = store.complete_records()
    current = fingerprint(store, records)
    folder = store.lexical_dir
    if not force and LexicalIndex.saved_fingerprint(folder) == current:
        return False
    parts = parts_for(store)
    try:
        saved = parts.hashes()
        gone = [ref for ref, h in saved.items() if ref not in records or records[ref].content_hash != h]
        if gone:
            parts.delete(gone)
        missing = [ref for ref, r in records.items() if saved.get(ref) != r.content_hash]
        if missing:
            log.info("making the catalogue parts of %d decisions from the store", len(missing))
        for i in range(0, len(missing), STORE_CHUNK):
            parts.put(_parts_from_store(store, missing[i : i + STORE_CHUNK], records))
        _write(folder, current, parts, records)
    finally:
        parts.close()
    return True


def _write(folder: Path, current: str, parts: Parts, records: dict[str, DecisionRecord]) -> None:
    """Assemble the saved parts of the complete decisions into the files the retriever loads.

    The vector copy is written straight into a memory-mapped file as parts are read, so a large
    archive's vectors are never held twice (a list of blocks, then their concatenation)."""
    rows: list[list] = []
    tokens: list[list[str]] = []
    aliases: dict[str, list[str]] = {}
    facts: dict[str, dict] = {}
    window_ids: list[str] = []
    interned: dict[str, str] = {}  # one string object per distinct token keeps a large build small
    scratch = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".vectors-"))
    try:
        capacity = parts.windows()
        matrix = np.lib.format.open_memmap(scratch / "vectors.npy", mode="w+", dtype=np.float32,
                                           shape=(capacity, parts.dimension()))
        at = 0
        for part in parts.iterate():
            if part.reference not in records or not len(part.vectors):
                continue
            rows.extend(part.rows)
            tokens.extend([interned.setdefault(t, t) for t in line.split()] or ["_empty_"] for line in part.tokens)
            aliases[part.reference] = part.aliases
            facts[part.reference] = part.facts
            window_ids.extend(part.window_ids)
            matrix[at : at + len(part.vectors)] = part.vectors
            at += len(part.vectors)
        matrix.flush()
        if at < capacity:  # parts without vectors were skipped: keep only the rows written
            np.save(scratch / "used.npy", matrix[:at])
            vectors: Path | np.ndarray = scratch / "used.npy"
        else:
            vectors = scratch / "vectors.npy"
        del matrix
        lexical = LexicalIndex.from_tokens([r[0] for r in rows], tokens)
        del tokens, interned
        lexical.save(folder, current,
                     {"catalogue.json": catalogue(rows, aliases, records, facts), "vector_ids.json": window_ids},
                     {"vectors.npy": vectors})
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def catalogue(rows: list[list], aliases: dict[str, list[str]], records: dict[str, DecisionRecord],
              facts: dict[str, dict] | None = None) -> dict:
    """The retriever's in-memory view: per passage the fields it filters and groups on, per decision
    its metadata, and which paragraph openings many decisions share (boilerplate)."""
    per_key: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        per_key[row[5]].add(row[1])
    shared = {k: len(refs) for k, refs in per_key.items() if len(refs) >= BOILERPLATE_MIN_DECISIONS}
    decisions = {
        ref: {"authority": r.authority, "category": r.category, "outcome": r.outcome,
              "decision_date": r.decision_date, "url": r.url, "paragraphs": r.paragraphs,
              "aliases": aliases.get(ref, []), "facts": (facts or {}).get(ref, {})}
        for ref, r in records.items()
    }
    return {"passages": rows, "boilerplate": shared, "decisions": decisions}


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


@dataclass
class Catalogue:
    """The saved catalogue, loaded: what is indexed, and the lookups a search needs."""

    fingerprint: str
    lexical: LexicalIndex
    passages: dict[str, PassageRow]
    boilerplate: dict[str, int]  # boilerplate key -> decisions sharing it
    decisions: dict[str, dict]  # reference -> metadata (authority, category, outcome, date, url, aliases)
    by_ref: dict[str, list[str]] = field(default_factory=dict)  # reference -> its passage ids, in order
    by_authority: dict[str, list[str]] = field(default_factory=dict)  # authority -> its references
    vectors: np.ndarray | None = None  # one row per embedding window, memory-mapped
    rows: dict[str, list[int]] = field(default_factory=dict)  # passage id -> its rows in ``vectors``
    decision_rows: dict[str, np.ndarray] = field(default_factory=dict)  # reference -> all its rows
    decision_docs: dict[str, np.ndarray] = field(default_factory=dict)  # reference -> its BM25 documents

    @classmethod
    def load(cls, store: Store) -> "Catalogue":
        """The current catalogue of ``store``, rebuilt first when it is missing or stale."""
        folder = store.lexical_dir
        current = fingerprint(store)
        lexical, saved = LexicalIndex.load(folder)
        if lexical is None or saved != current:
            log.info("the lexical index at %s is missing or stale; rebuilding it", folder)
            refresh(store, force=True)
            lexical, saved = LexicalIndex.load(folder)
        assert lexical is not None
        body = json.loads((folder / "catalogue.json").read_text())
        passages = {row[0]: PassageRow(*row[1:]) for row in body["passages"]}
        by_ref: dict[str, list[str]] = {}
        for pid, row in passages.items():
            by_ref.setdefault(row.ref, []).append(pid)
        decisions = body["decisions"]
        by_authority: dict[str, list[str]] = {}
        for ref, d in decisions.items():
            by_authority.setdefault(d["authority"], []).append(ref)
        vectors, rows = None, {}
        try:
            vectors = np.load(folder / "vectors.npy", mmap_mode="r")
            for i, rid in enumerate(json.loads((folder / "vector_ids.json").read_text())):
                rows.setdefault(passage_of_window(rid), []).append(i)
        except (OSError, ValueError):
            log.warning("no vector copy in %s: restricted searches will query Chroma with a filter", folder)
        decision_rows = {ref: np.fromiter((r for pid in pids for r in rows.get(pid, ())), dtype=np.int64)
                         for ref, pids in by_ref.items()}
        decision_docs = {ref: np.fromiter((lexical.position(pid) for pid in pids), dtype=np.int64)
                         for ref, pids in by_ref.items()}
        return cls(saved, lexical, passages, body["boilerplate"], decisions, by_ref, by_authority, vectors, rows,
                   decision_rows, decision_docs)

    def is_boilerplate(self, pid: str) -> bool:
        return self.passages[pid].boilerplate_key in self.boilerplate
