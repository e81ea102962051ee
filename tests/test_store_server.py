"""Server mode: the same ingest, show and search against a real ``chroma run`` on 127.0.0.1.

The server is started by this module on a free port with its data in a temporary folder, and
stopped (SIGTERM) when the module's tests are done.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from index.catalogue import Catalogue
from index.config import SEEDS_DIR, StoreConfig
from index.store import PASSAGES, Store, StoreError
from rag.archive import Archive
from ui.cli import main
from conftest import chroma_server, free_port


@pytest.fixture(scope="module")
def chroma_url(tmp_path_factory):
    with chroma_server(tmp_path_factory.mktemp("chroma-server")) as url:
        yield url


@pytest.fixture(scope="module")
def served(chroma_url, embedder, tmp_path_factory):
    """The seeds ingested through the command line into the server; returns the --index folder."""
    index = tmp_path_factory.mktemp("server-index")
    result = CliRunner().invoke(main, [
        "--index", str(index), "--chroma-url", chroma_url, "--encoder", embedder.encoder,
        "ingest", str(SEEDS_DIR), "--json",
    ])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["added"], report["failed"], report["embedded_paragraphs"]) == (2, 0, 33)
    return index


def cli(*args: str):
    return CliRunner().invoke(main, list(args))


def test_show_through_the_server_equals_the_local_store(served, chroma_url, seeds_archive, embedder):
    local_index = str(seeds_archive.store_config.index_dir)
    for ref in ("24 016 809", "24 000 184"):
        remote = cli("--index", str(served), "--chroma-url", chroma_url, "--encoder", embedder.encoder,
                     "show", ref, "--json")
        local = cli("--index", local_index, "--encoder", embedder.encoder, "show", ref, "--json")
        assert remote.exit_code == 0, remote.output
        assert json.loads(remote.stdout) == json.loads(local.stdout)
    shown = json.loads(remote.stdout)
    assert [p["number"] for p in shown["paragraphs"]] == list(range(1, 14))


def test_the_server_holds_the_passages_and_the_model_label(served, chroma_url, embedder):
    store = Store(StoreConfig(index_dir=served, chroma_url=chroma_url))
    assert store.counts() == (2, 33)
    assert store.model_label == embedder.label
    names = {c.name for c in store.client.list_collections()}
    assert PASSAGES in names
    assert not (served / "chroma").exists()  # nothing went into a local Chroma folder


def test_reingest_through_the_server_is_unchanged(served, chroma_url, embedder):
    result = cli("--index", str(served), "--chroma-url", chroma_url, "--encoder", embedder.encoder,
                 "ingest", str(SEEDS_DIR), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["unchanged"], report["embedded_paragraphs"]) == (2, 0)


def test_search_works_through_the_server(served, chroma_url, seeds_archive, embedder):
    archive = Archive(StoreConfig(index_dir=served, chroma_url=chroma_url), encoder=embedder.encoder)
    question = "Did the Council delay the strategy meeting after the son's disclosure of abuse?"
    hits = archive.retriever.search(question, k=5)
    assert hits[0].ref == "24 016 809"
    assert "24-016-809#15" in [h.id for h in hits]
    local = seeds_archive.retriever.search(question, k=5)
    assert [h.id for h in hits] == [h.id for h in local]
    dense = archive.retriever.search(question, k=5, mode="dense")
    assert [h.id for h in dense] == [h.id for h in seeds_archive.retriever.search(question, k=5, mode="dense")]


def test_the_catalogue_is_kept_beside_under_servers(served, chroma_url):
    store = Store(StoreConfig(index_dir=served, chroma_url=chroma_url))
    folder = store.catalogue_dir
    assert folder.parent.parent == served / "servers"
    assert folder.name == "catalogue"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["store_generation"] == store.generation() != ""
    c = Catalogue.load(store)
    assert list(c.passages).count("24-016-809#15") == 1
    # Another server gets its own catalogue under the same --index folder.
    other = Store(StoreConfig(index_dir=served, chroma_url="http://127.0.0.1:1"))
    assert other.catalogue_dir.parent.parent == served / "servers"
    assert other.catalogue_dir != folder


def test_an_unreachable_server_is_a_clear_error_naming_the_url(tmp_path, embedder):
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(StoreError) as e:
        Store(StoreConfig(index_dir=tmp_path, chroma_url=url)).client
    message = str(e.value)
    assert f"cannot reach the Chroma server at {url}" in message
    assert "chroma run" in message
    result = cli("--index", str(tmp_path), "--chroma-url", url, "--encoder", embedder.encoder, "show", "24 016 809")
    assert result.exit_code == 1
    assert f"cannot reach the Chroma server at {url}" in result.stderr


def test_a_malformed_server_url_is_a_clear_error(tmp_path):
    with pytest.raises(StoreError, match=r"--chroma-url 'http://' is not a URL like http://127\.0\.0\.1:8000"):
        Store(StoreConfig(index_dir=tmp_path, chroma_url="http://")).client


def test_the_server_url_may_come_from_the_environment(served, chroma_url, embedder, monkeypatch):
    monkeypatch.setenv("OMBUDSMAN_CHROMA_URL", chroma_url)
    result = cli("--index", str(served), "--encoder", embedder.encoder, "show", "24 016 809", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["paragraphs"][14]["number"] == 15
