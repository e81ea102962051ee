"""The store: Chroma (a local folder or a ``chroma run`` server) holding passages and decisions.

Three collections: ``decisions`` (one record per decision holding its parsed JSON, compressed, its
content hash: the text of record, and the ids of its windows), ``passages`` (one vector per
embedding window, cosine space, the model recorded in the collection's metadata, the window's id
its only tie to its decision: no metadata per window) and ``changes`` (the log of writes and
removals, so that another process reads only the records that changed: ``CHANGES``).
The JSON is kept in a metadata field rather than as the record's document because Chroma indexes
documents for full-text search (a trigram index several times the text's size), which nothing
here uses. A passage's text
and citation fields are read from its decision's JSON, so writing a vector costs little and the
two can never disagree. A decision is written in three steps (mark "writing", replace passages,
mark "done") so a process killed mid-way leaves a record that says so; readers ignore such
decisions and the next ingest repairs them from the stored JSON.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
import zlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator
from urllib.parse import urlparse

import numpy as np

from index import config  # noqa: F401  (offline environment first)
from index.config import StoreConfig
from index.decision import Decision, normalise_reference, passage_id, reference_slug
from index.passage import SUMMARY, Passage, aliases_in, passage_context, passage_fields, passage_numbers

log = logging.getLogger(__name__)

PASSAGES = "ombudsman-passages"  # the first collection of window vectors; later ones add "-1", "-2" ...
# Window vectors per collection: Chroma loads a collection's whole HNSW graph into memory before
# the first write to it in a process (10.7 s and 3 GB for 1.5 million windows), so new windows go
# to a collection of at most this many and an ingest loads only that one's graph. Reads and
# deletes look in every collection (a delete only in those holding the decision: deleting, even
# nothing, loads the graph too). `python -m eval.bench_ingest --additions` measures the effect.
SHARD_WINDOWS = 200_000
# A shard's metadata records how many windows were written to it, so that choosing where a write
# goes reads no collection: Chroma's own count of a collection loads its whole graph first (19.7 s
# for 1.5 million windows, most of an addition of 1,000 decisions to such an index, measured by
# timing each Chroma call of `python -m eval.bench_ingest --additions 10000,1500000`). An upper
# bound: deletes do not lower it, and two writers at once may each add theirs to the same count.
SHARD_HELD = "windows"
DECISIONS = "ombudsman-decisions"
# The store's change log: an entry for each write of a batch of decisions and each removal, named
# by its token (the records a write marks carry it as ``written``), with the references it touches,
# logged before the change begins and marked ``ended`` once it has (before the generation moves
# for the last time). A process whose catalogue has taken in some entries reads the records of the
# references of the others, not every record (each carries its decision's JSON: 9 s for 53,000).
# One that never ends (its writer killed) is read at every reconciliation: its records, left
# "writing", keep the decisions out of searches until an ingest repairs them (another change).
CHANGES = "ombudsman-changes"
WRITE, REMOVE = "write", "remove"
# Version of the record layout; an index written with another layout is refused with a message to
# rebuild it (schema 1 kept each passage's text and citation fields beside its vector; schema 2
# the decision's JSON as the record's document, and each window's number in its metadata; schema 3
# each window's reference and decision hash in its metadata, which cost 1.1 to 1.4 s of the 3.1 to
# 3.4 s of CPU that Chroma took to add 16,384 windows in three runs of ``python -m eval.chroma_costs``).
SCHEMA = "5"
# Schema 4 is schema 5 without the change log and the records' ``shard``: it is read as it is, and
# this version's first write marks it 5, which a version that keeps no log refuses (its writes,
# unlogged, would never reach a catalogue that follows the log).
READABLE = {"4", SCHEMA}
# Chroma keeps the vectors in an HNSW graph, which the app never searches: dense search reads the
# catalogue's copy (``index.segment``). So the graph is built cheaply, with few links and a short
# candidate list, which matters because Chroma builds it on the cores the encoder needs during
# ingest: adding unit vectors 1,024 at a time cost 0.50 to 0.59 ms of CPU a vector with Chroma's
# defaults (100 candidates, 16 links) and 0.15 to 0.19 ms with 10 and 8. With that, ingest went from
# 0.77 to 0.84 of the encoder's rate alone (`python -m eval.bench_ingest --encoder onnx-int8
# --repeat 5`, results in eval/results/). With 4 and 4: 1.19 s of CPU to upsert 16,384 windows
# against 1.77 s with 10 and 8 (`python -m eval.chroma_costs --rounds 3`, medians). A client
# querying Chroma directly still gets answers (``ef_search`` stays high), from a sparser graph.
GRAPH = {"space": "cosine", "ef_search": 200, "ef_construction": 4, "max_neighbors": 4}
WRITING, DONE = "writing", "done"


def _record(md: dict) -> "DecisionRecord":
    return DecisionRecord(
        reference=md["ref"], content_hash=md.get("content_hash", ""), source=md.get("source", ""),
        status=md.get("status", ""), paragraphs=int(md.get("paragraphs", 0)), window_ids=md.get("window_ids", ""),
        written=md.get("written", ""),
    )


class StoreError(RuntimeError):
    """The store cannot be used as asked; the message says which store and what to do."""


@dataclass(frozen=True)
class DecisionRecord:
    """What the store knows of one decision without loading its text."""

    reference: str
    content_hash: str
    source: str
    status: str
    paragraphs: int
    window_ids: str  # its windows' record ids as ``pack_windows`` writes them
    written: str = ""  # the token of the change that last wrote (or is removing) it

    @property
    def complete(self) -> bool:
        return self.status == DONE

    def holds(self, content_hash: str) -> bool:
        """Whether this version of the decision is completely indexed (re-ingesting it is a no-op)."""
        return self.complete and self.content_hash == content_hash


@dataclass(frozen=True)
class Change:
    """An entry of the store's change log (see ``CHANGES``)."""

    token: str
    kind: str  # WRITE or REMOVE
    references: tuple[str, ...]


@dataclass(frozen=True)
class StoredPassage:
    """A passage as read back from the store (one record per passage, whole text)."""

    id: str
    metadata: dict[str, Any]
    text: str

    @property
    def reference(self) -> str:
        return self.metadata["ref"]

    @property
    def paragraph(self) -> int | str:
        p = self.metadata["paragraph"]
        return SUMMARY if p == SUMMARY else int(p)


def pack_windows(windows: Iterable[tuple[str, int]]) -> str:
    """A decision record's ``window_ids``: its passages' labels (a paragraph's number, or
    "summary") with each one's window count, as ``summary,1-13,14*3,15-42`` (runs of numbered
    passages with one window each, the usual case, as a range). The record names its windows so
    that deleting or reading them needs no metadata on the windows themselves, and the ids are
    those written, whatever a later version would cut the decision into."""
    items: list[str] = []
    run: list[int] = []

    def close_run() -> None:
        if run:
            items.append(str(run[0]) if run[0] == run[1] else f"{run[0]}-{run[1]}")
            run.clear()

    for label, count in windows:
        if not (label.isdigit() or label.isalpha()) or count < 1:
            raise ValueError(f"cannot record {count} windows of passage {label!r}")
        if count == 1 and label.isdigit() and run and int(label) == run[1] + 1:
            run[1] += 1
            continue
        close_run()
        if count == 1 and label.isdigit():
            run.extend([int(label), int(label)])
        else:
            items.append(label if count == 1 else f"{label}*{count}")
    close_run()
    return ",".join(items)


def _joined_windows(*packed: str) -> str:
    """Several ``pack_windows`` lists as one (an item in more than one, once)."""
    return ",".join(dict.fromkeys(item for p in packed for item in p.split(",") if item))


def unpack_windows(slug: str, packed: str) -> list[str]:
    """The window record ids that ``pack_windows`` recorded for the decision ``slug`` (the
    inverse of ``pack_windows``; an id listed twice, as while a decision is rewritten, once)."""
    ids: dict[str, None] = {}
    for item in filter(None, packed.split(",")):
        label, _, count = item.partition("*")
        first, dash, last = label.partition("-")
        labels = [str(n) for n in range(int(first), int(last) + 1)] if dash else [label]
        for one in labels:
            ids.update((window_id(f"{slug}#{one}", k), None) for k in range(int(count or 1)))
    return list(ids)


def pack_json(decision: Decision) -> str:
    """A decision's JSON as the store keeps it: zlib-compressed, base64 text."""
    raw = json.dumps(decision.to_json(), ensure_ascii=False).encode()
    return base64.b64encode(zlib.compress(raw, 6)).decode("ascii")


def unpack_json(packed: str) -> dict:
    return json.loads(zlib.decompress(base64.b64decode(packed)))


def stored_passage(decision: Decision, decision_hash: str, paragraph: int | str) -> StoredPassage | None:
    """One passage of a stored decision in the shape readers get it (text, and the fields a citation
    shows), or None if the decision has no such paragraph. Token counts and boilerplate keys are
    the catalogue's; reading a hit does not recompute them."""
    fields = passage_fields(decision, paragraph)
    if fields is None:
        return None
    text, section, subsection, statutes = fields
    pid = passage_id(decision.reference, paragraph)
    md: dict[str, Any] = {
        "passage_id": pid,
        "ref": decision.reference,
        "paragraph": str(paragraph),
        "section": section,
        "subsection": subsection,
        "authority": decision.authority,
        "category": decision.category_path,
        "outcome": decision.outcome,
        "decision_date": decision.decision_date.isoformat() if decision.decision_date else "",
        "url": decision.url,
        "decision_hash": decision_hash,
        "statutes": list(statutes),
        "aliases": sorted(aliases_in(text, decision.aliases)),
    }
    return StoredPassage(pid, md, text)


@dataclass(frozen=True)
class DecisionWrite:
    """One decision to store: its passages, each passage's window texts, one vector per window."""

    decision: Decision
    passages: list[Passage]
    windows: list[list[str]]
    vectors: np.ndarray


def window_id(passage_id: str, window: int) -> str:
    """Record id of an embedding window: the passage id itself for the first window."""
    return passage_id if window == 0 else f"{passage_id}~{window}"


def passage_of_window(record_id: str) -> str:
    """The passage id of an embedding window's record id (the inverse of ``window_id``)."""
    return record_id.split("~", 1)[0]


class Store:
    """A connection to one store. Cheap to construct; collections are opened lazily."""

    def __init__(self, cfg: StoreConfig) -> None:
        self.config = cfg
        self._client = None
        self._passages = None
        self._decisions = None
        self._changes = None
        self.logged: list[str] = []  # the changes this Store logged since ``watch``
        # What this Store saw of the generation: ``watch`` sets the one to expect, each write of
        # ours moves it on, and a generation we did not set clears it (see ``only_ours``).
        self._expected: str | None = None

    # -- connection -------------------------------------------------------------------------

    @property
    def client(self):
        if self._client is None:
            import chromadb
            from chromadb.config import Settings

            settings = Settings(anonymized_telemetry=False)
            if self.config.chroma_url:
                u = urlparse(self.config.chroma_url if "://" in self.config.chroma_url else f"http://{self.config.chroma_url}")
                if not u.hostname:
                    raise StoreError(f"--chroma-url {self.config.chroma_url!r} is not a URL like http://127.0.0.1:8000")
                try:
                    self._client = chromadb.HttpClient(
                        host=u.hostname, port=u.port or (443 if u.scheme == "https" else 8000),
                        ssl=u.scheme == "https", settings=settings,
                    )
                    self._client.heartbeat()
                except Exception as e:
                    self._client = None
                    raise StoreError(
                        f"cannot reach the Chroma server at {self.config.chroma_url} ({type(e).__name__}); "
                        "start one with `chroma run --path DIR --host 127.0.0.1 --port PORT`, "
                        "or unset OMBUDSMAN_CHROMA_URL to use the local index"
                    ) from None
            else:
                path = self.config.index_dir / "chroma"
                path.mkdir(parents=True, exist_ok=True)
                self._client = chromadb.PersistentClient(path=str(path), settings=settings)
        return self._client

    def reopen(self) -> None:
        """Connect afresh, to see what another process wrote since this one opened the store (a
        local Chroma keeps its vector index in memory as it was when the folder was opened)."""
        if self._client is not None and not self.config.chroma_url:
            from chromadb.api.client import SharedSystemClient

            # Chroma shares one system per folder in a process; forget this folder's so that the
            # next client reads it from disk (clients of other folders are left alone).
            SharedSystemClient._identifier_to_system.pop(str(self.config.index_dir / "chroma"), None)
        self._client = self._passages = self._decisions = self._changes = None

    @property
    def catalogue_dir(self) -> Path:
        """Where the catalogue lives: beside the Chroma data, or per server in server mode."""
        if self.config.chroma_url:
            slug = re.sub(r"[^A-Za-z0-9]+", "-", self.config.chroma_url).strip("-")
            return self.config.index_dir / "servers" / slug / "catalogue"
        return self.config.index_dir / "catalogue"

    def generation(self) -> str:
        """A token that changes whenever a writer finishes writing or deleting decisions (one cheap
        read, so processes sharing a server notice each other's writes); "" for an empty store."""
        col = self._existing(DECISIONS)
        return str((col.metadata or {}).get("generation", "")) if col is not None else ""

    def _bump(self) -> None:
        before = self.generation()
        token = uuid.uuid4().hex
        self.decisions_collection.modify(metadata={"schema": SCHEMA, "generation": token})
        if self._expected is not None:
            # Another writer's change shows as a generation we did not set, before or after ours.
            self._expected = token if before == self._expected and self.generation() == token else None

    def watch(self, generation: str) -> None:
        """Start noting whether anyone but this Store writes, from ``generation`` (read by the caller)."""
        self._expected = generation
        self.logged = []

    def only_ours(self) -> str | None:
        """The store's generation if every write since ``watch`` was this Store's (so what it
        wrote is all that changed), else None."""
        current = self.generation()
        return current if self._expected is not None and current == self._expected else None

    def _existing(self, name: str):
        try:
            return self.client.get_collection(name, embedding_function=None)
        except Exception as e:  # chromadb raises NotFoundError (1.x) or ValueError (older)
            if "does not exist" in str(e) or "not found" in str(e).lower():
                return None
            raise

    def exists(self) -> bool:
        """Whether anything has been indexed here."""
        return self._existing(PASSAGES) is not None

    def _shard_collections(self) -> list:
        """The collections of window vectors as they are, first to last (none before the first ingest)."""
        found = []
        while (col := self._existing(f"{PASSAGES}-{len(found)}" if found else PASSAGES)) is not None:
            found.append(col)
        return found

    def _shard_names(self) -> list[str]:
        return [col.name for col in self._shard_collections()]

    def _shards(self) -> list:
        """The collections of window vectors, first to last; the first is checked as
        ``passages_collection`` checks it."""
        found = self._shard_collections()
        return [self.passages_collection(), *found[1:]] if found else []

    def _write_shard(self, label: str, adding: int) -> tuple[Any, int]:
        """The collection new windows go to (the last, or a new one when it would pass
        ``SHARD_WINDOWS``) and the windows it holds."""
        # As they are now (their recorded counts too): ``write_decisions`` has checked the first.
        shards = self._shard_collections() or [self.passages_collection(label)]
        last = shards[-1]
        held = self._held(last)
        if held and held + adding > SHARD_WINDOWS:
            first = shards[0]
            last = self.client.get_or_create_collection(
                f"{PASSAGES}-{len(shards)}", embedding_function=None, configuration={"hnsw": GRAPH},
                metadata={**(first.metadata or {}), SHARD_HELD: 0},
            )
            held = self._held(last)
        return last, held

    def _held(self, col) -> int:
        """Windows written to shard ``col`` (see ``SHARD_HELD``); a shard written before they were
        recorded is counted by Chroma once, and the count recorded."""
        recorded = (col.metadata or {}).get(SHARD_HELD)
        if recorded is not None:
            return int(recorded)
        held = col.count()
        self._record_held(col, held)
        return held

    def _record_held(self, col, held: int) -> None:
        col.modify(metadata={**(col.metadata or {}), SHARD_HELD: held})

    def _delete_windows(self, ids: list[str]) -> None:
        """Remove the window vectors ``ids`` from whichever collections hold them (looked up first:
        deleting, even nothing, loads a collection's graph)."""
        for col in self._shards():
            held = [rid for got in self._by_ids(col, ids, include=[]) for rid in got["ids"]]
            for k in range(0, len(held), self.max_batch):
                col.delete(ids=held[k: k + self.max_batch])

    def _raw_records(self, refs: list[str] | None) -> dict[str, dict[str, Any]]:
        """The records of decisions ``refs`` (all if None) as stored (metadata), by reference."""
        if refs is None:
            pages = self._pages(self.decisions_collection, include=["metadatas"])
        else:
            pages = self._by_ids(self.decisions_collection, [reference_slug(r) for r in refs], include=["metadatas"])
        return {md["ref"]: md for got in pages for md in got["metadatas"]}

    def has_decisions(self) -> bool:
        """Whether any decision record is stored: a count, not the records (reading every record
        of a whole archive takes seconds on a server)."""
        return self.exists() and self.decisions_collection.count() > 0

    @property
    def model_label(self) -> str | None:
        """The embedder label recorded when the index was built, or None for an empty store."""
        col = self._existing(PASSAGES)
        return (col.metadata or {}).get("model") if col is not None else None

    def check_model(self, label: str) -> None:
        """Refuse to mix vectors of different models or encoders in one index."""
        recorded = self.model_label
        if recorded is not None and recorded != label:
            raise StoreError(
                f"the {self.config.description} was built with {recorded}, but this run embeds with "
                f"{label}; vectors of different encoders do not compare. Use the same encoder "
                "(--encoder / OMBUDSMAN_ENCODER), or rebuild with `ombudsman ingest --rebuild`."
            )

    def passages_collection(self, label: str | None = None):
        """The passages collection; created (recording ``label``) when ``label`` is given."""
        if self._passages is None:
            col = self._existing(PASSAGES)
            if col is None:
                if label is None:
                    raise StoreError(
                        f"the {self.config.description} has no decisions yet; run `ombudsman ingest` first"
                    )
                col = self.client.create_collection(
                    PASSAGES, embedding_function=None,
                    configuration={"hnsw": GRAPH},
                    metadata={"model": label, "schema": SCHEMA, "context": passage_context(), SHARD_HELD: 0},
                )
            schema = str((col.metadata or {}).get("schema", ""))
            if schema not in READABLE:
                raise StoreError(
                    f"the {self.config.description} was written in an older layout (schema {schema or '?'}, "
                    f"this version reads schema {SCHEMA}); rebuild it with `ombudsman ingest --rebuild PATH...`"
                )
            # Indexes from before contexts were recorded embedded the heading with each paragraph.
            context = str((col.metadata or {}).get("context", "heading"))
            if context != passage_context():
                raise StoreError(
                    f"the {self.config.description} embeds passages in the {context!r} context, but this run "
                    f"embeds them in the {passage_context()!r} context (OMBUDSMAN_PASSAGE_CONTEXT); rebuild it "
                    "with `ombudsman ingest --rebuild PATH...`, or set OMBUDSMAN_PASSAGE_CONTEXT to match"
                )
            self._passages = col
        if label is not None:
            self.check_model(label)
            if (self._passages.metadata or {}).get("schema") != SCHEMA:  # about to write: see ``READABLE``
                self._passages.modify(metadata={**(self._passages.metadata or {}), "schema": SCHEMA})
        return self._passages

    def _changes_collection(self):
        """The log's collection (made by the first change logged), kept: two calls a batch use it."""
        if self._changes is None:
            self._changes = self.client.get_or_create_collection(CHANGES, embedding_function=None,
                                                                 metadata={"schema": SCHEMA})
        return self._changes

    def _log(self, kind: str, references: list[str]) -> str:
        """Log a change before it begins (see ``CHANGES``) and return its token."""
        token = uuid.uuid4().hex
        self._changes_collection().upsert(ids=[token], embeddings=[[1.0]],
                                          metadatas=[{"kind": kind, "refs": "\n".join(references), "ended": False}])
        self.logged.append(token)
        return token

    def _ended(self, token: str) -> None:
        """Mark a logged change ended: its records are as it leaves them."""
        self._changes_collection().update(ids=[token], metadatas=[{"ended": True}])

    def change_log(self) -> tuple[str, list[str], list[str]] | None:
        """The log's identity (a log made again, as by ``--rebuild``, has another), the tokens of
        the changes that have ended and of those that have not (under way, or their writer killed);
        None when the store has no log (written by a version that kept none, whose writes only
        reading every record finds)."""
        col = self._existing(CHANGES)
        if col is None:
            return None

        def tokens(ended: bool) -> list[str]:
            return [t for got in self._pages(col, where={"ended": ended}, include=[]) for t in got["ids"]]

        return str(col.id), tokens(True), tokens(False)

    def log_identity(self) -> str | None:
        """The log's identity (see ``change_log``), None when there is no log."""
        col = self._existing(CHANGES)
        return None if col is None else str(col.id)

    def changes(self, tokens: Iterable[str]) -> dict[str, Change]:
        """The logged changes of these tokens (those logged), by token."""
        tokens, col = sorted(set(tokens)), self._existing(CHANGES)
        if not tokens or col is None:
            return {}
        return {t: Change(t, md["kind"], tuple(r for r in md["refs"].split("\n") if r))
                for got in self._by_ids(col, tokens, include=["metadatas"])
                for t, md in zip(got["ids"], got["metadatas"])}

    @property
    def decisions_collection(self):
        if self._decisions is None:
            self._decisions = self.client.get_or_create_collection(
                DECISIONS, embedding_function=None, metadata={"schema": SCHEMA}
            )
        return self._decisions

    @property
    def max_batch(self) -> int:
        try:
            return max(1, min(5000, int(self.client.get_max_batch_size()) - 1))
        except Exception:
            return 1000

    # -- reading ----------------------------------------------------------------------------

    def _by_ids(self, col, ids: list[str], **query) -> Iterator[dict]:
        """``col.get(ids=..., **query)`` for ``max_batch`` of the ``ids`` at a time."""
        for i in range(0, len(ids), self.max_batch):
            yield col.get(ids=ids[i: i + self.max_batch], **query)

    def _pages(self, col, **query) -> Iterator[dict]:
        """``col.get(**query)`` a page of ``max_batch`` records at a time, until the last page."""
        offset = 0
        while True:
            got = col.get(limit=self.max_batch, offset=offset, **query)
            yield got
            if len(got["ids"]) < self.max_batch:
                return
            offset += len(got["ids"])

    def records(self, refs: list[str] | None = None) -> dict[str, DecisionRecord]:
        """Every decision record, complete or not, by reference (only those of ``refs`` if given:
        reading every record reads every decision's JSON, which an archive holds gigabytes of)."""
        return {ref: _record(md) for ref, md in self._raw_records(refs).items()}

    def incomplete_records(self) -> dict[str, DecisionRecord]:
        """Records a killed write left marked "writing" (found by their status, not by reading all)."""
        return {r.reference: r for got in self._pages(self.decisions_collection, where={"status": WRITING},
                                                      include=["metadatas"])
                for r in map(_record, got["metadatas"])}

    def complete_records(self) -> dict[str, DecisionRecord]:
        return {k: r for k, r in self.records().items() if r.complete}

    def decision(self, reference: str) -> Decision:
        """The stored decision; ``KeyError`` with the nearest indexed references when absent."""
        ref, slug = normalise_reference(reference), reference_slug(reference)
        found = self.read_decisions([slug]).get(slug)
        if found:
            return found[0]
        near = nearest_references(ref, list(self.complete_records()))
        hint = f"; the nearest indexed references are {', '.join(near)}" if near else ""
        raise KeyError(f"decision {ref} is not in the {self.config.description}{hint}")

    def read_decisions(self, slugs: list[str]) -> dict[str, tuple[Decision, str]]:
        """Complete decisions and their content hashes by slug, read from their stored JSON (absent
        or incomplete: left out)."""
        out: dict[str, tuple[Decision, str]] = {}
        for got in self._by_ids(self.decisions_collection, slugs, include=["metadatas"]):
            for slug, md in zip(got["ids"], got["metadatas"]):
                if md.get("status") == DONE:
                    decision = Decision.from_json(unpack_json(md["json"]), source=md.get("source", ""))
                    out[slug] = decision, md.get("content_hash", "")
        return out

    def passages(self, ids: list[str], read=None) -> dict[str, StoredPassage]:
        """Whole passages by passage id (``24-016-809#15``), from their decisions' stored JSON
        (``read``: how to read decisions by slug; default ``read_decisions``, a caller may cache)."""
        wanted: dict[str, list[str]] = {}
        for pid in dict.fromkeys(ids):
            slug, _, paragraph = pid.partition("#")
            if paragraph == SUMMARY or paragraph.isdigit():
                wanted.setdefault(slug, []).append(paragraph)
        out: dict[str, StoredPassage] = {}
        for slug, (decision, content_hash) in (read or self.read_decisions)(list(wanted)).items():
            for paragraph in wanted[slug]:
                p = stored_passage(decision, content_hash, paragraph)
                if p is not None:
                    out[p.id] = p
        return out

    def iter_decisions(self, refs: list[str] | None = None) -> Iterator[Decision]:
        """Complete decisions (all, or those of ``refs``), read a page at a time from their JSON."""
        if refs is not None:
            slugs = [reference_slug(r) for r in refs]
            yield from (d for d, _ in self.read_decisions(slugs).values())
            return
        for got in self._pages(self.decisions_collection, include=["metadatas"]):
            for md in got["metadatas"]:
                if md.get("status") == DONE:
                    yield Decision.from_json(unpack_json(md["json"]), source=md.get("source", ""))

    def iter_passages(self, ref: str | None = None) -> Iterator[StoredPassage]:
        """Every passage of the complete decisions (or of one), in decision order."""
        for decision in self.iter_decisions(None if ref is None else [ref]):
            for n in passage_numbers(decision):
                yield stored_passage(decision, decision.content_hash, n)

    def window_ids(self, ref: str | None = None) -> set[str]:
        """The ids of the vector records themselves (all, or those of one decision's passages,
        recorded or not): every collection is listed, so this is for checks, not for serving."""
        prefix = None if ref is None else reference_slug(ref) + "#"
        out: set[str] = set()
        for col in self._shards() or [self.passages_collection()]:
            for got in self._pages(col, include=[]):
                out.update(rid for rid in got["ids"] if prefix is None or rid.startswith(prefix))
        return out

    def vectors_of(self, hashes: dict[str, str]) -> dict[str, dict[str, np.ndarray]]:
        """The window vectors of decisions (reference -> content hash) written from that version of
        each: ref -> record id -> vector. A decision is left out unless its record says that version
        is completely written both before and after its vectors are read, by the same write (each
        write of a record gives it a new ``written`` token), so another process rewriting it
        meanwhile cannot mix two versions' vectors."""
        before = {ref: md for ref, md in self._raw_records(list(hashes)).items()
                  if md.get("status") == DONE and md.get("content_hash") == hashes.get(ref)}
        owner = {rid: ref for ref, md in before.items()
                 for rid in unpack_windows(reference_slug(ref), md.get("window_ids", ""))}
        shards = {col.name: col for col in self._shards()} if owner else {}
        wanted: dict[str, list[str]] = {}  # shard -> window ids; "" for a record naming none (older)
        for rid, ref in owner.items():
            shard = before[ref].get("shard", "")
            wanted.setdefault(shard if shard in shards else "", []).append(rid)
        out: dict[str, dict[str, np.ndarray]] = {}
        for name, rids in wanted.items():
            for col in [shards[name]] if name else shards.values():
                for got in self._by_ids(col, rids, include=["embeddings"]):
                    for rid, vector in zip(got["ids"], got["embeddings"]):
                        out.setdefault(owner[rid], {})[rid] = np.asarray(vector, dtype=np.float32)
        after = self._raw_records(list(out))
        return {ref: found for ref, found in out.items()
                if after.get(ref, {}).get("status") == DONE and after[ref].get("written") == before[ref].get("written")}

    def counts(self) -> tuple[int, int]:
        """(complete decisions, passages)."""
        records = self.complete_records()
        return len(records), sum(r.paragraphs for r in records.values())

    def fingerprint(self, records: dict[str, DecisionRecord] | None = None) -> str:
        """Identifies the indexed content: changes whenever any decision is added, replaced or removed."""
        records = self.complete_records() if records is None else records
        h = hashlib.sha256()
        for ref in sorted(records):
            h.update(f"{ref}={records[ref].content_hash};".encode())
        return h.hexdigest()[:24]

    # -- writing ----------------------------------------------------------------------------

    def _mark_writing(self, batch: list[tuple[Decision, int, str]], written: str, shard: str) -> None:
        """Write the records (decision, passages, ``window_ids``) with their JSON, marked "writing",
        under the ``written`` token of the change that writes them, naming the ``shard`` their
        windows go to (reading a decision's vectors from the others would load their graphs)."""
        col = self.decisions_collection
        for k in range(0, len(batch), self.max_batch):
            part = batch[k : k + self.max_batch]
            # Only what ingest, repairs and readers look up without the JSON, which holds the rest
            # (schema 3 kept its authority, category, outcome, date and URL here too: 0.1 s more of
            # Chroma's CPU over 3,000 records written and marked done, `python -m eval.chroma_costs`).
            metadatas = [{"ref": d.reference, "content_hash": d.content_hash, "source": absolute_source(d.source),
                          "status": WRITING, "paragraphs": n, "window_ids": windows, "written": written,
                          "shard": shard, "json": pack_json(d)} for d, n, windows in part]
            col.upsert(ids=[d.slug for d, _, _ in part], embeddings=[[1.0]] * len(part), metadatas=metadatas)

    def _mark_done(self, fields: dict[str, dict[str, Any]]) -> None:
        """Mark records (by slug) "done", with any other ``fields`` to change; an update keeps the
        fields it does not name."""
        col, slugs = self.decisions_collection, list(fields)
        for k in range(0, len(slugs), self.max_batch):
            part = slugs[k : k + self.max_batch]
            col.update(ids=part, metadatas=[{**fields[slug], "status": DONE} for slug in part])

    def write_decisions(self, batch: list[DecisionWrite], label: str) -> None:
        """Replace everything stored for each decision in ``batch`` with its passages and vectors.

        The batch is written in three steps (records marked "writing", passages replaced, records
        marked "done"), each one Chroma call per size limit, so that writes cost little per decision
        and a crash leaves records that say they are incomplete. Which decisions have windows
        already is read from their records now, not from a plan made earlier: another process
        sharing the server may have written one since.
        """
        self.passages_collection(label)
        ids, vecs, windows = [], [], {}
        for w in batch:
            n_windows = sum(len(ws) for ws in w.windows)
            if len(w.vectors) != n_windows:
                raise ValueError(f"{w.decision.reference}: {len(w.vectors)} vectors for {n_windows} windows")
            for p, ws in zip(w.passages, w.windows):
                ids.extend(window_id(p.id, k) for k in range(len(ws)))
            windows[w.decision.slug] = pack_windows((str(p.paragraph), len(ws)) for p, ws in zip(w.passages, w.windows))
            vecs.append(np.asarray(w.vectors, dtype=np.float32))
        old = {reference_slug(ref): md.get("window_ids", "")
               for ref, md in self._raw_records([w.decision.reference for w in batch]).items()}
        written = self._log(WRITE, [w.decision.reference for w in batch])
        col, held = self._write_shard(label, len(ids))
        # A replaced decision's record names its present windows with the new ones until those are
        # all written, so that a write killed half-way leaves a record naming every window to delete.
        self._mark_writing([(w.decision, len(w.passages), _joined_windows(old.get(w.decision.slug, ""), windows[w.decision.slug]))
                            for w in batch], written, col.name)
        self._bump()  # a write begun changes the generation too: one killed before its end is reconciled
        if old:
            self._delete_windows([rid for slug, packed in old.items() for rid in unpack_windows(slug, packed)])
        vectors = np.concatenate(vecs) if vecs else np.zeros((0, 0), dtype=np.float32)
        for k in range(0, len(ids), self.max_batch):
            m = k + self.max_batch
            # upsert, not add: Chroma's add keeps the vector of an id already there (a window another
            # process wrote meanwhile), and upsert costs no more (1.82 s of CPU for 16,384 windows
            # against add's 1.97 s, `python -m eval.chroma_costs`).
            col.upsert(ids=ids[k:m], embeddings=vectors[k:m])
        self._record_held(col, held + len(ids))
        self._mark_done({slug: {"window_ids": windows[slug]} if slug in old else {} for slug in windows})
        self._ended(written)
        self._bump()

    def move_source(self, reference: str, source: str) -> None:
        """Record that a decision's file now lives at ``source`` (so ``--prune`` follows moved files)."""
        slug = reference_slug(reference)
        if self.decisions_collection.get(ids=[slug], include=[])["ids"]:
            # Only the source: writing back the fields read would undo a rewrite begun meanwhile.
            self.decisions_collection.update(ids=[slug], metadatas=[{"source": absolute_source(source)}])

    def delete_decision(self, reference: str) -> None:
        """Remove a decision: its record is marked incomplete first, so that a delete killed
        half-way leaves a record the next ingest repairs, never a complete one without passages."""
        ref, slug = normalise_reference(reference), reference_slug(reference)
        record = self._raw_records([ref]).get(ref)
        removal = self._log(REMOVE, [ref]) if record is not None else None
        if removal is not None:
            self.decisions_collection.update(ids=[slug], metadatas=[{"status": WRITING, "written": removal}])
            self._bump()
            self._delete_windows(unpack_windows(slug, record.get("window_ids", "")))
        self.decisions_collection.delete(ids=[slug])
        if removal is not None:
            self._ended(removal)
        self._bump()
        self._expected = None  # a removal is not in the catalogue's new segments: ``only_ours`` says no

    def stored_decision(self, reference: str) -> Decision:
        """A decision's stored JSON even when its record is incomplete (for repairs)."""
        md = self._raw_records([reference]).get(normalise_reference(reference))
        if md is None:
            raise KeyError(reference)
        return Decision.from_json(unpack_json(md["json"]), source=md.get("source", ""))

    def drop(self) -> None:
        """Delete the collections (``ingest --rebuild``)."""
        # The last collections first: the later ones are found from the first.
        for name in [*reversed(self._shard_names()), DECISIONS, CHANGES]:
            if self._existing(name) is not None:
                self.client.delete_collection(name)
        self._passages = self._decisions = self._changes = None


def absolute_source(source: str) -> str:
    """Sources are recorded as absolute paths, so ``--prune`` works from any folder."""
    return str(Path(source).resolve()) if source else ""


def nearest_references(reference: str, known: list[str], n: int = 3) -> list[str]:
    """The indexed references closest to a mistyped one (by digits in common, then distance)."""
    digits = re.sub(r"\D", "", reference)

    def score(ref: str) -> tuple[int, int]:
        d = re.sub(r"\D", "", ref)
        same = sum(1 for a, b in zip(d, digits) if a == b)
        try:
            gap = abs(int(d) - int(digits))
        except ValueError:
            gap = 10**9
        return (-same, gap)

    return sorted(known, key=score)[:n]
