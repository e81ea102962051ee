"""Shared fixtures: every test's state in a temporary folder, and indexes built once per session.

The corpus of real decisions lives outside the repository (``../shared/corpus``); tests that need
it skip with the reason when it is absent, as in a user's clone.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from typing import Iterator
from pathlib import Path

import pytest

from index import config
from index.store import passage_of_window, unpack_windows

CORPUS_DIR = Path(os.environ.get("OMBUDSMAN_CORPUS", config.PROJECT_ROOT.parent / "shared" / "corpus"))
SEEDS_DIR = config.SEEDS_DIR


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (for servers the tests start)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(proc: subprocess.Popen) -> None:
    """Stop a server the test started: SIGTERM, then SIGKILL if it does not exit in 20 s."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextmanager
def chroma_server(folder: Path) -> Iterator[str]:
    """A real ``chroma run`` on a free port of 127.0.0.1 with its data in ``folder``; yields its
    URL and stops it (SIGTERM) afterwards."""
    chroma = Path(sys.executable).parent / "chroma"
    if not chroma.exists():
        pytest.fail(f"the chroma command is missing at {chroma}; reinstall chromadb")
    port = free_port()
    log = (folder / "server.log").open("wb")
    proc = subprocess.Popen(
        [str(chroma), "run", "--path", str(folder / "data"), "--host", "127.0.0.1", "--port", str(port)],
        stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/v2/heartbeat", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"chroma run did not start: {(folder / 'server.log').read_text(errors='replace')[-2000:]}")
            time.sleep(0.1)
        yield url
    finally:
        stop(proc)
        log.close()


@pytest.fixture(autouse=True)
def _isolated_data(tmp_path_factory, monkeypatch):
    """No test reads or writes the project's own data folder or a user's configured index, or
    batches its ingests by sizes set in the user's shell (tests set their own)."""
    data = tmp_path_factory.getbasetemp() / "data"
    monkeypatch.setenv("OMBUDSMAN_DATA", str(data))
    for variable in ("OMBUDSMAN_INDEX", "OMBUDSMAN_CHROMA_URL", "OMBUDSMAN_LLM_URL", "OMBUDSMAN_INGEST_BATCH",
                     "OMBUDSMAN_EARLY_BATCH", "OMBUDSMAN_LAST_BATCH", "OMBUDSMAN_BULK_DECISIONS"):
        monkeypatch.delenv(variable, raising=False)


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    if not CORPUS_DIR.is_dir():
        reason = f"the shared corpus is not at {CORPUS_DIR} (it sits beside the repository in CI)"
        if os.environ.get("OMBUDSMAN_REQUIRE_CORPUS"):
            pytest.fail(f"{reason}; OMBUDSMAN_REQUIRE_CORPUS is set, so the corpus tests and eval gates must run")
        pytest.skip(reason)
    return CORPUS_DIR


@pytest.fixture(scope="session")
def embedder():
    """The default embedder, loaded once for the whole session."""
    from index.embedder import load_embedder

    return load_embedder("auto")


def _archive(path: Path, sources: list[Path], embedder):
    from rag.archive import Archive

    archive = Archive(config.StoreConfig(index_dir=path), encoder=embedder.encoder)
    report = archive.ingest(sources)
    assert not report.failed, report.failed
    return archive


@pytest.fixture(scope="session")
def seeds_archive(tmp_path_factory, embedder):
    """An index of the two seed decisions (read-only for tests: copy it to change it)."""
    return _archive(tmp_path_factory.mktemp("seeds-index"), [SEEDS_DIR], embedder)


@pytest.fixture(scope="session")
def corpus_archive(tmp_path_factory, embedder, corpus_dir):
    """An index of the seeds and the shared corpus (read-only for tests)."""
    return _archive(tmp_path_factory.mktemp("corpus-index"), [SEEDS_DIR, corpus_dir], embedder)


def decision_write(text: str, embedder):
    """The decision ``text`` holds, cut into windows and embedded as ingest does, ready for
    ``Store.write_decisions``."""
    from index.ingest import embedded
    from index.parse import parse_text

    return embedded(parse_text(text), embedder)


def assert_consistent(store, *, no_orphans: bool = True) -> None:
    """Every complete decision has exactly its vectors, which its record names, and the passages
    read back are its paragraphs."""
    records = store.records()
    complete = {r: rec for r, rec in records.items() if rec.complete}
    by_slug: dict[str, set] = {}
    for rid in store.window_ids():
        by_slug.setdefault(rid.partition("#")[0], set()).add(rid)
    for ref, rec in complete.items():
        decision = store.decision(ref)
        expected = {f"{decision.slug}#{n}" for n in range(1, len(decision.paragraphs) + 1)}
        if decision.summary:
            expected.add(f"{decision.slug}#summary")
        got = by_slug.get(decision.slug, set())
        assert rec.paragraphs == len(expected), ref
        assert {rid for rid in got if "~" not in rid} == expected, ref  # each passage's first window
        assert {passage_of_window(rid) for rid in got} == expected, ref
        assert set(unpack_windows(decision.slug, rec.window_ids)) == got, ref
        for p in store.iter_passages(ref):
            assert p.metadata["decision_hash"] == rec.content_hash
            if p.paragraph != "summary":
                assert p.text == decision.paragraph(p.paragraph).text
    if no_orphans:
        slugs = {r.replace(" ", "-") for r in complete}
        assert set(by_slug) <= slugs, f"vectors of decisions not completely indexed: {set(by_slug) - slugs}"
