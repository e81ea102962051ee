"""Several app processes on one Chroma server: two ``ombudsman serve`` and one ``ombudsman ingest``,
each with its own data folder (as on different machines), sharing a real ``chroma run`` on
127.0.0.1. A decision ingested through one is answered by both servers within seconds, each
adding it to its own catalogue as a new segment (nothing rebuilt)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from conftest import chroma_server, free_port, stop
from eval.load import ask_api
from index.config import PROJECT_ROOT, SEEDS_DIR

ENCODER = "onnx-int8"
# Long enough for a server to notice the store changed (it checks once a second) and to add the
# new decision to its catalogue; far longer than that takes on the development machine (~2 s).
PICKED_UP_WITHIN = 20.0

NEW_DECISION = """Rutland County Council (25 999 001)

Category : Environment and regulation > Pest control

Decision : Upheld

Decision date : 02 Dec 2026

The Ombudsman's final decision:

Summary: The Council delayed treating a wasp nest in a shared garden for eleven weeks. It has agreed to apologise and pay Mr Q £150.

The complaint

  1. Mr Q complains the Council took eleven weeks to treat a wasp nest in the garden he shares with his neighbours.

Back to top

What I found

  1. The Council's pest control team lost Mr Q's request and did not visit until he complained a third time. That was fault.

Back to top

Decision

  1. I have completed my investigation. There was fault by the Council, which it has agreed to remedy by apologising and paying Mr Q £150.
"""
QUESTION = "why did the council take eleven weeks to treat the wasp nest?"


def run(data: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "OMBUDSMAN_DATA": str(data)}
    env.pop("OMBUDSMAN_INDEX", None)
    log = open(data / "process.log", "ab")
    return subprocess.Popen([sys.executable, "-m", "ui.cli", "--encoder", ENCODER, *args], cwd=PROJECT_ROOT,
                            stdout=log, stderr=subprocess.STDOUT, env=env)


def ask(url: str, question: str) -> dict:
    with httpx.Client(timeout=60) as http:
        return ask_api(http, url + "/", question)


def wait_for_page(url: str, proc: subprocess.Popen, log: Path, within: float = 120) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"ombudsman serve exited with {proc.returncode}:\n{log.read_text(errors='replace')[-2000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    pytest.fail(f"no page at {url} after {within} s:\n{log.read_text(errors='replace')[-2000:]}")


def test_two_apps_on_one_chroma_server_answer_a_decision_a_third_process_ingested(tmp_path):
    with chroma_server(tmp_path) as chroma:
        folders = {name: tmp_path / name for name in ("first", "second", "ingest")}
        for f in folders.values():
            f.mkdir()
        seeded = run(folders["ingest"], "--chroma-url", chroma, "ingest", str(SEEDS_DIR))
        assert seeded.wait(timeout=300) == 0, (folders["ingest"] / "process.log").read_text()
        ports = {name: free_port() for name in ("first", "second")}
        servers = {name: run(folders[name], "--chroma-url", chroma, "serve", "--port", str(ports[name]))
                   for name in ports}
        try:
            urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
            for name, url in urls.items():
                wait_for_page(url, servers[name], folders[name] / "process.log")
            for url in urls.values():  # both answer from the seeds the server holds, not yet the new one
                refs = {c["ref"] for c in ask(url, "why was the complaint about the strategy meeting "
                                                   "and the safety plan not investigated?")["citations"]}
                assert "24 016 809" in refs
                assert "25 999 001" not in {c["ref"] for c in ask(url, QUESTION)["citations"]}

            source = tmp_path / "new"
            source.mkdir()
            (source / "25-999-001.txt").write_text(NEW_DECISION, encoding="utf-8")
            adding = run(folders["ingest"], "--chroma-url", chroma, "ingest", str(source))
            assert adding.wait(timeout=300) == 0, (folders["ingest"] / "process.log").read_text()
            added = time.monotonic()

            seen: dict[str, float] = {}
            while len(seen) < len(urls) and time.monotonic() - added < PICKED_UP_WITHIN:
                for name, url in urls.items():
                    if name not in seen and "25 999 001" in {c["ref"] for c in ask(url, QUESTION)["citations"]}:
                        seen[name] = time.monotonic() - added
                time.sleep(0.2)
            assert sorted(seen) == ["first", "second"], f"answered by {seen} within {PICKED_UP_WITHIN} s"
            for name in urls:
                found = list((folders[name] / "index" / "servers").glob("*/catalogue/manifest.json"))
                manifest = json.loads(found[0].read_text())
                # the seeds' segment, then one for the new decision: nothing was rebuilt
                assert [s["decisions"] for s in manifest["segments"]] == [2, 1], name
        finally:
            for proc in servers.values():
                stop(proc)
