"""The catalogue beside the store: kept as per-decision parts written during ingest, rebuilt from
them without reading the store, and remade from the store when a part is missing or stale."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import chromadb
import numpy as np
import pytest
from chromadb.config import Settings

from index import catalogue as cat
from index.config import SEEDS_DIR, StoreConfig
from index.ingest import ADDED, FAILED, ingest
from index.parse import parse_file
from index.passage import passages_of
from index.store import PASSAGES, DecisionWrite, Store, StoreError
from rag.archive import Archive


def copy_index(archive: Archive, to: Path, embedder) -> Archive:
    shutil.copytree(archive.store_config.index_dir, to)
    return Archive(StoreConfig(index_dir=to), encoder=embedder.encoder)


def saved(store: Store) -> dict:
    folder = store.lexical_dir
    return {
        "catalogue": json.loads((folder / "catalogue.json").read_text()),
        "ids": json.loads((folder / "ids.json").read_text()),
        "vector_ids": json.loads((folder / "vector_ids.json").read_text()),
        "vectors": np.load(folder / "vectors.npy"),
    }


def test_ingest_saves_one_part_per_decision_with_its_content_hash(seeds_archive):
    store = seeds_archive.store
    parts = cat.parts_for(store)
    try:
        assert parts.hashes() == {ref: r.content_hash for ref, r in store.complete_records().items()}
        by_ref = {p.reference: p for p in parts.iterate()}
    finally:
        parts.close()
    part = by_ref["24 016 809"]
    assert [row[0] for row in part.rows] == ["24-016-809#summary", *(f"24-016-809#{n}" for n in range(1, 19))]
    assert part.window_ids == [row[0] for row in part.rows]  # every seed paragraph fits one window
    assert part.vectors.shape == (19, 384)
    assert np.allclose(np.linalg.norm(part.vectors, axis=1), 1.0, atol=1e-5)
    row15 = part.rows[15]
    assert row15[2:5] == ["15", "My assessment", "Poor communication and report inaccuracies"]
    assert "strategi" in part.tokens[15].split()  # stemmed BM25 tokens of "strategy"


def test_parts_written_by_ingest_equal_parts_made_from_the_store(seeds_archive, embedder, tmp_path):
    archive = copy_index(seeds_archive, tmp_path / "index", embedder)
    store = archive.store
    assert cat.refresh(store, force=True)
    from_parts = saved(store)

    cat.parts_for(store).path.unlink()  # as for an index built elsewhere: every part comes from the store
    for suffix in ("-wal", "-shm"):
        Path(str(cat.parts_for(store).path) + suffix).unlink(missing_ok=True)
    assert cat.refresh(store, force=True)
    from_store = saved(store)

    assert from_store["catalogue"] == from_parts["catalogue"]
    assert from_store["ids"] == from_parts["ids"]
    assert from_store["vector_ids"] == from_parts["vector_ids"]
    # Chroma gives vectors back within a rounding step of what was written.
    assert np.allclose(from_store["vectors"], from_parts["vectors"], rtol=0, atol=1e-6)
    assert not cat.refresh(store)  # current now: nothing to do


def test_a_decision_rewritten_without_its_part_is_remade_from_the_store(seeds_archive, embedder, tmp_path):
    # Another process writing to a shared Chroma server leaves this machine's parts stale.
    archive = copy_index(seeds_archive, tmp_path / "index", embedder)
    store = archive.store
    source = tmp_path / "24-000-184.txt"
    source.write_text((SEEDS_DIR / "24-000-184.txt").read_text(encoding="utf-8").replace(
        "the Council", "the Authority"), encoding="utf-8")
    d = parse_file(source)
    passages = passages_of(d)
    vectors = embedder.embed([p.embedding_text() for p in passages])
    store.write_decisions([DecisionWrite(d, passages, [[p.text] for p in passages], vectors)], embedder.label,
                          replacing={d.reference})

    assert cat.refresh(store)
    parts = cat.parts_for(store)
    try:
        assert parts.hashes()["24 000 184"] == d.content_hash
    finally:
        parts.close()
    fresh = Archive(StoreConfig(index_dir=tmp_path / "index"), encoder=embedder.encoder, embedder=embedder)
    hits = fresh.retriever.search("the Authority", k=20, mode="bm25")
    assert any(h.ref == "24 000 184" and "the Authority" in h.text for h in hits)


def test_a_pruned_decision_leaves_the_catalogue_and_the_parts(seeds_archive, embedder, tmp_path):
    archive = copy_index(seeds_archive, tmp_path / "index", embedder)
    archive.store.delete_decision("24 000 184")
    assert cat.refresh(archive.store)
    body = saved(archive.store)
    assert set(body["catalogue"]["decisions"]) == {"24 016 809"}
    assert all(not i.startswith("24-000-184") for i in body["ids"] + body["vector_ids"])
    assert len(body["vectors"]) == len(body["vector_ids"]) == 19
    parts = cat.parts_for(archive.store)
    try:
        assert set(parts.hashes()) == {"24 016 809"}
    finally:
        parts.close()


def test_an_index_of_the_older_layout_is_refused_with_the_command_that_rebuilds_it(tmp_path, embedder):
    client = chromadb.PersistentClient(path=str(tmp_path / "index" / "chroma"), settings=Settings(anonymized_telemetry=False))
    client.create_collection(PASSAGES, embedding_function=None, metadata={"model": embedder.label, "schema": "1"})
    store = Store(StoreConfig(index_dir=tmp_path / "index"))
    with pytest.raises(StoreError, match=r"older layout \(schema 1.*ombudsman ingest --rebuild"):
        store.passages_collection()
    report = ingest([SEEDS_DIR], Store(StoreConfig(index_dir=tmp_path / "index")), embedder, rebuild=True)
    assert report.count(ADDED) == 2 and not report.failed


def test_a_file_gone_between_the_two_passes_fails_alone(tmp_path, embedder, monkeypatch):
    # Past the budget of parsed decisions kept from the first pass, files are read again when
    # their turn comes; one that went away is reported and the rest still go in.
    import index.ingest as ingest_module

    monkeypatch.setattr(ingest_module, "KEEP_PARSED_PARAGRAPHS", 0)
    folder = tmp_path / "files"
    shutil.copytree(SEEDS_DIR, folder)
    plan = ingest_module._plan

    def plan_then_delete(*args):
        jobs = plan(*args)
        (folder / "24-000-184.txt").unlink()
        return jobs

    monkeypatch.setattr(ingest_module, "_plan", plan_then_delete)
    store = Store(StoreConfig(index_dir=tmp_path / "index"))
    report = ingest([folder], store, embedder)
    assert report.count(ADDED) == 1
    [failed] = report.failed
    assert failed.source.endswith("24-000-184.txt") and failed.reference == "24 000 184"
    assert set(store.complete_records()) == {"24 016 809"}
