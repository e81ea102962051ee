"""Incremental, safe ingest: unchanged files embed nothing, changed text replaces a decision's
passages, pruning, duplicate references, stable ids, the recorded model, and a killed ingest that
never leaves a decision half-indexed."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import chromadb.api.models.Collection
import numpy as np
import pytest
from hypothesis import given, strategies as st
from click.testing import CliRunner

from index.config import PROJECT_ROOT, SEEDS_DIR, StoreConfig
from index.ingest import ADDED, FAILED, REMOVED, REPAIRED, REPLACED, UNCHANGED, ingest
from index.parse import parse_file
from index.passage import passages_of
from index.store import PASSAGES, DecisionWrite, Store, StoreError, pack_windows, passage_of_window, unpack_windows, window_id
from rag.archive import Archive
from ui.cli import main

from conftest import assert_consistent, decision_write

DATA = Path(__file__).parent / "data"
SEED_PASSAGES = {"24 016 809": 19, "24 000 184": 14}  # paragraphs plus the Summary


def no_embedder():
    raise AssertionError("the embedder was called, but there was nothing to embed")


def copy_index(archive: Archive, to: Path, embedder) -> Archive:
    """A private, writable copy of a session index (which tests must not change)."""
    shutil.copytree(archive.store_config.index_dir, to)
    return Archive(StoreConfig(index_dir=to), encoder=embedder.encoder)


def seed_files(folder: Path) -> Path:
    shutil.copytree(SEEDS_DIR, folder)
    return folder


def passages_of_ref(store: Store, ref: str):
    """The passages of one decision whose vectors are stored (ids of window 0 records)."""
    windows = store.window_ids(ref)
    read = {p.id: p for p in store.iter_passages(ref)}
    return {pid: read[pid] for pid in windows if "~" not in pid and pid in read}


# -- incremental ------------------------------------------------------------------------------


def test_reingesting_unchanged_files_embeds_nothing(seeds_archive, embedder, tmp_path):
    archive = copy_index(seeds_archive, tmp_path / "index", embedder)
    before = archive.store.fingerprint()
    report = ingest([SEEDS_DIR], archive.store, no_embedder, label=embedder.label)
    assert report.embedded_passages == 0
    assert report.embedded_windows == 0
    assert [r.status for r in report.results] == [UNCHANGED, UNCHANGED]
    assert {r.reference: r.paragraphs for r in report.results} == SEED_PASSAGES
    assert not report.lexical_rebuilt
    assert archive.store.fingerprint() == before


def test_reingesting_the_unchanged_corpus_is_quick(corpus_archive, embedder, corpus_dir, capsys, record_property):
    # Nothing needs embedding, so nothing is written: the shared corpus index is not changed.
    store = corpus_archive.store
    before = store.fingerprint()
    start = time.perf_counter()
    report = ingest([SEEDS_DIR, corpus_dir], store, no_embedder, label=embedder.label)
    seconds = time.perf_counter() - start
    assert report.count(UNCHANGED) == 150
    assert report.embedded_passages == 0 and not report.failed and not report.lexical_rebuilt
    assert store.fingerprint() == before
    record_property("reingest_unchanged_corpus_seconds", round(seconds, 3))
    with capsys.disabled():
        print(f"\n[measure] re-ingest of the unchanged corpus (150 decisions, "
              f"{store.counts()[1]} passages): {seconds:.2f} s")


def test_a_new_index_is_in_step_after_its_first_ingest_without_reading_its_records_back(embedder, tmp_path, monkeypatch):
    # An empty store and an empty catalogue hold the same thing; the first ingest adds a segment
    # for everything it writes, so nothing needs reconciling from the store's records.
    from index import catalogue

    store = Store(StoreConfig(index_dir=tmp_path / "index"))

    def read_back(*args, **kwargs):
        raise AssertionError("the store's records were read back after the first ingest")

    monkeypatch.setattr(Store, "complete_records", read_back)
    report = ingest([SEEDS_DIR], store, embedder)
    assert report.count(ADDED) == 2 and report.embedded_passages == sum(SEED_PASSAGES.values())
    assert catalogue.in_step(store, store.generation())
    monkeypatch.undo()
    assert set(catalogue.Catalogue.load(store).decisions) == set(SEED_PASSAGES)


def test_a_store_with_decisions_or_a_catalogue_with_segments_is_not_in_step_with_an_empty_other(seeds_archive, embedder, tmp_path):
    from index import catalogue

    archive = copy_index(seeds_archive, tmp_path / "index", embedder)
    store = archive.store
    shutil.rmtree(store.catalogue_dir)
    assert not catalogue.in_step(store, store.generation())
    empty = Store(StoreConfig(index_dir=tmp_path / "empty"))
    assert catalogue.in_step(empty, empty.generation())
    (empty.catalogue_dir / "segment-000001").mkdir(parents=True)  # one no manifest lists
    assert not catalogue.in_step(empty, empty.generation())


def test_changed_text_replaces_that_decisions_passages(seeds_archive, embedder, tmp_path):
    archive = copy_index(seeds_archive, tmp_path / "index", embedder)
    store = archive.store
    source = seed_files(tmp_path / "decisions")
    path = source / "24-016-809.txt"
    text = path.read_text(encoding="utf-8")
    # Paragraph 15 reworded, and the "Final decision" section (paragraph 18) dropped.
    text = text.replace("The Council acknowledges it should have held the strategy meeting",
                        "The Council accepts it held the strategy meeting late")
    text = re.sub(r"\nFinal decision\n\n  1\. We will not investigate[^\n]*\n", "\n", text)
    path.write_text(text, encoding="utf-8")
    old_hash = store.records()["24 016 809"].content_hash

    report = archive.ingest([source])
    assert {r.reference: r.status for r in report.results} == {"24 016 809": REPLACED, "24 000 184": UNCHANGED}
    assert 0 < report.embedded_passages <= 18
    assert report.lexical_rebuilt

    d = store.decision("24 016 809")
    assert [p.number for p in d.paragraphs] == list(range(1, 18))
    assert d.paragraph(15).text.startswith("The Council accepts it held the strategy meeting late")
    assert d.paragraph(17).section == "My assessment"
    rec = store.records()["24 016 809"]
    assert rec.paragraphs == 18 and rec.content_hash != old_hash
    passages = passages_of_ref(store, "24 016 809")
    assert len(passages) == 18
    assert "24-016-809#18" not in passages
    assert store.passages(["24-016-809#18"]) == {}
    assert passages["24-016-809#15"].text.startswith("The Council accepts it held the strategy meeting late")
    assert len(passages_of_ref(store, "24 000 184")) == 14
    assert_consistent(store)
    # Searches see the new text at once.
    hits = archive.retriever.search("accepts it held the strategy meeting late", k=3, mode="bm25")
    assert hits[0].id == "24-016-809#15"
    assert "held the strategy meeting late" in hits[0].text


def test_prune_removes_decisions_whose_files_are_gone(seeds_archive, embedder, tmp_path):
    source = seed_files(tmp_path / "decisions")
    archive = Archive(StoreConfig(index_dir=tmp_path / "index"), encoder=embedder.encoder)
    assert archive.ingest([source]).count(ADDED) == 2
    (source / "24-000-184.txt").unlink()

    kept = archive.ingest([source])
    assert [r.status for r in kept.results] == [UNCHANGED]
    assert set(archive.store.complete_records()) == {"24 016 809", "24 000 184"}

    pruned = archive.ingest([source], prune=True)
    removed = [r for r in pruned.results if r.status == REMOVED]
    assert [(r.reference, r.source, r.reason) for r in removed] == [
        ("24 000 184", str(source / "24-000-184.txt"), "its file is gone")
    ]
    assert pruned.embedded_passages == 0
    assert set(archive.store.complete_records()) == {"24 016 809"}
    assert passages_of_ref(archive.store, "24 000 184") == {}
    with pytest.raises(KeyError, match="24 000 184 is not in the local index"):
        archive.store.decision("24 000 184")
    assert_consistent(archive.store)
    assert {h.ref for h in archive.retriever.search("Information Commissioner data protection", k=5)} == {"24 016 809"}


def test_a_delete_stopped_after_the_passages_went_leaves_a_record_the_next_ingest_repairs(
        embedder, tmp_path, monkeypatch):
    # The process dies between removing a decision's passages and its record; the file is still
    # there. The next ingest must index it whole again, not take it for unchanged.
    from chromadb.api.models.Collection import Collection

    from index.store import PASSAGES

    source = seed_files(tmp_path / "decisions")
    archive = Archive(StoreConfig(index_dir=tmp_path / "index"), encoder=embedder.encoder)
    archive.ingest([source])

    class Killed(Exception):
        pass

    delete = Collection.delete

    def dies_after_passages(self, *args, **kwargs):
        delete(self, *args, **kwargs)
        if self.name == PASSAGES:
            raise Killed

    monkeypatch.setattr(Collection, "delete", dies_after_passages)
    with pytest.raises(Killed):
        archive.store.delete_decision("24 000 184")
    monkeypatch.undo()
    assert "24 000 184" not in Store(StoreConfig(index_dir=tmp_path / "index")).complete_records()

    again = Archive(StoreConfig(index_dir=tmp_path / "index"), encoder=embedder.encoder)
    report = again.ingest([source])
    assert [(r.reference, r.status) for r in report.results if r.status != UNCHANGED] == [("24 000 184", REPAIRED)]
    assert len(passages_of_ref(again.store, "24 000 184")) == SEED_PASSAGES["24 000 184"]
    assert_consistent(again.store)


def test_two_files_with_one_reference_and_different_text_are_both_reported(seeds_archive, embedder, tmp_path):
    archive = copy_index(seeds_archive, tmp_path / "index", embedder)
    before = archive.store.decision("24 016 809")
    before_hash = archive.store.records()["24 016 809"].content_hash
    source = tmp_path / "decisions"
    source.mkdir()
    shutil.copy(SEEDS_DIR / "24-016-809.txt", source / "a.txt")
    (source / "b.txt").write_text(
        (SEEDS_DIR / "24-016-809.txt").read_text(encoding="utf-8").replace("Safety Plan", "safety plan"),
        encoding="utf-8",
    )
    report = ingest([source], archive.store, no_embedder, label=embedder.label)
    assert [(r.source, r.status, r.reference) for r in report.results] == [
        (str(source / "a.txt"), FAILED, "24 016 809"),
        (str(source / "b.txt"), FAILED, "24 016 809"),
    ]
    for r in report.results:
        assert "duplicate reference 24 016 809 with different text" in r.reason
        assert str(source / "a.txt") in r.reason and str(source / "b.txt") in r.reason
    assert archive.store.decision("24 016 809") == before
    assert archive.store.records()["24 016 809"].content_hash == before_hash
    assert_consistent(archive.store)


def test_the_same_text_twice_is_indexed_once(embedder, tmp_path):
    source = tmp_path / "decisions"
    source.mkdir()
    shutil.copy(SEEDS_DIR / "24-000-184.txt", source / "24-000-184.txt")
    (source / "copy-with-crlf.txt").write_bytes((SEEDS_DIR / "24-000-184.txt").read_bytes().replace(b"\n", b"\r\n"))
    archive = Archive(StoreConfig(index_dir=tmp_path / "index"), encoder=embedder.encoder)
    report = archive.ingest([source])
    statuses = sorted((r.status, r.reason) for r in report.results)
    assert statuses == [(ADDED, ""), (UNCHANGED, f"same decision as {source / '24-000-184.txt'}")]
    assert report.embedded_passages == 14
    assert archive.store.counts() == (1, 14)
    assert len(passages_of_ref(archive.store, "24 000 184")) == 14


def test_passage_ids_are_stable_and_readable(seeds_archive):
    store = seeds_archive.store
    ids = set(passages_of_ref(store, "24 016 809"))
    assert ids == {"24-016-809#summary", *(f"24-016-809#{n}" for n in range(1, 19))}
    got = store.passages(["24-016-809#15", "24-016-809#summary"])
    p15, summary = got["24-016-809#15"], got["24-016-809#summary"]
    assert p15.paragraph == 15
    assert p15.text.startswith("The Council acknowledges it should have held the strategy meeting")
    assert p15.metadata["section"] == "My assessment"
    assert p15.metadata["subsection"] == "Poor communication and report inaccuracies"
    assert p15.metadata["ref"] == "24 016 809"
    assert p15.metadata["decision_date"] == "2025-04-09"
    assert p15.metadata["url"].endswith("/children-s-care-services/child-protection/24-016-809")
    assert seeds_archive.retriever.catalogue.passages["24-016-809#15"][5] > 0  # its token count
    assert summary.paragraph == "summary"
    assert summary.text == parse_file(SEEDS_DIR / "24-016-809.txt").summary
    assert store.passages(["24-016-809#2"])["24-016-809#2"].metadata["statutes"] == [
        "Local Government Act 1974, section 24A(6)", "Local Government Act 1974, section 34(B)",
    ]
    assert_consistent(store)


def other_encoder(embedder) -> str:
    return "torch" if embedder.encoder != "torch" else "onnx"


def test_the_model_label_is_recorded_and_another_encoder_is_refused(seeds_archive, embedder):
    store = seeds_archive.store
    assert store.model_label == embedder.label
    assert embedder.label.startswith("sentence-transformers/all-MiniLM-L6-v2 [")
    other = f"sentence-transformers/all-MiniLM-L6-v2 [{other_encoder(embedder)}]"
    fresh = Store(seeds_archive.store_config)  # another connection to the same index
    with pytest.raises(StoreError) as e:
        fresh.check_model(other)
    assert f"was built with {embedder.label}" in str(e.value)
    assert f"this run embeds with {other}" in str(e.value)
    assert str(seeds_archive.store_config.index_dir) in str(e.value)
    with pytest.raises(StoreError, match="vectors of different encoders do not compare"):
        ingest([SEEDS_DIR], fresh, no_embedder, label=other)
    assert fresh.counts() == (2, 33)


def test_an_index_built_with_passages_in_another_context_says_what_to_run(seeds_archive, monkeypatch):
    from index.passage import DEFAULT_CONTEXT

    other = "decision" if DEFAULT_CONTEXT != "decision" else "heading"
    monkeypatch.setenv("OMBUDSMAN_PASSAGE_CONTEXT", other)
    with pytest.raises(StoreError) as e:
        Store(seeds_archive.store_config).passages_collection()
    assert f"embeds passages in the {DEFAULT_CONTEXT!r} context" in str(e.value)
    assert "ombudsman ingest --rebuild PATH..." in str(e.value)
    monkeypatch.setenv("OMBUDSMAN_PASSAGE_CONTEXT", "sideways")
    with pytest.raises(ValueError, match="OMBUDSMAN_PASSAGE_CONTEXT='sideways' is not one of bare, heading, decision"):
        Store(seeds_archive.store_config).passages_collection()


def test_passages_are_embedded_with_the_context_the_index_records():
    from index.parse import parse_file
    from index.passage import passages_of

    d = parse_file(SEEDS_DIR / "24-016-809.txt")
    bare, heading, decision = (passages_of(d, c)[1] for c in ("bare", "heading", "decision"))
    assert bare.embedding_text() == bare.text
    assert heading.embedding_text() == f"The complaint. {bare.text}"
    assert decision.embedding_text().startswith("Leicestershire County Council. Children's care services, Child protection. "
                                                 "We will not investigate this complaint")
    assert decision.embedding_text().endswith(f"The complaint. {bare.text}")


def test_ingest_with_another_encoder_exits_with_the_reason(seeds_archive, embedder):
    result = CliRunner().invoke(main, [
        "--index", str(seeds_archive.store_config.index_dir), "--encoder", other_encoder(embedder),
        "ingest", str(SEEDS_DIR),
    ])
    assert result.exit_code == 1
    assert f"was built with {embedder.label}" in result.stderr
    assert "--rebuild" in result.stderr


# -- a killed ingest ----------------------------------------------------------------------------

SMALL_DECISION = """Example Council {i} ({ref})

Category : Housing > Homelessness

Decision : Upheld

Decision date : 01 Feb 2024

Summary: Mrs B complained about housing decision {i}. We found fault.

The complaint

  1. Mrs B complains about housing decision {i}.
  2. She says the Council replied late.

Final decision

  1. The Council was at fault and has agreed to apologise.
"""

# Ingest stores decisions in batches of about OMBUDSMAN_INGEST_BATCH (set to 256 here) embedding windows. 64 short decisions of 4 passages
# (references 10 000 001 ..., sorted before the seeds) fill the first batch exactly; the second holds
# the last two short ones and the new versions of both seeds.
N_SMALL = 66

# Put on the killed process's path as ``sitecustomize``: when the second batch is written, it lets
# half of that batch's passages into Chroma (after the old versions' passages were deleted), then
# says so and waits to be killed.
_PAUSE_HALF_WRITTEN = """
import sys, time
from chromadb.api.models.Collection import Collection

_upsert = Collection.upsert

def upsert(self, ids, embeddings=None, metadatas=None, documents=None, **kw):
    if any(i.startswith("24-016-809#") for i in ids):
        half = len(ids) // 2
        _upsert(self, ids=ids[:half], embeddings=embeddings[:half], metadatas=metadatas and metadatas[:half])
        sys.stderr.write("\\nHALF-WRITTEN\\n")
        sys.stderr.flush()
        time.sleep(600)
    return _upsert(self, ids=ids, embeddings=embeddings, metadatas=metadatas, documents=documents, **kw)

Collection.upsert = upsert
"""


def write_small_decisions(folder: Path, n: int) -> list[str]:
    refs = []
    for i in range(1, n + 1):
        ref = f"10 000 {i:03d}"
        (folder / f"{ref.replace(' ', '-')}.txt").write_text(SMALL_DECISION.format(i=i, ref=ref), encoding="utf-8")
        refs.append(ref)
    return refs


def ombudsman_command() -> list[str]:
    script = Path(sys.executable).parent / "ombudsman"
    return [str(script)] if script.exists() else [sys.executable, "-m", "ui.cli"]


def test_ingest_killed_midway_leaves_no_half_indexed_decision(seeds_archive, embedder, tmp_path):
    # Before: the two seeds and a third decision, complete (made without a model: a copy of the seeds
    # index plus 23 456 789). Copied again so that this process never opened the folder the killed
    # process writes to, and reads it afresh as any new reader would.
    before = copy_index(seeds_archive, tmp_path / "before", embedder)
    assert before.ingest([DATA / "decision.txt"]).count(ADDED) == 1
    index = tmp_path / "index"
    shutil.copytree(tmp_path / "before", index)

    # The batch: 66 new short decisions and new versions of both seeds.
    source = tmp_path / "decisions"
    source.mkdir()
    small = write_small_decisions(source, N_SMALL)
    for name in ("24-016-809.txt", "24-000-184.txt"):
        text = (SEEDS_DIR / name).read_text(encoding="utf-8").replace("the Council", "the Authority")
        (source / name).write_text(text, encoding="utf-8")
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(_PAUSE_HALF_WRITTEN)

    stderr = bytearray()
    proc = subprocess.Popen(
        [*ombudsman_command(), "--index", str(index), "--encoder", embedder.encoder, "ingest", str(source)],
        cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(hook), str(PROJECT_ROOT)]),
             "OMBUDSMAN_INGEST_BATCH": "256"},
    )
    reader = threading.Thread(
        target=lambda: [stderr.extend(b) for b in iter(lambda: proc.stderr.read1(4096), b"")], daemon=True
    )
    reader.start()
    try:
        deadline = time.monotonic() + 300
        while b"HALF-WRITTEN" not in stderr and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        reader.join(timeout=5)
    log = bytes(stderr).decode(errors="replace")
    assert "HALF-WRITTEN" in log, log[-3000:]
    assert proc.returncode == -signal.SIGKILL
    assert re.search(r"\b64/68 \[", log), "the progress bar should show the first batch stored"

    # Readers see only complete decisions: the first batch and 23 456 789, not the batch cut short.
    archive = Archive(StoreConfig(index_dir=index), encoder=embedder.encoder)
    store = archive.store
    interrupted = {"24 016 809", "24 000 184", *small[64:]}
    records = store.records()
    assert {r for r, rec in records.items() if not rec.complete} == interrupted
    # Each interrupted record names every window it may have left (half the batch's were written):
    # the repair deletes those.
    assert any(store.window_ids(ref) for ref in interrupted)
    for ref in interrupted:
        assert store.window_ids(ref) <= set(unpack_windows(ref.replace(" ", "-"), records[ref].window_ids)), ref
    complete = set(store.complete_records())
    assert complete == {*small[:64], "23 456 789"}
    assert_consistent(store, no_orphans=False)
    assert store.counts() == (65, 64 * 4 + 9)
    for ref in interrupted:
        with pytest.raises(KeyError, match="is not in the local index"):
            store.decision(ref)
    catalogue = archive.retriever.catalogue
    assert set(catalogue.decisions) == complete
    assert {row[0] for row in catalogue.passages.values()} == complete
    hits = archive.retriever.search("the Council acknowledges it should have held the strategy meeting", k=10)
    assert hits and not {h.ref for h in hits} & interrupted
    cli = CliRunner().invoke(main, ["--index", str(index), "--encoder", embedder.encoder, "show", "24 016 809"])
    assert cli.exit_code == 1 and "24 016 809 is not in the local index" in cli.stderr

    # The next ingest, of anything, repairs the interrupted decisions from what the store kept.
    report = archive.ingest([DATA / "decision.txt"])
    assert sorted((r.reference, r.status) for r in report.results) == sorted(
        [("23 456 789", UNCHANGED)] + [(ref, REPAIRED) for ref in interrupted]
    )
    assert report.embedded_passages == 19 + 14 + 2 * 4
    assert store.counts() == (69, 66 * 4 + 9 + 19 + 14)
    assert_consistent(store)
    assert store.decision("24 016 809") == parse_file(source / "24-016-809.txt")
    assert store.decision("24 000 184") == parse_file(source / "24-000-184.txt")
    hits = archive.retriever.search("the Council acknowledges it should have held the strategy meeting", k=3)
    assert hits[0].id == "24-016-809#15"
    assert hits[0].text.endswith("I consider the Authority’s response to be sufficient.")
    again = archive.ingest([source])
    assert again.count(UNCHANGED) == 68 and again.embedded_passages == 0 and not again.failed


def test_window_vectors_spread_over_collections_are_read_replaced_and_pruned_in_all(embedder, tmp_path, monkeypatch):
    # New windows go to a collection of bounded size (so an ingest loads a small graph); reads,
    # replacements and prunes find a decision's windows whichever collection holds them.
    import index.store as store_module

    monkeypatch.setattr(store_module, "SHARD_WINDOWS", 20)
    source = seed_files(tmp_path / "decisions")
    archive = Archive(StoreConfig(index_dir=tmp_path / "index"), encoder=embedder.encoder)
    (source / "24-000-184.txt").rename(tmp_path / "later.txt")
    archive.ingest([source])  # 24 016 809: 19 windows, the first collection
    (tmp_path / "later.txt").rename(source / "24-000-184.txt")
    # Where windows go is read from the shards' recorded counts: Chroma's count of a collection
    # loads its whole graph (20 s at 1.5 million windows), and a write must not pay that.
    counted = []
    monkeypatch.setattr(chromadb.api.models.Collection.Collection, "count", lambda col: counted.append(col.name))
    archive.ingest([source])  # 24 000 184: 14 more would pass 20, so a second collection
    monkeypatch.undo()
    monkeypatch.setattr(store_module, "SHARD_WINDOWS", 20)
    assert counted == []
    store = archive.store
    assert store._shard_names() == [store_module.PASSAGES, f"{store_module.PASSAGES}-1"]
    assert [c.count() for c in store._shards()] == [19, 14]
    assert [c.metadata[store_module.SHARD_HELD] for c in store._shard_collections()] == [19, 14]
    assert_consistent(store)
    # A record names the collection of its windows, so another process taking a decision's vectors
    # into its catalogue reads that one only (reading vectors loads a collection's graph).
    records = store._raw_records(["24 000 184", "24 016 809"])
    assert [records[ref]["shard"] for ref in ("24 016 809", "24 000 184")] == [store_module.PASSAGES,
                                                                             f"{store_module.PASSAGES}-1"]
    read, get = [], chromadb.api.models.Collection.Collection.get
    monkeypatch.setattr(chromadb.api.models.Collection.Collection, "get",
                        lambda col, *a, **kw: read.append((col.name, kw.get("include"))) or get(col, *a, **kw))
    vectors = store.vectors_of({"24 000 184": records["24 000 184"]["content_hash"]})
    monkeypatch.setattr(chromadb.api.models.Collection.Collection, "get", get)
    assert len(vectors["24 000 184"]) == 14
    assert [name for name, include in read if include == ["embeddings"]] == [f"{store_module.PASSAGES}-1"]

    text = (source / "24-016-809.txt").read_text(encoding="utf-8")
    (source / "24-016-809.txt").write_text(text.replace("strategy meeting", "strategy discussion", 1), encoding="utf-8")
    report = archive.ingest([source])
    assert [(r.reference, r.status) for r in report.results if r.status != UNCHANGED] == [("24 016 809", REPLACED)]
    assert [c.count() for c in store._shards()] == [0, 14, 19]  # gone from the first, written to a third
    assert len(passages_of_ref(store, "24 016 809")) == SEED_PASSAGES["24 016 809"]
    assert_consistent(store)
    assert archive.retriever.search("strategy discussion", k=1)[0].ref == "24 016 809"

    (source / "24-000-184.txt").unlink()
    archive.ingest([source], prune=True)
    assert [c.count() for c in store._shards()] == [0, 0, 19]
    # Recorded counts are what was written: deletes do not lower them (an upper bound).
    assert [c.metadata[store_module.SHARD_HELD] for c in store._shard_collections()] == [19, 14, 19]
    assert set(store.complete_records()) == {"24 016 809"}
    assert_consistent(store)


def long_paragraph_decision(ref: str, sentences: int) -> str:
    """A small decision whose paragraph 2 runs to ``sentences`` sentences (over one window from about 25)."""
    long = " ".join(f"The Council wrote to Mrs B on day {k} about the housing decision and the delay." for k in range(sentences))
    return SMALL_DECISION.format(i=1, ref=ref).replace("She says the Council replied late.", long)


def test_window_records_carry_no_metadata_and_each_decision_record_names_its_windows(embedder, tmp_path):
    # Chroma spent nearly as much CPU on two metadata fields as on the vector itself, so a window
    # keeps none: its id ties it to its passage, and the decision's record lists the ids written.
    folder = tmp_path / "files"
    folder.mkdir()
    (folder / "a.txt").write_text(long_paragraph_decision("10 000 001", 36), encoding="utf-8")
    store = Store(StoreConfig(index_dir=tmp_path / "index"))
    ingest([folder], store, embedder)
    [col] = store._shards()
    got = col.get(include=["metadatas"])
    assert all(md is None for md in got["metadatas"])
    record = store.records()["10 000 001"]
    assert record.window_ids == "summary,1,2*3,3"  # paragraph 2 cut into three windows
    assert set(got["ids"]) == {"10-000-001#summary", "10-000-001#1", "10-000-001#2", "10-000-001#2~1",
                               "10-000-001#2~2", "10-000-001#3"}
    assert_consistent(store)

    # A shorter new version: the windows its record named go, the new ones are named.
    (folder / "a.txt").write_text(long_paragraph_decision("10 000 001", 20), encoding="utf-8")
    assert ingest([folder], store, embedder).count(REPLACED) == 1
    assert store.records()["10 000 001"].window_ids == "summary,1,2*2,3"
    assert store.window_ids() == {"10-000-001#summary", "10-000-001#1", "10-000-001#2", "10-000-001#2~1", "10-000-001#3"}
    assert_consistent(store)

    (folder / "a.txt").unlink()
    ingest([folder], store, embedder, prune=True)
    assert store.window_ids() == set() and store.records() == {}


def test_a_replacement_killed_before_the_old_windows_go_leaves_a_record_naming_them_all(embedder, tmp_path, monkeypatch):
    # Killed after the record says "writing" (with the new version's JSON) and before the old
    # windows are deleted: the record names the old windows as well as the new, so the repair
    # deletes the old version's third window of paragraph 2, which the new version does not have.
    folder = tmp_path / "files"
    folder.mkdir()
    (folder / "a.txt").write_text(long_paragraph_decision("10 000 001", 36), encoding="utf-8")
    store = Store(StoreConfig(index_dir=tmp_path / "index"))
    ingest([folder], store, embedder)
    (folder / "a.txt").write_text(long_paragraph_decision("10 000 001", 20), encoding="utf-8")

    class Killed(BaseException):
        pass

    def killed(self, ids):
        raise Killed

    monkeypatch.setattr(Store, "_delete_windows", killed)
    with pytest.raises(Killed):
        ingest([folder], store, embedder)
    monkeypatch.undo()
    record = store.records()["10 000 001"]
    assert not record.complete
    assert "10-000-001#2~2" in store.window_ids("10 000 001")
    assert set(unpack_windows("10-000-001", record.window_ids)) == {
        "10-000-001#summary", "10-000-001#1", "10-000-001#2", "10-000-001#2~1", "10-000-001#2~2", "10-000-001#3"}

    report = ingest([folder], store, embedder)
    assert report.count(REPAIRED) + report.count(REPLACED) == 1
    assert store.window_ids() == {"10-000-001#summary", "10-000-001#1", "10-000-001#2", "10-000-001#2~1", "10-000-001#3"}
    assert store.records()["10 000 001"].window_ids == "summary,1,2*2,3"
    assert_consistent(store)


def test_two_processes_writing_one_decision_leave_the_last_writes_windows_and_vectors(embedder, tmp_path, monkeypatch):
    # Two ingests sharing a server may each find a decision new and write their own version of it.
    longer = decision_write(long_paragraph_decision("10 000 001", 36), embedder)
    shorter = decision_write(long_paragraph_decision("10 000 001", 20), embedder)
    assert [len(ws) for ws in longer.windows] == [1, 1, 3, 1] and [len(ws) for ws in shorter.windows] == [1, 1, 2, 1]
    one, other = (Store(StoreConfig(index_dir=tmp_path / "one-after-the-other")) for _ in range(2))

    def stored_vectors(store: Store) -> dict[str, np.ndarray]:
        hashes = {r.reference: r.content_hash for r in store.complete_records().values()}
        return store.vectors_of(hashes)["10 000 001"]

    def written(write: DecisionWrite) -> dict[str, np.ndarray]:
        ids = [window_id(p.id, k) for p, ws in zip(write.passages, write.windows) for k in range(len(ws))]
        return dict(zip(ids, write.vectors))

    # One after the other: the second finds the first's record when it writes, and replaces it.
    one.write_decisions([longer], embedder.label)
    other.write_decisions([shorter], embedder.label)
    got, expected = stored_vectors(one), written(shorter)
    assert got.keys() == expected.keys() and all(np.allclose(got[i], expected[i], atol=1e-6) for i in got)
    assert_consistent(one)

    # Interleaved: the first writes its whole version after the second has read the records and
    # before it writes its windows; the second's vectors replace the first's under the same ids.
    one, other = (Store(StoreConfig(index_dir=tmp_path / "interleaved")) for _ in range(2))
    reading = Store._raw_records

    def then_the_other_writes(self, refs):
        got = reading(self, refs)
        if self is one:
            monkeypatch.setattr(Store, "_raw_records", reading)
            other.write_decisions([longer], embedder.label)
        return got

    monkeypatch.setattr(Store, "_raw_records", then_the_other_writes)
    one.write_decisions([shorter], embedder.label)
    got = stored_vectors(other)
    assert got.keys() == expected.keys() and all(np.allclose(got[i], expected[i], atol=1e-6) for i in got)


def test_recording_a_moved_file_keeps_a_rewrite_another_process_began_meanwhile(embedder, tmp_path, monkeypatch):
    store, other = (Store(StoreConfig(index_dir=tmp_path / "index")) for _ in range(2))
    store.write_decisions([decision_write(long_paragraph_decision("10 000 001", 36), embedder)], embedder.label)
    rewrite = decision_write(long_paragraph_decision("10 000 001", 20), embedder)
    looked = chromadb.api.models.Collection.Collection.get

    def rewrite_begun_after_the_look(col, *args, **kwargs):
        got = looked(col, *args, **kwargs)
        monkeypatch.setattr(chromadb.api.models.Collection.Collection, "get", looked)
        other._mark_writing([(rewrite.decision, len(rewrite.passages), "summary,1,2*2,3")], "rewrite", PASSAGES)
        return got

    monkeypatch.setattr(chromadb.api.models.Collection.Collection, "get", rewrite_begun_after_the_look)
    store.move_source("10 000 001", str(tmp_path / "moved.txt"))
    record = store.records()["10 000 001"]
    assert record.source == str(tmp_path / "moved.txt")
    assert not record.complete and record.content_hash == rewrite.decision.content_hash  # the rewrite's, kept


@given(st.lists(st.tuples(st.integers(1, 60), st.integers(1, 4)), unique_by=lambda t: t[0]), st.booleans())
def test_a_records_window_ids_unpack_to_the_windows_written_in_order(passages, summary):
    labels = [("summary", 1)] * summary + [(str(n), count) for n, count in passages]
    packed = pack_windows(labels)
    assert unpack_windows("10-000-001", packed) == [
        "10-000-001#" + label + (f"~{k}" if k else "") for label, count in labels for k in range(count)]
    # While a decision is rewritten its record names the old windows and the new: each once.
    assert unpack_windows("10-000-001", f"{packed},{packed}") == unpack_windows("10-000-001", packed)
    assert len(packed) <= 6 * len(labels) + 7  # "summary" and "n*k" at most; runs shorter


def test_vectors_read_while_another_writer_rewrites_the_decision_are_left_out(seeds_archive, embedder, tmp_path, monkeypatch):
    # A process taking another's new decisions into its catalogue reads their records, then their
    # vectors: a decision written again in between (even with the same text) is left for the next
    # refresh, never taken with a mix of two writes' vectors.
    archive = copy_index(seeds_archive, tmp_path / "index", embedder)
    store = archive.store
    hashes = {r.reference: r.content_hash for r in store.complete_records().values()}
    assert set(store.vectors_of(hashes)) == {"24 016 809", "24 000 184"}

    writer = Store(StoreConfig(index_dir=tmp_path / "index"))
    rewrite = [decision_write((SEEDS_DIR / "24-016-809.txt").read_text(encoding="utf-8"), embedder)]
    shards = Store._shards

    def rewritten_first(self):
        if self is store:
            writer.write_decisions(rewrite, embedder.label)
        return shards(self)

    monkeypatch.setattr(Store, "_shards", rewritten_first)
    assert set(store.vectors_of(hashes)) == {"24 000 184"}
    monkeypatch.undo()
    assert set(store.vectors_of(hashes)) == {"24 016 809", "24 000 184"}
    assert_consistent(store)


def test_a_shard_written_before_counts_were_recorded_is_counted_once_and_its_count_recorded(seeds_archive, embedder, tmp_path):
    import index.store as store_module

    archive = copy_index(seeds_archive, tmp_path / "index", embedder)
    store = archive.store
    [col] = store._shard_collections()
    col.modify(metadata={k: v for k, v in col.metadata.items() if k != store_module.SHARD_HELD})  # as an older index
    assert store_module.SHARD_HELD not in store._shard_collections()[0].metadata
    assert store._write_shard(store.model_label, 1)[1] == 33  # counted by Chroma: the seeds' 33 windows
    fresh = store._shard_collections()[0]
    assert fresh.metadata[store_module.SHARD_HELD] == 33
    assert fresh.metadata["model"] == store.model_label and fresh.metadata["schema"] == store_module.SCHEMA


def test_an_ingest_into_a_catalogue_in_step_reads_no_records_but_its_own(seeds_archive, embedder, tmp_path, monkeypatch):
    # The catalogue was in step with the store and nobody else wrote: the ingest's own segments
    # bring it in step again, without reading every record (each holds a decision's JSON).
    from index import catalogue

    archive = copy_index(seeds_archive, tmp_path / "index", embedder)
    assert catalogue.in_step(archive.store, archive.store.generation())
    files = tmp_path / "files"
    files.mkdir()
    shutil.copy(DATA / "decision.txt", files)  # a decision the seeds index does not have
    every_record = Store.records

    def records(self, refs=None):
        assert refs is not None, "read every record"
        return every_record(self, refs)

    monkeypatch.setattr(Store, "records", records)
    report = archive.ingest([files])
    assert report.count(ADDED) == 1 and not report.failed
    monkeypatch.undo()
    assert catalogue.in_step(archive.store, archive.store.generation())
    assert set(catalogue.Catalogue.load(archive.store).decisions) == set(archive.store.complete_records())


def test_a_store_knows_whether_only_its_own_writes_changed_the_generation(seeds_archive, embedder, tmp_path):
    archive = copy_index(seeds_archive, tmp_path / "index", embedder)
    ours, theirs = Store(archive.store_config), Store(archive.store_config)

    def write(store: Store) -> None:
        store.move_source("24 000 184", "elsewhere.txt")  # no new generation: not a change of content
        store._bump()  # what every write and delete ends with

    ours.watch(ours.generation())
    write(ours)
    assert ours.only_ours() == ours.generation()
    ours.watch(ours.generation())
    write(theirs)
    write(ours)
    assert ours.only_ours() is None  # another writer came first
    ours.watch(ours.generation())
    write(ours)
    write(theirs)
    assert ours.only_ours() is None  # ... or after
    ours.watch(ours.generation())
    ours.delete_decision("24 000 184")
    assert ours.only_ours() is None  # a removal: the catalogue has to be reconciled


def test_a_write_killed_before_its_last_generation_change_is_still_reconciled(embedder, tmp_path, monkeypatch):
    # The records say "done" but the catalogue never got the segment: the generation changed when
    # the write began, so the next ingest does not take the catalogue for in step.
    from index import catalogue

    source = seed_files(tmp_path / "decisions")
    (source / "24-000-184.txt").rename(tmp_path / "later.txt")
    archive = Archive(StoreConfig(index_dir=tmp_path / "index"), encoder=embedder.encoder)
    archive.ingest([source])
    (tmp_path / "later.txt").rename(source / "24-000-184.txt")

    class Killed(Exception):
        pass

    bumps = []
    bump = Store._bump

    def dies_at_the_last(self):
        bumps.append(1)
        if len(bumps) == 2:  # the one after "done"
            raise Killed
        bump(self)

    monkeypatch.setattr(Store, "_bump", dies_at_the_last)
    with pytest.raises(Killed):
        Archive(StoreConfig(index_dir=tmp_path / "index"), encoder=embedder.encoder).ingest([source])
    monkeypatch.undo()
    store = Store(StoreConfig(index_dir=tmp_path / "index"))
    assert "24 000 184" in store.complete_records()
    assert "24 000 184" not in catalogue.Catalogue(store.catalogue_dir, json_manifest(store)).decisions

    again = Archive(StoreConfig(index_dir=tmp_path / "index"), encoder=embedder.encoder)
    report = again.ingest([source])
    assert report.embedded_passages == 0  # both unchanged in the store ...
    assert set(catalogue.Catalogue.load(again.store).decisions) == {"24 016 809", "24 000 184"}  # ... and both searchable
    assert catalogue.in_step(again.store, again.store.generation())


def json_manifest(store: Store) -> dict:
    import json

    return json.loads((store.catalogue_dir / "manifest.json").read_text())


def test_a_short_ingest_embeds_a_quarter_of_its_passages_per_batch_and_a_long_one_full_batches(monkeypatch):
    from index import ingest as ingest_module
    from index.decision import Decision, Paragraph
    from index.ingest import FileResult, _Job, batch_windows

    monkeypatch.setattr(ingest_module, "BATCH_WINDOWS", 400)
    monkeypatch.setattr(ingest_module, "SHORT_BATCH_WINDOWS", 100)

    def jobs(decisions: int, paragraphs: int) -> list:
        return [_Job(FileResult(f"{i}.txt", ADDED, f"24 000 {i:03d}"), decision=Decision(
            reference=f"24 000 {i:03d}", authority="A Council",
            paragraphs=tuple(Paragraph(n, "Final decision", f"Text {n}.") for n in range(1, paragraphs + 1))))
            for i in range(decisions)]

    assert batch_windows(jobs(100, 9)) == 250  # 1,000 passages counted: 9 paragraphs and a Summary each
    assert batch_windows(jobs(10, 9)) == 100  # never below the short batch
    assert batch_windows(jobs(400, 9)) == 400  # never above the full batch
    unparsed = jobs(10, 9) + [_Job(FileResult("big.txt", ADDED, "24 999 999"), path=Path("big.txt"))]
    assert batch_windows(unparsed) == 400  # a file not kept parsed: an ingest too large to count
    monkeypatch.setattr(ingest_module, "BATCH_WINDOWS", 64)  # set below the short batch: it wins
    assert batch_windows(jobs(100, 9)) == 64


def noting_calls(monkeypatch, owner, name: str, note) -> None:
    """``owner.name`` works as before, calling ``note`` with its arguments first."""
    original = getattr(owner, name)
    monkeypatch.setattr(owner, name, lambda *args, **kwargs: note(*args, **kwargs) or original(*args, **kwargs))


def small_batches(monkeypatch, embedder, first: int, full: int) -> list[int]:
    """Set ingest's first and full batches (the short one as the full), and return the list that
    records the number of windows of each batch sent to the encoder from then on (those reused
    from an earlier batch included)."""
    from index import ingest as ingest_module

    monkeypatch.setattr(ingest_module, "FIRST_BATCH_WINDOWS", first)
    monkeypatch.setattr(ingest_module, "SHORT_BATCH_WINDOWS", full)
    monkeypatch.setattr(ingest_module, "BATCH_WINDOWS", full)
    sizes: list[int] = []
    noting_calls(monkeypatch, ingest_module._Repeats, "embed_later", lambda _, texts: sizes.append(len(texts)))
    return sizes


def test_the_first_batch_is_small_so_the_encoder_starts_early(embedder, tmp_path, monkeypatch):
    # The encoder waits for the first batch to be prepared: it gets a small one, then full ones.
    sizes = small_batches(monkeypatch, embedder, first=5, full=20)
    report = ingest([SEEDS_DIR], Store(StoreConfig(index_dir=tmp_path / "index")), embedder)
    # Files in name order: 24 000 184 (14 passages) reaches the first batch's 5 windows alone,
    # then 24 016 809 (19) waits for the full batch of 20 until the end.
    assert sizes == [14, 19]
    assert report.embedded_passages == 33
    assert 0 < report.seconds_before_embedding < report.seconds


def test_a_text_an_earlier_batch_embedded_is_not_embedded_again(embedder, tmp_path, monkeypatch):
    # The seeds in two batches, as above: 24 016 809's paragraphs 4 and 5 (how the complaint was
    # considered) are word for word 24 000 184's 5 and 6, embedded in the first batch. The second
    # batch sends the encoder its other 17 windows, and stores the first batch's vectors for those two.
    small_batches(monkeypatch, embedder, first=5, full=20)
    sent: list[list[str]] = []
    noting_calls(monkeypatch, embedder, "embed_later", lambda texts, *_, **__: sent.append(list(texts)))
    store = Store(StoreConfig(index_dir=tmp_path / "index"))
    counted = dict(getattr(embedder, "_counted", {}))  # word pieces kept for texts not yet embedded
    report = ingest([SEEDS_DIR], store, embedder)
    assert getattr(embedder, "_counted", {}) == counted  # the two reused let go of theirs too
    assert [len(texts) for texts in sent] == [14, 17]
    assert report.reused_windows == 2 and report.embedded_windows == 33
    shared = {t for t in sent[0] if t.startswith("How I considered this complaint.")}
    assert len(shared) == 2 and not shared & set(sent[1])
    vectors = store.vectors_of({ref: r.content_hash for ref, r in store.complete_records().items()})
    first, second = vectors["24 000 184"], vectors["24 016 809"]
    assert len(first) == 14 and len(second) == 19
    for a, b in (("5", "4"), ("6", "5")):
        assert np.array_equal(first[f"24-000-184#{a}"], second[f"24-016-809#{b}"])
    assert 0 < report.seconds_before_embedding < report.seconds


def test_a_text_that_recurred_keeps_its_vector_for_the_batches_after(embedder, monkeypatch):
    # Sent in turn, each batch's vectors taken once the next is sent (as ingest does): "alpha"
    # recurs in the batch after its first, so it is kept, and a later batch reuses it; "beta",
    # seen in one batch only, is embedded again when it comes back after a batch without it.
    from index.ingest import _Repeats

    sent: list[list[str]] = []
    noting_calls(monkeypatch, embedder, "embed_later", lambda texts, *_, **__: sent.append(list(texts)))
    repeats = _Repeats(embedder, kept=8)
    first = repeats.embed_later(["alpha text", "beta text"])
    second = repeats.embed_later(["gamma text", "alpha text"])
    first_vectors = first()
    third = repeats.embed_later(["delta text"])
    second_vectors = second()
    fourth = repeats.embed_later(["beta text", "alpha text"])
    third(), (fourth_vectors := fourth())
    assert sent == [["alpha text", "beta text"], ["gamma text"], ["delta text"], ["beta text"]]
    assert repeats.reused == 2
    assert np.array_equal(second_vectors[1], first_vectors[0]) and np.array_equal(fourth_vectors[1], first_vectors[0])
    assert float(fourth_vectors[0] @ first_vectors[1]) > 0.95  # made again, for the same text
    assert list(repeats.kept) == ["alpha text"]


def test_a_batch_wholly_of_texts_embedded_before_sends_nothing_and_the_least_recently_reused_goes_first(embedder, monkeypatch):
    # Kept: at most one. "alpha" is kept once found in two batches in turn, then "beta" takes its
    # place; a batch of nothing but texts the batch before had (one of them twice) sends nothing.
    from index.ingest import _Repeats

    sent: list[list[str]] = []
    noting_calls(monkeypatch, embedder, "embed_later", lambda texts, *_, **__: sent.append(list(texts)))
    repeats = _Repeats(embedder, kept=1)
    first = repeats.embed_later(["alpha text", "beta text"])
    second = repeats.embed_later(["beta text", "alpha text", "beta text"])
    first_vectors, second_vectors = first(), second()
    assert sent == [["alpha text", "beta text"]]
    assert np.array_equal(second_vectors, first_vectors[[1, 0, 1]])
    assert list(repeats.kept) == ["beta text"]  # kept in the order reused: "alpha" went first
    third = repeats.embed_later(["gamma text"])
    fourth = repeats.embed_later(["alpha text", "beta text"])
    third(), fourth()
    assert sent[1:] == [["gamma text"], ["alpha text"]] and repeats.reused == 4


def test_the_last_batch_is_small_so_that_little_is_left_to_write_after_the_encoder_ends(embedder, tmp_path, monkeypatch):
    # 20 decisions of 3 paragraphs and a Summary: 80 windows expected, a decision's 4 at a time.
    # After the first batch, full ones; the last full one also takes the 4 windows that would be
    # left before the last batch (9 windows: 8, two decisions), fewer than the last batch's own.
    from index import ingest as ingest_module

    folder = tmp_path / "files"
    folder.mkdir()
    write_small_decisions(folder, 20)
    sizes = small_batches(monkeypatch, embedder, first=3, full=15)
    monkeypatch.setattr(ingest_module, "LAST_BATCH_IN_PROCESS", 9)
    report = ingest([folder], Store(StoreConfig(index_dir=tmp_path / "index")), embedder)
    assert sizes == [4, 16, 16, 16, 20, 8]
    assert report.embedded_windows == 80 and report.count(ADDED) == 20


def test_batch_sizes_set_in_the_environment_apply_to_the_next_ingest_and_a_bad_one_is_refused_by_name(
        embedder, tmp_path, monkeypatch):
    # Set after the module was imported, as an app that stays up or a benchmark comparing two
    # settings sets it. The same 20 decisions of 4 windows as above, full batches of 31 windows
    # instead of 15: a short ingest takes a quarter of its 80 windows (20) per batch, the last of
    # them with the 7 that the last batch (9) would leave before it.
    from index import ingest as ingest_module

    folder = tmp_path / "files"
    folder.mkdir()
    write_small_decisions(folder, 20)
    sizes = small_batches(monkeypatch, embedder, first=3, full=15)
    monkeypatch.setattr(ingest_module, "LAST_BATCH_IN_PROCESS", 9)
    monkeypatch.setenv("OMBUDSMAN_INGEST_BATCH", "31")
    report = ingest([folder], Store(StoreConfig(index_dir=tmp_path / "index")), embedder)
    assert sizes == [4, 20, 20, 28, 8]
    assert report.count(ADDED) == 20

    # Each of the four variables sets its own size.
    for variable, value in (("OMBUDSMAN_INGEST_BATCH", "900"), ("OMBUDSMAN_EARLY_BATCH", "7"),
                            ("OMBUDSMAN_LAST_BATCH", "100"), ("OMBUDSMAN_BULK_DECISIONS", "3")):
        monkeypatch.setenv(variable, value)
    assert ingest_module.Batching.from_environment() == ingest_module.Batching(full=900, early=7, last=100, bulk_from=3)
    for variable in ("OMBUDSMAN_EARLY_BATCH", "OMBUDSMAN_LAST_BATCH", "OMBUDSMAN_BULK_DECISIONS"):
        monkeypatch.delenv(variable)

    for bad in ("lots", "0", "-5", "2.5"):
        monkeypatch.setenv("OMBUDSMAN_INGEST_BATCH", bad)
        store = Store(StoreConfig(index_dir=tmp_path / f"bad-{bad}"))
        with pytest.raises(ValueError, match=f"OMBUDSMAN_INGEST_BATCH must be a whole number of at least 1, not '{bad}'"):
            ingest([folder], store, embedder)
        assert store.counts() == (0, 0)
    monkeypatch.delenv("OMBUDSMAN_INGEST_BATCH")

    # The cores the ingesting process keeps to beside the child: refused in an ingest too short for one.
    monkeypatch.setenv("OMBUDSMAN_INGEST_CORES", "none")
    store = Store(StoreConfig(index_dir=tmp_path / "bad-cores"))
    with pytest.raises(ValueError, match="OMBUDSMAN_INGEST_CORES must be a whole number of at least 1, not 'none'"):
        ingest([folder], store, embedder)
    assert store.counts() == (0, 0)


def test_in_this_process_a_batch_is_written_while_the_next_is_embedded(embedder, tmp_path, monkeypatch):
    # With the model in this process, each batch's vectors exist when its embedding call returns:
    # the batch goes to the store writer then, not after the next batch has been embedded too.
    # Each embedding call after the first waits (up to 10 s) for the batch before it to be written.
    folder = tmp_path / "files"
    folder.mkdir()
    write_small_decisions(folder, 12)
    small_batches(monkeypatch, embedder, first=4, full=16)
    written = [threading.Event() for _ in range(12)]
    calls = {"embedded": 0, "written": 0}
    waited: list[bool] = []

    def before_embedding(*_, **__) -> None:
        if calls["embedded"]:
            waited.append(written[calls["embedded"] - 1].wait(timeout=10))
        calls["embedded"] += 1

    def before_writing(*_, **__) -> None:
        written[calls["written"]].set()
        calls["written"] += 1

    noting_calls(monkeypatch, embedder, "embed_later", before_embedding)
    noting_calls(monkeypatch, Store, "write_decisions", before_writing)
    report = ingest([folder], Store(StoreConfig(index_dir=tmp_path / "index")), embedder)
    assert not embedder.embeds_elsewhere
    assert calls == {"embedded": 4, "written": 4}  # batches of 4, 16, 16 and 12 windows
    assert waited == [True, True, True]
    assert report.embedded_windows == 48 and report.count(ADDED) == 12


def test_with_the_child_the_batches_that_end_an_ingest_get_smaller_down_to_the_last(embedder, tmp_path, monkeypatch):
    # Each a third of the one before (9, 3, 1 windows after full batches of 16): a batch is
    # written while the next is embedded. In decisions of 4 windows, the end is 8 windows, then 4.
    from index import ingest as ingest_module

    if embedder.encoder == "torch":
        pytest.skip("the child process runs the ONNX encoders")
    assert ingest_module._taper(4096) == [2304, 768, 256] and ingest_module._taper(256) == []
    folder = tmp_path / "files"
    folder.mkdir()
    write_small_decisions(folder, 20)
    sizes = small_batches(monkeypatch, embedder, first=3, full=15)
    ready_child_bulk(monkeypatch, embedder)
    monkeypatch.setattr(ingest_module, "BULK_DECISIONS", 1)
    monkeypatch.setattr(ingest_module, "EARLY_BATCH_WINDOWS", 10**6)  # no first batch sent early
    monkeypatch.setattr(ingest_module, "LAST_BATCH_WINDOWS", 1)
    assert ingest_module._taper(15) == [9, 3, 1]
    report = ingest([folder], Store(StoreConfig(index_dir=tmp_path / "index")), embedder)
    assert sizes == [4, 16, 16, 16, 16, 8, 4]
    assert report.embedded_windows == 80 and report.count(ADDED) == 20


def assert_same_vectors(one: Store, other: Store, decisions: int) -> None:
    """Both stores hold the same decisions' windows with the same vectors, to the last bit (the same
    batches embedded in one process or the other)."""
    hashes = {r.reference: r.content_hash for r in other.complete_records().values()}
    a, b = one.vectors_of(hashes), other.vectors_of(hashes)
    assert a.keys() == b.keys() and len(a) == decisions
    for ref in a:
        assert a[ref].keys() == b[ref].keys()
        assert all(np.array_equal(vector, b[ref][window]) for window, vector in a[ref].items()), ref


def ingest_in_one_process_then_with_the_child(folder: Path, tmp_path: Path, embedder, monkeypatch, child_from: int,
                                             stores: dict, records: tuple[list, ...]):
    """The files of ``folder`` ingested into a new store with the model in this process, then into
    another with the child process (from ``child_from`` files); each store kept in ``stores`` by
    name, the lists a test records into emptied before each ingest. Yields (name, report)."""
    from index import ingest as ingest_module

    for name, bulk_from in (("one process", 10**9), ("child", child_from)):
        monkeypatch.setattr(ingest_module, "BULK_DECISIONS", bulk_from)
        for record in records:
            record.clear()
        stores[name] = Store(StoreConfig(index_dir=tmp_path / name))
        yield name, ingest([folder], stores[name], embedder)


def test_a_long_ingest_runs_the_model_in_a_child_process_and_stores_what_one_process_stores(
    embedder, tmp_path, monkeypatch
):
    from index.encoder_process import EncoderProcess

    if embedder.encoder == "torch":
        pytest.skip("the child process runs the ONNX encoders; torch embeds in the ingesting process")
    folder = tmp_path / "files"
    folder.mkdir()
    write_small_decisions(folder, 20)
    sizes = small_batches(monkeypatch, embedder, first=3, full=15)
    ready_child_bulk(monkeypatch, embedder)
    submitted: list[EncoderProcess] = []
    noting_calls(monkeypatch, EncoderProcess, "submit", lambda process, *_: submitted.append(process))
    stores = {}
    for name, report in ingest_in_one_process_then_with_the_child(
            folder, tmp_path, embedder, monkeypatch, 20, stores, records=(submitted, sizes)):
        assert report.count(ADDED) == 20
        if name == "child":  # every batch
            assert len(submitted) == len(sizes) == 6 and all(p is submitted[0] for p in submitted)
            assert submitted[0]._received == 6 and submitted[0]._failed is None  # no batch fell back
            assert submitted[0]._child.poll() == 0  # ended with the ingest
        else:
            assert submitted == []
    assert_same_vectors(stores["one process"], stores["child"], decisions=20)


def ready_child_bulk(monkeypatch, embedder) -> None:
    """Ingests wait for the child process to load the model when they start it: ingests this short
    would be over before it has."""
    bulk = embedder.bulk

    @contextmanager
    def ready_bulk():
        with bulk():
            assert embedder._process._ready.wait(60) and embedder._process.ready
            yield

    monkeypatch.setattr(embedder, "bulk", ready_bulk)


def forty_small_files(tmp_path: Path, monkeypatch, embedder, early: int) -> tuple[Path, list[int], list[Path]]:
    """A folder of 40 small decisions (4 windows each) for an ingest whose batches are 20 windows
    first and 40 after, a first batch sent early being ``early``; returns the folder, the list
    recording each batch's size, and the list of files parsed so far (filled as ingest parses)."""
    from index import ingest as ingest_module

    folder = tmp_path / "files"
    folder.mkdir()
    write_small_decisions(folder, 40)
    sizes = small_batches(monkeypatch, embedder, first=20, full=40)
    monkeypatch.setattr(ingest_module, "EARLY_BATCH_WINDOWS", early)
    parsed: list[Path] = []
    noting_calls(monkeypatch, ingest_module, "parse_file", parsed.append)
    return folder, sizes, parsed


def test_the_first_batch_is_sent_to_the_child_while_the_files_are_still_parsed(embedder, tmp_path, monkeypatch):
    from index.encoder_process import EncoderProcess

    if embedder.encoder == "torch":
        pytest.skip("the child process runs the ONNX encoders")
    folder, sizes, parsed = forty_small_files(tmp_path, monkeypatch, embedder, early=20)
    ready_child_bulk(monkeypatch, embedder)
    parsed_when_sent: list[int] = []
    noting_calls(monkeypatch, EncoderProcess, "submit", lambda *_: parsed_when_sent.append(len(parsed)))
    stores = {}
    for _, report in ingest_in_one_process_then_with_the_child(
            folder, tmp_path, embedder, monkeypatch, 1, stores, records=(sizes, parsed, parsed_when_sent)):
        assert report.count(ADDED) == 40 and report.embedded_windows == 160
        assert sizes == [20, 40, 40, 40, 20]  # the first batch embedded once, early or not
    # Sent after 5 of the 40 files were parsed (their 20 windows), not after all of them.
    assert parsed_when_sent[0] == 5 and len(parsed_when_sent) == 5
    assert_same_vectors(stores["one process"], stores["child"], decisions=40)


def test_a_first_batch_prepared_before_the_child_is_ready_is_sent_the_moment_it_is(embedder, tmp_path, monkeypatch):
    from index import ingest as ingest_module
    from index.encoder_process import EncoderProcess

    if embedder.encoder == "torch":
        pytest.skip("the child process runs the ONNX encoders")
    folder, sizes, parsed = forty_small_files(tmp_path, monkeypatch, embedder, early=20)
    ready_child_bulk(monkeypatch, embedder)
    monkeypatch.setattr(ingest_module, "BULK_DECISIONS", 1)
    prepared, parsed_when_sent = [], []
    noting_calls(monkeypatch, ingest_module, "passages_of", lambda d: prepared.append((d.reference, len(parsed))))
    # The child says it is ready only once the 9th file is parsed: the first batch (5 decisions)
    # is prepared after the 5th and waits for it.
    ready = type(embedder).embeds_elsewhere
    monkeypatch.setattr(type(embedder), "embeds_elsewhere", property(lambda self: len(parsed) >= 9 and ready.fget(self)))
    noting_calls(monkeypatch, EncoderProcess, "submit", lambda *_: parsed_when_sent.append(len(parsed)))
    report = ingest([folder], Store(StoreConfig(index_dir=tmp_path / "index")), embedder)
    assert report.count(ADDED) == 40 and report.embedded_windows == 160
    assert parsed_when_sent[0] == 9 and len(parsed_when_sent) == 5
    assert sizes == [20, 40, 40, 40, 20]
    assert [when for _, when in prepared[:5]] == [5] * 5  # prepared once parsed, before the child was ready
    assert len({ref for ref, _ in prepared}) == len(prepared) == 40  # each decision prepared once


def test_without_a_child_process_nothing_is_prepared_early_and_the_first_batch_is_the_small_one(
    embedder, tmp_path, monkeypatch
):
    # A long ingest whose embedder runs no child (torch's, or a child that failed to start)
    # makes its batches as one in a single process does.
    from contextlib import nullcontext

    from index import ingest as ingest_module

    folder, sizes, parsed = forty_small_files(tmp_path, monkeypatch, embedder, early=8)
    monkeypatch.setattr(embedder, "bulk", nullcontext)
    monkeypatch.setattr(ingest_module, "BULK_DECISIONS", 1)
    prepared_when: list[int] = []
    noting_calls(monkeypatch, ingest_module, "passages_of", lambda _: prepared_when.append(len(parsed)))
    report = ingest([folder], Store(StoreConfig(index_dir=tmp_path / "index")), embedder)
    assert report.count(ADDED) == 40
    assert sizes == [20, 40, 40, 40, 20] and min(prepared_when) == 40  # nothing prepared during the first pass


def test_a_first_batch_sent_early_that_the_plan_refuses_is_dropped_and_nothing_of_it_is_written(
    embedder, tmp_path, monkeypatch
):
    from index import ingest as ingest_module

    if embedder.encoder == "torch":
        pytest.skip("the child process runs the ONNX encoders")
    folder = tmp_path / "files"
    folder.mkdir()
    refs = write_small_decisions(folder, 12)
    # The last file repeats the first's reference with other text: the plan refuses both, after the
    # first was sent early with the first batch.
    (folder / "zz-clash.txt").write_text(SMALL_DECISION.format(i=99, ref=refs[0]), encoding="utf-8")
    sizes = small_batches(monkeypatch, embedder, first=8, full=40)
    ready_child_bulk(monkeypatch, embedder)
    monkeypatch.setattr(ingest_module, "EARLY_BATCH_WINDOWS", 8)
    monkeypatch.setattr(ingest_module, "BULK_DECISIONS", 1)
    store = Store(StoreConfig(index_dir=tmp_path / "index"))
    report = ingest([folder], store, embedder)
    assert report.count(FAILED) == 2 and report.count(ADDED) == 11
    assert sizes == [8, 8, 36]  # early: the first two decisions; then the plan's first batch, the second and third
    assert sorted(store.complete_records()) == sorted(refs[1:])
    assert store.window_ids(refs[0]) == set()


def test_a_segment_joined_from_many_batches_is_the_one_a_single_batch_writes(seeds_archive, embedder, tmp_path, monkeypatch):
    # The writer makes each batch's catalogue columns as it stores the batch and joins them into
    # the segment: the seeds ingested a decision per batch give the segment that one batch gives,
    # but for the vectors' last digits (the int8 encoder's vectors depend on the batch).
    import json

    import numpy as np

    from index.segment import decision_vectors

    sizes = small_batches(monkeypatch, embedder, first=5, full=5)
    store = Store(StoreConfig(index_dir=tmp_path / "index"))
    ingest([SEEDS_DIR], store, embedder)
    assert sizes == [14, 19]  # two batches, a decision each
    [one] = sorted(seeds_archive.store.catalogue_dir.glob("segment-*"))
    [joined] = sorted(store.catalogue_dir.glob("segment-*"))
    for name in ("decisions.json", "strings.json"):
        assert json.loads((joined / name).read_text()) == json.loads((one / name).read_text()), name
    vectors = {"vectors.npy", "scales.npy", "decision_vectors.npy", "decision_scales.npy"}
    names = sorted(p.name for p in one.glob("*.npy"))
    assert names == sorted(p.name for p in joined.glob("*.npy")) and vectors <= set(names)
    for name in sorted(set(names) - vectors):
        assert np.array_equal(np.load(joined / name), np.load(one / name)), name
    for kind in ("", "decision_"):
        a, b = (np.load(s / f"{kind}vectors.npy") * np.load(s / f"{kind}scales.npy")[:, None] for s in (one, joined))
        cosines = (a * b).sum(axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
        assert a.shape == b.shape and cosines.min() > 0.99, kind  # each row the same text's vector
    # Each decision's direction, made batch by batch, is the one made from the whole segment's rows.
    made = decision_vectors(np.load(joined / "vectors.npy"), np.load(joined / "scales.npy"),
                            np.load(joined / "passages.npy"), len(json.loads((joined / "decisions.json").read_text())))
    assert np.array_equal(made[0], np.load(joined / "decision_vectors.npy"))
    assert np.array_equal(made[1], np.load(joined / "decision_scales.npy"))


# -- the garbage collector -----------------------------------------------------------------------


def test_an_ingest_eases_the_garbage_collector_while_it_runs_and_restores_it_after(embedder, tmp_path, monkeypatch):
    import gc

    from index import ingest as ingest_module

    seen = []
    write = Store.write_decisions

    def watched(self, batch, label):
        seen.append((gc.get_threshold()[0], gc.get_freeze_count() > 0))
        return write(self, batch, label)

    monkeypatch.setattr(Store, "write_decisions", watched)
    before = gc.get_threshold()
    gc.set_threshold(321, *before[1:])
    try:
        report = ingest([SEEDS_DIR], Store(StoreConfig(index_dir=tmp_path / "index")), embedder)
        assert report.embedded_passages == 33
        assert seen and all(s == (ingest_module.YOUNG_COLLECTION_EVERY, True) for s in seen)
        assert gc.get_threshold() == (321, *before[1:]) and gc.get_freeze_count() == 0
    finally:
        gc.set_threshold(*before)


def test_a_failed_ingest_restores_the_garbage_collector_and_one_within_another_keeps_it_eased(tmp_path, monkeypatch):
    import gc

    from index import ingest as ingest_module

    before = gc.get_threshold()

    def broken(self, batch, label):
        raise OSError("disk full")

    monkeypatch.setattr(Store, "write_decisions", broken)
    with ingest_module._collector_eased():
        with pytest.raises(OSError, match="disk full"):
            from index.embedder import load_embedder

            ingest([SEEDS_DIR], Store(StoreConfig(index_dir=tmp_path / "index")), load_embedder())
        # the inner ingest ended, the outer easing goes on
        assert gc.get_threshold()[0] == ingest_module.YOUNG_COLLECTION_EVERY and gc.get_freeze_count() > 0
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0


def test_what_someone_else_set_of_the_garbage_collector_is_left_as_it_was():
    import gc

    from index import ingest as ingest_module

    before = gc.get_threshold()
    try:
        gc.freeze()  # objects someone froze before the ingest stay frozen after it
        frozen = gc.get_freeze_count()
        gc.set_threshold(0, *before[1:])  # collection turned off stays off
        with ingest_module._collector_eased():
            assert gc.get_threshold()[0] == 0
        assert gc.get_freeze_count() > frozen // 2 and gc.get_threshold()[0] == 0  # not unfrozen
        gc.set_threshold(*before)
        with ingest_module._collector_eased():
            gc.set_threshold(555, *before[1:])  # set during the ingest: kept
        assert gc.get_threshold()[0] == 555
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
