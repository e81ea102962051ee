"""The catalogue beside the store: segments written by ingest and memory-mapped when opened, made
from the store for decisions it lacks, merged when there are many, with one BM25 over them all."""

from __future__ import annotations

import json
import shutil
import threading
from contextlib import contextmanager
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

from conftest import decision_write


def copy_index(archive: Archive, to: Path, embedder) -> Archive:
    shutil.copytree(archive.store_config.index_dir, to)
    return Archive(StoreConfig(index_dir=to), encoder=embedder.encoder, embedder=embedder)


def manifest(store: Store) -> dict:
    return json.loads((store.catalogue_dir / "manifest.json").read_text())


def view(c: cat.Catalogue) -> dict:
    """What a search reads of a catalogue, in comparable form."""
    return {
        "decisions": c.decisions,
        "passages": {pid: c.passages[pid] for pid in c.passages},
        "rows": {pid: len(c.rows[pid]) for pid in c.passages},
        "boilerplate": c.boilerplate,
    }


def test_ingest_writes_one_segment_holding_each_decision_with_its_content_hash(seeds_archive):
    store = seeds_archive.store
    m = manifest(store)
    assert m["layout"] == cat.CATALOGUE_VERSION and [s["decisions"] for s in m["segments"]] == [2]
    c = cat.Catalogue.load(store)
    assert {ref: d["content_hash"] for ref, d in c.decisions.items()} == \
        {ref: r.content_hash for ref, r in store.complete_records().items()}
    assert c.by_ref["24 016 809"] == ["24-016-809#summary", *(f"24-016-809#{n}" for n in range(1, 19))]
    assert c.passages["24-016-809#15"][1:4] == ("15", "My assessment", "Poor communication and report inaccuracies")
    assert "24-016-809#19" not in c.passages and "24-016-809#x" not in c.passages
    rows = c.rows["24-016-809#15"]
    assert len(rows) == 1  # every seed paragraph fits one window
    # int8 copy: unit vectors come back within a rounding step
    assert np.allclose(np.linalg.norm(c.vectors[list(range(len(c.vectors)))], axis=1), 1.0, atol=0.01)
    position = c.position("24-016-809#15")
    assert any(position in docs for _, docs in c.lexical.postings("strategy"))  # stemmed "strategi"


@pytest.mark.parametrize("chunk", [200, 1])  # all decisions in one chunk read from the store, or one a chunk
def test_a_catalogue_remade_from_the_store_equals_the_one_ingest_wrote(seeds_archive, embedder, tmp_path, monkeypatch, chunk):
    monkeypatch.setattr(cat, "STORE_CHUNK", chunk)
    archive = copy_index(seeds_archive, tmp_path / "index", embedder)
    store = archive.store
    written = cat.Catalogue.load(store)
    shutil.rmtree(store.catalogue_dir)  # as for an index built elsewhere: all of it comes from the store
    remade = cat.Catalogue.load(store)
    assert view(remade) == view(written)
    rows = list(range(len(written.vectors)))
    assert np.allclose(remade.vectors[rows], written.vectors[rows], atol=1e-6)
    question = "the council did not follow its safety plan"
    assert np.allclose(remade.lexical.scores(question), written.lexical.scores(question))
    assert not cat.refresh(store)  # current now: nothing to do


def test_bm25_scores_a_passage_the_same_whichever_segment_holds_it(seeds_archive, embedder, tmp_path, monkeypatch):
    # One segment per decision, then merged: the scores of a question do not move.
    archive = copy_index(seeds_archive, tmp_path / "index", embedder)
    store = archive.store
    whole = cat.Catalogue.load(store)
    question = "social worker safety plan complaint"
    before = {whole.pid_at(i): s for i, s in enumerate(whole.lexical.scores(question))}
    shutil.rmtree(store.catalogue_dir)
    monkeypatch.setattr(cat, "STORE_CHUNK", 1)
    records = store.complete_records()
    for ref in sorted(records):
        cat.add_parts(store, cat._parts_from_store(store, [ref], records))
    split = cat.Catalogue.load(store)
    assert len(split.segments) == 2
    after = {split.pid_at(i): s for i, s in enumerate(split.lexical.scores(question))}
    assert after.keys() == before.keys() and all(abs(after[k] - before[k]) < 1e-5 for k in before)
    cat.compact(store)
    assert len(cat.Catalogue.load(store).segments) == 1


def test_segments_past_the_limit_are_merged_and_dead_copies_dropped(seeds_archive, embedder, tmp_path, monkeypatch):
    archive = copy_index(seeds_archive, tmp_path / "index", embedder)
    store = archive.store
    monkeypatch.setattr(cat, "MAX_SEGMENTS", 2)
    monkeypatch.setattr(cat, "MERGE_FANIN", 2)
    records = store.complete_records()
    for _ in range(3):  # the same decision added again and again: each copy supersedes the last
        cat.add_parts(store, cat._parts_from_store(store, ["24 000 184"], records))
    m = manifest(store)
    # The ingest's segment stays (with its dead copy); the three small ones became one holding
    # only the live copy.
    assert sorted(s["decisions"] for s in m["segments"]) == [1, 2]
    c = cat.Catalogue.load(store)
    assert sorted(c.decisions) == ["24 000 184", "24 016 809"]
    assert len(c.passages) == int(c.live.sum()) == c.size - len(c.by_ref["24 000 184"])


STANDARD = ("The law says we cannot normally investigate a complaint unless the council has had an opportunity "
            "to deal with it first, and we expect the person to have used the council's own complaints procedure.")


def write_decision(folder: Path, ref: str, paragraphs: list[str]) -> None:
    body = "\n".join(f"  {n}. {text}" for n, text in enumerate(paragraphs, 1))
    (folder / f"{ref.replace(' ', '-')}.txt").write_text(
        f"Example Council ({ref})\n\nCategory : Housing > Homelessness\n\nDecision : Upheld\n\n"
        f"Decision date : 01 Feb 2024\n\nSummary: Mr C complained about the decision {ref}.\n\n"
        f"Final decision\n\n{body}\n", encoding="utf-8")


def test_boilerplate_counts_each_live_decision_once_whatever_its_segment(embedder, tmp_path):
    # Standard wording in four decisions, twice in the first (the second time with a tail of its
    # own, as decisions tailor the powers they cite): four decisions, not five paragraphs. The
    # first decision also has a paragraph of its own whose key comes just before the standard
    # wording's, so that in key order the standard's first decision follows a paragraph of the
    # same decision under another key.
    folder = tmp_path / "files"
    folder.mkdir()
    own = ["Mr C's garden wall fell down after the works.", "Mrs D waited months for a repair to her roof.",
           "Ms E asked the council about her council tax bill."]
    write_decision(folder, "10 000 001", [STANDARD, STANDARD + " That applies to this complaint.",
                                         "The council's letter of September was unclear about the appeal."])
    for i, text in enumerate(own, 2):
        write_decision(folder, f"10 000 00{i}", [text, STANDARD])
    archive = Archive(StoreConfig(index_dir=tmp_path / "index"), encoder=embedder.encoder, embedder=embedder)
    assert archive.ingest([folder]).count(ADDED) == 4
    c = cat.Catalogue.load(archive.store)
    key = c.passages["10-000-001#1"][4]
    assert c.passages["10-000-001#2"][4] == key == c.passages["10-000-004#2"][4]
    keys = sorted({c.passages[pid][4] for pid in c.passages})
    assert keys[keys.index(key) - 1] == c.passages["10-000-001#3"][4]
    assert c.boilerplate[key] == 4 and c.is_boilerplate("10-000-003#2")

    # A new decision with the wording, first in a segment of its own as 10 000 001 is in the first,
    # and two of the four rewritten without it: their first copies are dead and no longer count.
    write_decision(folder, "10 000 000", ["Mr F's bins were not collected.", STANDARD])
    for i in (3, 4):
        write_decision(folder, f"10 000 00{i}", [own[i - 2] + " It was put right later."])
    report = archive.ingest([folder])
    assert report.count(ADDED) == 1 and report.count("replaced") == 2
    c = cat.Catalogue.load(archive.store)
    assert [s["decisions"] for s in manifest(archive.store)["segments"]] == [4, 3]
    assert c.boilerplate[key] == 3  # 10 000 000, 001 and 002
    assert c.is_boilerplate("10-000-000#2") and not c.is_boilerplate("10-000-003#1")


def test_a_decision_rewritten_by_another_process_is_taken_by_refresh(seeds_archive, embedder, tmp_path):
    # Another process writing to a shared Chroma server leaves this machine's catalogue behind.
    archive = copy_index(seeds_archive, tmp_path / "index", embedder)
    store = archive.store
    source = tmp_path / "24-000-184.txt"
    source.write_text((SEEDS_DIR / "24-000-184.txt").read_text(encoding="utf-8").replace(
        "the Council", "the Authority"), encoding="utf-8")
    d = parse_file(source)
    passages = passages_of(d)
    vectors = embedder.embed([p.embedding_text() for p in passages])
    store.write_decisions([DecisionWrite(d, passages, [[p.text] for p in passages], vectors)], embedder.label)

    assert cat.refresh(store)
    assert [s["decisions"] for s in manifest(store)["segments"]] == [2, 1]  # only the rewritten one is new
    fresh = Archive(StoreConfig(index_dir=tmp_path / "index"), encoder=embedder.encoder, embedder=embedder)
    assert fresh.retriever.catalogue.decisions["24 000 184"]["content_hash"] == d.content_hash
    hits = fresh.retriever.search("the Authority", k=20, mode="bm25")
    assert any(h.ref == "24 000 184" and "the Authority" in h.text for h in hits)
    assert len(fresh.retriever.catalogue.passages) == 19 + len(passages)  # the old copy is dead


def test_a_pruned_decision_leaves_the_catalogue(seeds_archive, embedder, tmp_path):
    archive = copy_index(seeds_archive, tmp_path / "index", embedder)
    archive.store.delete_decision("24 000 184")
    assert cat.refresh(archive.store)
    assert "24 000 184" in manifest(archive.store)["removed"]
    c = cat.Catalogue.load(archive.store)
    assert set(c.decisions) == {"24 016 809"}
    assert all(not pid.startswith("24-000-184") for pid in c.passages) and len(c.passages) == 19
    assert not any(h.ref == "24 000 184" for h in archive.retriever.search("council", k=50, mode="bm25"))


def test_a_catalogue_of_another_layout_is_made_again_from_the_store(seeds_archive, embedder, tmp_path):
    archive = copy_index(seeds_archive, tmp_path / "index", embedder)
    store = archive.store
    m = manifest(store)
    (store.catalogue_dir / "manifest.json").write_text(json.dumps({**m, "layout": "7"}))
    c = cat.Catalogue.load(store)
    assert manifest(store)["layout"] == cat.CATALOGUE_VERSION and sorted(c.decisions) == ["24 000 184", "24 016 809"]


def test_an_index_of_the_older_layout_is_refused_with_the_command_that_rebuilds_it(tmp_path, embedder):
    client = chromadb.PersistentClient(path=str(tmp_path / "index" / "chroma"), settings=Settings(anonymized_telemetry=False))
    client.create_collection(PASSAGES, embedding_function=None, metadata={"model": embedder.label, "schema": "1"})
    store = Store(StoreConfig(index_dir=tmp_path / "index"))
    with pytest.raises(StoreError, match=r"older layout \(schema 1.*ombudsman ingest --rebuild"):
        store.passages_collection()
    report = ingest([SEEDS_DIR], Store(StoreConfig(index_dir=tmp_path / "index")), embedder, rebuild=True)
    assert report.count(ADDED) == 2 and not report.failed


def test_an_index_of_schema_4_is_read_as_it_is_and_marked_5_by_the_first_write(seeds_archive, embedder, tmp_path):
    # Schema 4 is this layout without the change log; a version that keeps no log refuses 5, so
    # that its writes, which it would not log, cannot go unseen by catalogues following the log.
    archive = copy_index(seeds_archive, tmp_path / "index", embedder)
    col = archive.store.passages_collection()
    col.modify(metadata={**col.metadata, "schema": "4"})
    reader = Store(StoreConfig(index_dir=tmp_path / "index"))
    assert reader.passages_collection().metadata["schema"] == "4"
    assert reader.passages_collection().metadata["model"] == embedder.label
    written_by_another_process(Store(StoreConfig(index_dir=tmp_path / "index")), "10 000 001", embedder)
    marked = Store(StoreConfig(index_dir=tmp_path / "index")).passages_collection().metadata
    assert marked["schema"] == "5" and marked["model"] == embedder.label


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


def test_a_clustered_segment_reads_clusters_in_runs_and_probing_every_cluster_finds_what_exact_search_finds(
        corpus_archive, embedder, tmp_path, monkeypatch):
    from index import segment

    archive = copy_index(corpus_archive, tmp_path / "index", embedder)
    store = archive.store
    flat = cat.Catalogue.load(store)  # 840 windows: too few to cluster by default
    assert flat.segments[0].centroids is None
    monkeypatch.setattr(segment, "CLUSTER_MIN_WINDOWS", 100)
    monkeypatch.setattr(segment, "WINDOWS_PER_CLUSTER", 20)
    shutil.rmtree(store.catalogue_dir)
    clustered = cat.Catalogue.load(store)
    seg = clustered.segments[0]
    folder = seg.folder
    assert len(seg.centroids) == len(flat.vectors) // 20
    assert (folder / "slot_vectors.npy").exists() and not (folder / "vectors.npy").exists()  # one copy
    pids = list(flat.passages)
    by_pid = [r for pid in pids for r in clustered.rows[pid]]
    assert np.allclose(clustered.vectors[by_pid], flat.vectors[[r for pid in pids for r in flat.rows[pid]]], atol=1e-6)
    a, b = int(seg.cluster_start[3]), int(seg.cluster_start[4])
    assert np.array_equal(clustered.vectors[seg.cluster_rows[a:b]], seg.window_vectors(seg.cluster_rows[a:b]))
    assert np.array_equal(seg.vectors[a:b], seg.window_rows(seg.cluster_rows[a:b])[0])  # a cluster is one run

    def named(c, hits):
        return [(c.pid_at(p), round(s, 5)) for p, s in hits]

    vector = archive.retriever.question_vector("the council did not hold a strategy meeting")
    exact = named(flat, flat.exact_nearest(vector, np.flatnonzero(flat.live), 20))
    everything = np.flatnonzero(clustered.live)
    assert named(clustered, clustered.nearest(vector, 20, probes=len(seg.centroids))) == exact
    assert named(clustered, clustered.exact_nearest(vector, everything, 20)) == exact
    assert len(clustered.nearest(vector, 20, probes=2)) == 20  # fewer probes: still a full list

    # A segment written in window order, without decision vectors, is rewritten when first opened.
    window_order = seg.window_rows(np.arange(seg.windows))
    np.save(folder / "vectors.npy", window_order[0])
    np.save(folder / "scales.npy", window_order[1])
    for name in ("slot_vectors", "slot_scales", "window_slot", "decision_vectors", "decision_scales"):
        (folder / f"{name}.npy").unlink()
    upgraded = cat.Catalogue.load(store)
    assert (folder / "window_slot.npy").exists() and not (folder / "vectors.npy").exists()
    assert (folder / "decision_vectors.npy").exists()
    assert named(upgraded, upgraded.nearest(vector, 20, probes=len(seg.centroids))) == exact
    numbers = np.arange(len(upgraded.decisions))
    assert np.array_equal(upgraded.decision_cosines(numbers, vector), clustered.decision_cosines(numbers, vector))


def test_int8_rows_times_a_vector_equal_the_exact_product_whole_or_in_runs_across_blocks():
    from index.segment import DOT_BLOCK, dot_rows

    rng = np.random.default_rng(3)
    rows = rng.integers(-127, 128, size=(2 * DOT_BLOCK + 37, 16), dtype=np.int8)
    vector = rng.standard_normal(16).astype(np.float32)
    exact = rows.astype(np.float64) @ vector.astype(np.float64)
    assert np.allclose(dot_rows(rows, vector), exact, rtol=1e-6, atol=1e-3)
    runs = [(5, 9), (DOT_BLOCK - 2, 2 * DOT_BLOCK + 3), (0, 0), (2 * DOT_BLOCK + 30, 2 * DOT_BLOCK + 37)]
    want = np.concatenate([exact[a:b] for a, b in runs])
    got = dot_rows(rows, vector, runs)
    assert got.shape == (4 + DOT_BLOCK + 5 + 7,) and np.allclose(got, want, rtol=1e-6, atol=1e-3)
    assert dot_rows(rows[:0], vector).shape == (0,)


def stored_everywhere(archive: Archive, c: cat.Catalogue) -> tuple[dict, dict]:
    pids = list(c.passages)
    return c.stored_passages(pids), archive.store.passages(pids)


def test_the_catalogue_gives_every_passage_as_the_store_gives_it_without_reading_the_store(corpus_archive, embedder,
                                                                                             tmp_path, monkeypatch):
    archive = copy_index(corpus_archive, tmp_path / "index", embedder)
    c = cat.Catalogue.load(archive.store)
    from_catalogue, from_store = stored_everywhere(archive, c)
    assert len(from_catalogue) == len(c.passages) == 840 and from_catalogue == from_store
    assert "24-016-809#19" not in c.stored_passages(["24-016-809#19", "24-016-809#15"])
    retriever = archive.retriever
    monkeypatch.setattr(archive.store, "read_decisions", lambda slugs: pytest.fail(f"read the store for {slugs}"))
    hits = retriever.search("the council did not hold a strategy meeting", k=5)
    assert len(hits) == 5 and all(h.text == from_store[h.id].text for h in hits)


def test_merged_segments_keep_their_passages_texts_and_dead_copies_are_left_out(seeds_archive, embedder, tmp_path,
                                                                               monkeypatch):
    archive = copy_index(seeds_archive, tmp_path / "index", embedder)
    store = archive.store
    monkeypatch.setattr(cat, "MAX_SEGMENTS", 2)
    monkeypatch.setattr(cat, "MERGE_FANIN", 2)
    records = store.complete_records()
    for _ in range(3):
        cat.add_parts(store, cat._parts_from_store(store, ["24 000 184"], records))
    c = cat.Catalogue.load(store)
    assert len(c.segments) == 2 and all(seg.text_start is not None for seg in c.segments)
    from_catalogue, from_store = stored_everywhere(archive, c)
    assert from_catalogue == from_store and len(from_catalogue) == 19 + len(c.by_ref["24 000 184"])


def test_a_segment_written_without_texts_gets_them_from_the_store_when_opened(seeds_archive, embedder, tmp_path,
                                                                            monkeypatch):
    archive = copy_index(seeds_archive, tmp_path / "index", embedder)
    store = archive.store
    folder = cat.Catalogue.load(store).segments[0].folder
    for name in ("text_bytes", "text_start"):
        (folder / f"{name}.npy").unlink()
    upgraded = cat.Catalogue.load(store)
    assert (folder / "text_start.npy").exists()
    from_catalogue, from_store = stored_everywhere(archive, upgraded)
    assert len(from_catalogue) == 19 + len(upgraded.by_ref["24 000 184"]) and from_catalogue == from_store

    # A folder that cannot be written: the texts are kept in memory, and nothing is lost.
    for name in ("text_bytes", "text_start"):
        (folder / f"{name}.npy").unlink()
    from index import segment

    def refuse(*_):
        raise PermissionError("read-only")
    monkeypatch.setattr(segment, "_write_beside", refuse)
    kept = cat.Catalogue.load(store)
    assert not (folder / "text_start.npy").exists()
    assert stored_everywhere(archive, kept)[0] == from_store


def test_a_clustered_segment_missing_its_vectors_is_refused_with_the_command_that_rebuilds_it(
        seeds_archive, embedder, tmp_path, monkeypatch):
    from index import segment

    archive = copy_index(seeds_archive, tmp_path / "index", embedder)
    store = archive.store
    monkeypatch.setattr(segment, "CLUSTER_MIN_WINDOWS", 10)
    monkeypatch.setattr(segment, "WINDOWS_PER_CLUSTER", 5)
    shutil.rmtree(store.catalogue_dir)
    folder = cat.Catalogue.load(store).segments[0].folder
    assert (folder / "cluster_rows.npy").exists()
    for name in ("slot_vectors", "slot_scales", "window_slot"):
        (folder / f"{name}.npy").unlink()
    with pytest.raises(segment.CatalogueFileError, match=r"without its vectors.*ombudsman ingest --rebuild"):
        cat.Catalogue.load(store)


def test_identical_int8_rows_score_identically_wherever_they_fall_in_a_block():
    from index.segment import DOT_BLOCK, dot_rows

    rng = np.random.default_rng(5)
    rows = rng.integers(-127, 128, size=(DOT_BLOCK + 7, 384), dtype=np.int8)
    places = [0, 5, DOT_BLOCK - 1, DOT_BLOCK + 6]  # first, inside, a block's last row, a short block's last
    rows[places] = rows[3]
    vector = rng.standard_normal(384).astype(np.float32)
    got = dot_rows(rows, vector)
    alone = dot_rows(rows[3:4], vector)[0]
    assert {float(got[p]) for p in places} | {float(got[3]), float(alone)} == {float(alone)}


def test_a_catalogue_still_gives_its_texts_after_a_merge_removed_its_segment_folders(seeds_archive, embedder, tmp_path):
    archive = copy_index(seeds_archive, tmp_path / "index", embedder)
    c = cat.Catalogue.load(archive.store)
    want = archive.store.passages(list(c.passages))
    for seg in c.segments:
        shutil.rmtree(seg.folder)  # as a merge in another process does while this one still searches
    assert c.stored_passages(list(c.passages)) == want


def test_texts_that_do_not_match_their_segment_are_made_again_from_the_store(seeds_archive, embedder, tmp_path):
    archive = copy_index(seeds_archive, tmp_path / "index", embedder)
    store = archive.store
    c = cat.Catalogue.load(store)
    want = archive.store.passages(list(c.passages))
    folder = c.segments[0].folder
    whole = np.load(folder / "text_bytes.npy")
    np.save(folder / "text_bytes.npy", whole[: len(whole) // 2])  # cut short, as by a full disk
    again = cat.Catalogue.load(store)
    assert len(np.load(folder / "text_bytes.npy")) == len(whole)
    assert again.stored_passages(list(again.passages)) == want
    np.save(folder / "text_start.npy", np.zeros(3, dtype=np.int64))  # offsets for another segment
    assert cat.Catalogue.load(store).stored_passages(list(again.passages)) == want


def test_columns_made_batch_by_batch_and_joined_are_those_of_all_the_decisions_at_once():
    # Ingest's writer makes each batch's columns as it writes the batch, and joins them into one
    # segment at the end: the segment must be the one made from every decision at once.
    from index.segment import columns_of_writes, concatenate

    rng = np.random.default_rng(3)
    writes = []
    for path in sorted(SEEDS_DIR.glob("*.txt")):
        d = parse_file(path)
        passages = passages_of(d)
        vectors = rng.standard_normal((len(passages), 384)).astype(np.float32)
        writes.append(DecisionWrite(d, passages, [[p.text] for p in passages], vectors))
    whole = columns_of_writes(writes, 384)
    joined = concatenate([columns_of_writes(writes[:1], 384), columns_of_writes(writes[1:], 384)])
    assert [d["ref"] for d in joined.decisions] == ["24 000 184", "24 016 809"]
    assert joined.decisions == whole.decisions  # "first" passage of the second shifted by the first's 14
    assert joined.decisions[1]["first"] == 14
    for field in ("sections", "subsections", "statutes", "terms"):
        assert getattr(joined, field) == getattr(whole, field), field
    for field in ("passages", "statute_ids", "posting_term", "posting_doc", "posting_tf", "vectors", "scales",
                  "text_bytes", "text_start"):
        assert np.array_equal(getattr(joined, field), getattr(whole, field)), field
    assert len(whole.passages) == 33


def test_postings_count_each_term_once_per_passage_in_the_order_it_first_occurs():
    # Three passages: terms numbered in order of first sight over all of them; each passage's
    # postings in the order its terms first occur in it, with their counts; a passage of no
    # tokens has none, and a count past 65,535 is held at it (the column is 16-bit).
    from index.segment import _postings, _Table

    terms = _Table()
    tokens = ["council", "delay", "council", "fault"] + [] + ["fault", "council"] + ["delay"] * 70_000
    term, doc, tf = _postings(tokens, [4, 0, 2 + 70_000], terms)
    assert terms.values == ["council", "delay", "fault"]
    assert term.tolist() == [0, 1, 2, 2, 0, 1]
    assert doc.tolist() == [0, 0, 0, 2, 2, 2]
    assert tf.tolist() == [2, 1, 1, 1, 1, 65535]
    assert (term.dtype, doc.dtype, tf.dtype) == (np.int32, np.int32, np.uint16)
    empty = _postings([], [0, 0], _Table())
    assert [len(a) for a in empty] == [0, 0, 0]


def test_decisions_directions_are_the_same_made_whole_or_a_batch_at_a_time(monkeypatch):
    # Summed a block of windows at a time, a decision whose windows crossed a block's end was
    # summed in two parts and rounded differently from the same decision summed in one batch.
    import numpy as np

    from index import segment

    def passages(decisions: int) -> np.ndarray:  # a passage of 3 windows per decision
        rows = np.zeros(decisions, dtype=segment.PASSAGE_DTYPE)
        rows["decision"], rows["window_count"] = np.arange(decisions), 3
        return rows

    monkeypatch.setattr(segment, "DIRECTION_BLOCK", 8)  # 300 decisions of 3 windows: many cross 8s
    rng = np.random.default_rng(3)
    vectors, scales = segment.quantise(rng.standard_normal((900, 16)).astype(np.float32))
    whole = segment.decision_vectors(vectors, scales, passages(300), 300)
    halves = [segment.decision_vectors(vectors[w:w + 450], scales[w:w + 450], passages(150), 150) for w in (0, 450)]
    assert np.array_equal(whole[0], np.concatenate([h[0] for h in halves]))
    assert np.array_equal(whole[1], np.concatenate([h[1] for h in halves]))


# -- the store's change log: what a refresh reads ---------------------------------------------------

NEW_DECISION = """Example Council ({ref})

Category : Housing > Homelessness

Decision : Upheld

Decision date : 01 Feb 2024

Summary: Mrs B complained about a late housing decision. We found fault.

The complaint

  1. Mrs B complains the Council decided her housing application late.

Final decision

  1. The Council was at fault and has agreed to apologise.
"""


def written_by_another_process(store: Store, ref: str, embedder) -> None:
    """``ref`` written to the store as another process's ingest would, without this catalogue."""
    store.write_decisions([decision_write(NEW_DECISION.format(ref=ref), embedder)], embedder.label)


def records_read(monkeypatch) -> list:
    """Each call's references to ``Store._raw_records`` from now on (None: every record)."""
    calls: list = []
    original = Store._raw_records
    monkeypatch.setattr(Store, "_raw_records", lambda self, refs: calls.append(refs) or original(self, refs))
    return calls


def test_a_refresh_reads_the_records_of_the_changes_the_catalogue_has_not_taken_in_and_no_others(
        seeds_archive, embedder, tmp_path, monkeypatch):
    archive = copy_index(seeds_archive, tmp_path / "index", embedder)
    assert len(manifest(archive.store)["changes"]) == 1  # the seeds' ingest: one batch, one change
    other = Store(StoreConfig(index_dir=tmp_path / "index"))  # another process sharing the store
    other.watch(other.generation())
    written_by_another_process(other, "10 000 001", embedder)
    other.delete_decision("24 000 184")
    assert len(other.logged) == 2

    calls = records_read(monkeypatch)
    assert cat.refresh(archive.store)
    assert calls[0] == ["10 000 001", "24 000 184"]  # not None: every record
    # then the new decision's again, before and after its vectors are read (``Store.vectors_of``)
    assert calls[1:] == [["10 000 001"], ["10 000 001"]]
    taken = manifest(archive.store)["changes"]
    assert len(taken) == 3 and set(other.logged) <= set(taken)
    c = cat.Catalogue.load(archive.store)
    assert set(c.decisions) == {"10 000 001", "24 016 809"}

    calls.clear()
    assert not cat.refresh(archive.store, force=False)  # the generation has not moved: nothing read
    assert calls == []


def test_a_write_under_way_during_a_refresh_is_taken_in_by_the_next(seeds_archive, embedder, tmp_path, monkeypatch):
    archive = copy_index(seeds_archive, tmp_path / "index", embedder)
    writer = Store(StoreConfig(index_dir=tmp_path / "index"))
    during: dict = {}
    mark_done = Store._mark_done

    def refresh_first(self, fields):  # the reader refreshes after the windows are written, before "done"
        if self is writer and not during:
            cat.refresh(archive.store)
            during["changes"] = manifest(archive.store)["changes"]
            during["decisions"] = set(cat.Catalogue.load(archive.store).decisions)
        mark_done(self, fields)

    monkeypatch.setattr(Store, "_mark_done", refresh_first)
    written_by_another_process(writer, "10 000 001", embedder)
    [token] = writer.logged
    assert token not in during["changes"] and "10 000 001" not in during["decisions"]

    calls = records_read(monkeypatch)
    assert cat.refresh(archive.store)
    assert calls[0] == ["10 000 001"]
    assert token in manifest(archive.store)["changes"]
    assert "10 000 001" in cat.Catalogue.load(archive.store).decisions


def test_a_catalogue_that_has_taken_in_no_change_reads_every_record_once(seeds_archive, embedder, tmp_path,
                                                                          monkeypatch):
    # A catalogue saved before the store kept a log: it cannot know what the log leaves out.
    archive = copy_index(seeds_archive, tmp_path / "index", embedder)
    saved = manifest(archive.store)
    del saved["changes"]
    (archive.store.catalogue_dir / "manifest.json").write_text(json.dumps(saved))
    other = Store(StoreConfig(index_dir=tmp_path / "index"))
    written_by_another_process(other, "10 000 001", embedder)

    calls = records_read(monkeypatch)
    assert cat.refresh(archive.store)
    assert calls[0] is None  # every record
    assert len(manifest(archive.store)["changes"]) == 2
    written_by_another_process(other, "10 000 002", embedder)
    calls.clear()
    assert cat.refresh(archive.store)
    assert calls[0] == ["10 000 002"]
    assert {"10 000 001", "10 000 002"} <= set(cat.Catalogue.load(archive.store).decisions)


def rewritten(store: Store, ref: str, embedder, words: str) -> None:
    """``ref`` written again by ``store`` with ``words`` added to its last paragraph."""
    text = NEW_DECISION.format(ref=ref).replace("agreed to apologise.", f"agreed to apologise. {words}")
    store.write_decisions([decision_write(text, embedder)], embedder.label)


def held_and_stored(archive: Archive, ref: str) -> tuple[str | None, str | None]:
    """The content hash of ``ref`` in the catalogue (refreshed) and complete in the store."""
    held = cat.Catalogue.load(archive.store).decisions.get(ref, {}).get("content_hash")
    record = archive.store.records([ref]).get(ref)
    return held, record.content_hash if record is not None and record.complete else None


def test_a_write_logged_first_but_ended_last_is_taken_in_when_it_ends(seeds_archive, embedder, tmp_path, monkeypatch):
    # The first writer logs its change, then a second writes the same decision from start to end
    # and the catalogue takes that in, then the first writes: the catalogue ends with the first's.
    archive = copy_index(seeds_archive, tmp_path / "index", embedder)
    first, second = (Store(StoreConfig(index_dir=tmp_path / "index")) for _ in range(2))
    mark_writing = Store._mark_writing

    def overtaken(self, *args):
        if self is first and not second.logged:
            rewritten(second, "10 000 001", embedder, "Second.")
            cat.refresh(archive.store)
        return mark_writing(self, *args)

    monkeypatch.setattr(Store, "_mark_writing", overtaken)
    rewritten(first, "10 000 001", embedder, "First.")
    cat.refresh(archive.store)
    held, stored = held_and_stored(archive, "10 000 001")
    assert held == stored and stored is not None
    assert "First." in archive.retriever.search("agreed to apologise", k=1, within={"10 000 001"}, mode="bm25")[0].text


def test_a_removal_overtaken_by_a_write_leaves_the_decision_out_once_it_ends(seeds_archive, embedder, tmp_path,
                                                                              monkeypatch):
    archive = copy_index(seeds_archive, tmp_path / "index", embedder)
    remover, writer = (Store(StoreConfig(index_dir=tmp_path / "index")) for _ in range(2))
    rewritten(writer, "10 000 001", embedder, "Once.")
    cat.refresh(archive.store)
    log = Store._log

    def write_meanwhile(self, kind, refs):
        token = log(self, kind, refs)
        if self is remover:  # logged, not yet begun: a write of the decision starts and ends
            rewritten(writer, "10 000 001", embedder, "Again.")
            cat.refresh(archive.store)
        return token

    monkeypatch.setattr(Store, "_log", write_meanwhile)
    remover.delete_decision("10 000 001")
    cat.refresh(archive.store)
    assert held_and_stored(archive, "10 000 001") == (None, None)


def test_a_catalogue_takes_in_a_log_made_again_by_a_rebuild_by_reading_every_record(seeds_archive, embedder, tmp_path):
    # Another process rebuilds the store from one of the two seeds while this one is not looking.
    archive = copy_index(seeds_archive, tmp_path / "index", embedder)
    mine = tmp_path / "my-catalogue"
    shutil.copytree(archive.store.catalogue_dir, mine)
    ingest([SEEDS_DIR / "24-016-809.txt"], archive.store, embedder, rebuild=True)
    shutil.rmtree(archive.store.catalogue_dir)
    shutil.copytree(mine, archive.store.catalogue_dir)
    archive.store.reopen()
    assert held_and_stored(archive, "24 000 184") == (None, None)
    assert held_and_stored(archive, "24 016 809")[0] is not None


def test_a_change_that_never_ends_keeps_its_decisions_out_until_a_repair_ends(seeds_archive, embedder, tmp_path,
                                                                               monkeypatch):
    # Its writer was killed after the windows, before "done": the records stay "writing".
    archive = copy_index(seeds_archive, tmp_path / "index", embedder)
    killed = Store(StoreConfig(index_dir=tmp_path / "index"))
    written_by_another_process(killed, "10 000 001", embedder)
    cat.refresh(archive.store)
    assert "10 000 001" in cat.Catalogue.load(archive.store).decisions
    monkeypatch.setattr(Store, "_mark_done", lambda self, fields: (_ for _ in ()).throw(RuntimeError("killed")))
    with pytest.raises(RuntimeError, match="killed"):
        rewritten(killed, "10 000 001", embedder, "Half written.")
    monkeypatch.undo()
    dead = killed.logged[-1]
    for _ in range(2):  # looked at again each time, never taken in
        calls = records_read(monkeypatch)
        killed._bump()  # another process's write elsewhere moves the generation
        cat.refresh(archive.store)
        assert calls[0] == ["10 000 001"]
        assert dead not in manifest(archive.store)["changes"]
        assert "10 000 001" not in cat.Catalogue.load(archive.store).decisions
        monkeypatch.undo()

    repair = Store(StoreConfig(index_dir=tmp_path / "index"))
    rewritten(repair, "10 000 001", embedder, "Repaired.")
    cat.refresh(archive.store)
    held, stored = held_and_stored(archive, "10 000 001")
    assert held == stored and stored is not None and repair.logged[0] in manifest(archive.store)["changes"]


def test_a_refresh_waiting_for_the_folder_reads_after_the_process_that_held_it(seeds_archive, embedder, tmp_path,
                                                                              monkeypatch):
    # Two processes share this catalogue folder (an app and an ingest on one machine). While a
    # rewrite is under way, one refreshes; the other waits for the folder meanwhile, and by the
    # time it has it the rewrite has ended and the first has taken it in.
    archive = copy_index(seeds_archive, tmp_path / "index", embedder)
    other_reader, writer = (Store(StoreConfig(index_dir=tmp_path / "index")) for _ in range(2))
    written_by_another_process(writer, "10 000 001", embedder)
    cat.refresh(archive.store)
    go, at_done = threading.Event(), threading.Event()
    mark_done = Store._mark_done

    def paused(self, fields):
        if self is writer:
            at_done.set()
            go.wait(60)
        return mark_done(self, fields)

    monkeypatch.setattr(Store, "_mark_done", paused)
    rewriting = threading.Thread(target=rewritten, args=(writer, "10 000 001", embedder, "Again."))
    rewriting.start()
    assert at_done.wait(60)
    locked, waited = cat._locked, []

    @contextmanager
    def after_the_other(folder):
        if not waited:
            waited.append(folder)
            go.set()
            rewriting.join()
            assert cat.refresh(other_reader)
        with locked(folder) as m:
            yield m

    monkeypatch.setattr(cat, "_locked", after_the_other)
    cat.refresh(archive.store)
    monkeypatch.setattr(cat, "_locked", locked)
    writer._bump()  # a later change elsewhere
    cat.refresh(archive.store)
    held, stored = held_and_stored(archive, "10 000 001")
    assert held == stored and stored is not None


def test_a_segment_an_ingest_saves_after_a_refresh_took_in_a_removal_is_read_again(seeds_archive, embedder, tmp_path,
                                                                                   monkeypatch):
    # The ingest writes a decision; another process removes it, and an app sharing the catalogue
    # folder takes both in; then the ingest saves its segment, which holds the decision.
    archive = copy_index(seeds_archive, tmp_path / "index", embedder)
    app, remover = (Store(StoreConfig(index_dir=tmp_path / "index")) for _ in range(2))
    source = tmp_path / "files" / "10-000-001.txt"
    source.parent.mkdir()
    source.write_text(NEW_DECISION.format(ref="10 000 001"), encoding="utf-8")
    write = Store.write_decisions

    def then_removed(self, batch, label):
        write(self, batch, label)
        if self is archive.store:
            remover.delete_decision("10 000 001")
            cat.refresh(app)

    monkeypatch.setattr(Store, "write_decisions", then_removed)
    ingest([source], archive.store, embedder)
    monkeypatch.undo()
    assert held_and_stored(archive, "10 000 001") == (None, None)


def test_an_ingest_in_step_leaves_another_ingests_late_segment_to_be_read(seeds_archive, embedder, tmp_path,
                                                                          monkeypatch):
    # Ingest B wrote a decision; an app sharing the folder took it in, and its removal by a third
    # process. Ingest A (which saw no other writer) runs while B saves its segment, holding the
    # decision: A's end must not say the catalogue is in step with B's segment unread.
    archive = copy_index(seeds_archive, tmp_path / "index", embedder)
    b, app, remover = (Store(StoreConfig(index_dir=tmp_path / "index")) for _ in range(3))
    b.watch(b.generation())
    batch = [decision_write(NEW_DECISION.format(ref="10 000 001"), embedder)]
    b.write_decisions(batch, embedder.label)
    cat.refresh(app)
    remover.delete_decision("10 000 001")
    cat.refresh(app)
    only_ours = Store.only_ours

    def b_saves_meanwhile(self):
        if self is archive.store:
            cat.add_columns(b, [cat.columns_of_writes(batch, batch[0].vectors.shape[1])])
        return only_ours(self)

    monkeypatch.setattr(Store, "only_ours", b_saves_meanwhile)
    source = tmp_path / "10-000-002.txt"
    source.write_text(NEW_DECISION.format(ref="10 000 002"), encoding="utf-8")
    ingest([source], archive.store, embedder)
    monkeypatch.undo()
    cat.refresh(b)  # B's own end
    assert held_and_stored(archive, "10 000 001") == (None, None)
    assert manifest(archive.store)["unread"] == []
