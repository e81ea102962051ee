"""Faults: an ingest killed (SIGKILL) at random points, and in server mode the `chroma run` server
killed under it, leaves an index that the next ingest makes equal to a clean build of the same
files: the same decisions and content hashes, the same passages, the same search results. And an
ingest while `ombudsman serve` runs: no errors, and the app answers from the new decisions once
they are in.

The ingests here embed with the fp32 ONNX encoder: its vectors do not depend on which other texts
share a model run, so a build resumed after a kill embeds exactly what a clean build does (int8
vectors move a little with their batch, which would make "the same search results" a matter of
near-ties).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from index.config import PROJECT_ROOT, SEEDS_DIR, StoreConfig
from rag.archive import Archive
from conftest import assert_consistent, free_port, stop

pytestmark = pytest.mark.slow

ENCODER = "onnx"
POINTS = 20
SERVER_POINTS = 6
SEED = 20261202  # the random points are the same on every run; the test prints them
QUESTIONS = ["why was the complaint about the strategy meeting not investigated?", "council tax bailiff fees",
             "the care home charged my mother too much", "blue badge refused", "late complaint twelve months"]


def ombudsman(*args: str, env: dict | None = None, log: Path | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "ui.cli", "--encoder", ENCODER, *args], cwd=PROJECT_ROOT,
        stdout=subprocess.DEVNULL, stderr=open(log, "ab") if log else subprocess.DEVNULL,
        env={**os.environ, "OMBUDSMAN_INGEST_BATCH": "64", **(env or {})},
    )


def ingest(where: list[str], source: Path, kill_after: float | None = None, log: Path | None = None) -> int | None:
    """Run `ombudsman ingest --prune SOURCE`; with ``kill_after``, SIGKILL it then if still running.
    Returns its exit code (None when it was killed)."""
    proc = ombudsman(*where, "ingest", "--prune", str(source), log=log)
    if kill_after is None:
        return proc.wait(timeout=600)
    try:
        return proc.wait(timeout=kill_after)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        return None


def stock(folder: Path, corpus: Path, rng: random.Random) -> None:
    """Fill ``folder`` with the seeds (sometimes edited, so that they are replaced) and a random
    choice of corpus decisions (so that some are added and others pruned)."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    edit = rng.random() < 0.5
    for seed in SEEDS_DIR.glob("*.txt"):
        text = seed.read_text(encoding="utf-8")
        (folder / seed.name).write_text(text.replace("the Council", "the Authority") if edit else text, encoding="utf-8")
    for path in rng.sample(sorted(corpus.glob("*.txt"))[:40], 24):
        shutil.copy(path, folder / path.name)


def final_files(folder: Path, corpus: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for seed in SEEDS_DIR.glob("*.txt"):
        shutil.copy(seed, folder / seed.name)
    for path in sorted(corpus.glob("*.txt"))[:30]:
        shutil.copy(path, folder / path.name)


def snapshot(archive: Archive) -> dict:
    """What must equal a clean build: decisions and hashes, passages, search results."""
    store = archive.store
    records = store.records()
    assert all(r.complete for r in records.values()), [r for r, rec in records.items() if not rec.complete]
    assert_consistent(store)
    retriever = archive.retriever
    return {
        "decisions": {ref: r.content_hash for ref, r in records.items()},
        "counts": store.counts(),
        "passages": sorted(retriever.catalogue.passages),
        "search": {q: [h.id for h in retriever.search(q, k=10)] for q in QUESTIONS},
    }


def assert_same(got: dict, clean: dict) -> None:
    assert got["decisions"] == clean["decisions"]
    assert got["counts"] == clean["counts"]
    assert got["passages"] == clean["passages"]
    for q in QUESTIONS:
        assert got["search"][q] == clean["search"][q], q


@pytest.fixture(scope="module")
def clean(tmp_path_factory, corpus_dir):
    """A clean build of the final files, and how long a whole ingest takes (from the start)."""
    root = tmp_path_factory.mktemp("clean")
    final_files(root / "files", corpus_dir)
    started = time.perf_counter()
    assert ingest(["--index", str(root / "index")], root / "files") == 0
    seconds = time.perf_counter() - started
    return snapshot(Archive(StoreConfig(index_dir=root / "index"), encoder=ENCODER)), seconds


def test_an_ingest_killed_at_twenty_random_points_is_made_whole_by_the_next(tmp_path, corpus_dir, clean):
    expected, seconds = clean
    rng = random.Random(SEED)
    index, files, log = tmp_path / "index", tmp_path / "files", tmp_path / "ingest.log"
    points = []
    for _ in range(POINTS):
        stock(files, corpus_dir, rng)  # every round has work: adds, replacements, removals
        point = rng.uniform(0.3, seconds * 0.6)  # a round does less than a whole ingest
        points.append((round(point, 2), ingest(["--index", str(index)], files, kill_after=point, log=log)))
    print(f"\nkilled at (seconds, exit code if it finished first): {points}")
    assert sum(code is None for _, code in points) >= POINTS // 2, points  # most really were killed
    assert all(code in (None, 0) for _, code in points), log.read_text(errors="replace")[-3000:]
    final_files(files, corpus_dir)
    assert ingest(["--index", str(index)], files, log=log) == 0
    assert_same(snapshot(Archive(StoreConfig(index_dir=index), encoder=ENCODER)), expected)


def chroma_server(path: Path, port: int) -> subprocess.Popen:
    chroma = Path(sys.executable).parent / "chroma"
    proc = subprocess.Popen([str(chroma), "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=1) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.1)
    stop(proc)
    pytest.fail("chroma run did not start")


def test_killing_the_ingest_or_the_chroma_server_under_it_is_made_whole_by_the_next(tmp_path, corpus_dir, clean):
    expected, seconds = clean
    rng = random.Random(SEED + 1)
    port = free_port()
    data, index, files, log = tmp_path / "chroma", tmp_path / "index", tmp_path / "files", tmp_path / "ingest.log"
    where = ["--index", str(index), "--chroma-url", f"http://127.0.0.1:{port}"]
    server = chroma_server(data, port)
    points = []
    try:
        for i in range(SERVER_POINTS):
            stock(files, corpus_dir, rng)
            point = rng.uniform(0.3, seconds * 0.6)  # a round does less than a whole ingest
            if i % 2 == 0:  # the ingest is killed
                points.append(("ingest", round(point, 2), ingest(where, files, kill_after=point, log=log)))
                continue
            # the server is killed under a running ingest, which must stop with an error, not hang
            proc = ombudsman(*where, "ingest", "--prune", str(files), log=log)
            time.sleep(point)
            server.send_signal(signal.SIGKILL)
            server.wait(timeout=30)
            try:
                code = proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()
                pytest.fail("the ingest hung after its Chroma server was killed")
            points.append(("server", round(point, 2), code))
            server = chroma_server(data, port)  # the same data folder, started again
        print(f"\nkilled (what, seconds, ingest exit code): {points}")
        final_files(files, corpus_dir)
        assert ingest(where, files, log=log) == 0, log.read_text(errors="replace")[-3000:]
        got = snapshot(Archive(StoreConfig.from_env(index, f"http://127.0.0.1:{port}"), encoder=ENCODER))
    finally:
        stop(server)
    assert_same(got, expected)


def test_an_ingest_while_the_app_serves_is_answered_from_once_it_is_in(tmp_path, embedder):
    index = tmp_path / "index"
    seeds = tmp_path / "seeds"
    shutil.copytree(SEEDS_DIR, seeds)
    assert Archive(StoreConfig(index_dir=index), embedder=embedder).ingest([seeds]).failed == []
    port = free_port()
    serve = subprocess.Popen(
        [sys.executable, "-m", "ui.cli", "--index", str(index), "--encoder", embedder.encoder, "serve", "--port", str(port)],
        cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL, stderr=open(tmp_path / "serve.log", "wb"))
    url = f"http://127.0.0.1:{port}/"

    def ask(question: str) -> dict:
        body = json.dumps({"data": [question, "", "", "", "", ""]}).encode()
        req = urllib.request.Request(url + "gradio_api/call/ask", body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as r:
            event = json.load(r)["event_id"]
        with urllib.request.urlopen(url + f"gradio_api/call/ask/{event}", timeout=120) as r:
            stream = r.read().decode()
        assert "event: complete" in stream, stream[-500:]
        return json.loads(stream.split("data:", 2)[-1].strip())[0]

    question = "why did Ruritania Borough Council refuse the beehive licence?"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                if serve.poll() is not None or time.monotonic() > deadline:
                    pytest.fail((tmp_path / "serve.log").read_text(errors="replace")[-2000:])
                time.sleep(0.2)
        before = ask(question)
        assert "26 900 555" not in {c["ref"] for c in before["citations"]}  # not indexed yet
        new = tmp_path / "new"
        new.mkdir()
        (new / "26-900-555.txt").write_text(
            "Ruritania Borough Council (26 900 555)\n\nCategory : Environment and regulation > Licensing\n\n"
            "Decision : Not upheld\n\nDecision date : 02 Feb 2026\n\nSummary: The Council was not at fault when "
            "it refused Mr Q a licence to keep beehives in his garden.\n\nThe complaint\n\n  1. Mr Q complains the "
            "Council refused his beehive licence.\n\nMy assessment\n\n  1. The Council refused the beehive licence "
            "because the garden was too small under its published policy. That was a decision it was entitled "
            "to make.\n", encoding="utf-8")
        asked = []
        ingesting = subprocess.Popen(
            [sys.executable, "-m", "ui.cli", "--index", str(index), "--encoder", embedder.encoder, "ingest", str(new)],
            cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        while ingesting.poll() is None:  # the app keeps answering while the ingest runs
            asked.append(ask("why was the complaint by Mr X closed?")["found"])
        assert ingesting.returncode == 0, ingesting.stderr.read().decode()[-2000:]
        assert all(asked)
        deadline = time.monotonic() + 30
        while True:
            after = ask(question)
            if (after["citations"] and after["citations"][0]["ref"] == "26 900 555") or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert after["found"] and after["citations"][0]["ref"] == "26 900 555"
    finally:
        stop(serve)
