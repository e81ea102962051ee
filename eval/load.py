"""Load: many users asking at once through the app's API while the page keeps being opened.

    python -m eval.load --index DIR [--users 16] [--questions 8] [--out eval/results/load.json]

Starts `ombudsman serve` on a free port of 127.0.0.1 over the index (nothing else is reached:
the app serves loopback only), waits for its page, then runs ``--users`` users at once, each
asking ``--questions`` questions of the tuning set one after another through the ``/ask`` API
(Gradio's HTTP API: post the question, then read the event stream of its answer; a light client,
so that 16 of them on the same 2 cores measure the app rather than themselves), while another
client opens the page (its HTML and its configuration)
every half second. When every user is done it stops the server and prints the answer latency
(p50, p95, max), the errors, and the page load times during the run; the figures go to ``--out``.
Bounded: it sends ``users x questions`` answers and stops by itself.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from eval.run import QUESTIONS, load_questions
from index.config import PROJECT_ROOT

RESULTS = PROJECT_ROOT / "eval" / "results" / "load.json"



def ask_api(http, url: str, question: str) -> dict:
    """One answer through the app's ``/ask`` API (Gradio's HTTP API: post the inputs, read the
    event stream); ``url`` ends with "/". Raises RuntimeError with the event when it failed."""
    posted = http.post(url + "gradio_api/call/ask", json={"data": [question, "", "", "", "", ""]})
    posted.raise_for_status()
    stream = http.get(url + f"gradio_api/call/ask/{posted.json()['event_id']}").text
    event, data = "", ""
    for line in stream.splitlines():
        if line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data = line[5:].strip()
    if event != "complete":
        raise RuntimeError(f"{event}: {data[:200]}")
    return json.loads(data)[0]

def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))] if ordered else 0.0


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(index: Path, port: int, log: Path, project: Path = PROJECT_ROOT) -> subprocess.Popen:
    """`ombudsman serve` of the checkout ``project`` (another one: to compare before and after)."""
    cmd = [sys.executable, "-m", "ui.cli", "--index", str(index), "serve", "--host", "127.0.0.1", "--port", str(port)]
    env = {**os.environ, "PYTHONPATH": str(project)}
    out = open(log, "w")
    return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=project, env=env)


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 300) -> float:
    import httpx

    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if proc.poll() is not None:
            raise SystemExit(f"ombudsman serve exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return time.perf_counter() - start
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"no page at {url} after {timeout:.0f} s")


def run(url: str, users: int, per_user: int, questions: list[str]) -> dict:
    """Drive the app at ``url`` (loopback) and return the measurements."""
    import httpx

    latencies: list[float] = []
    errors: list[str] = []
    pages: list[float] = []
    lock = threading.Lock()
    done = threading.Event()

    def ask(http, question: str) -> dict:
        return ask_api(http, url, question)

    def user(u: int) -> None:
        with httpx.Client(timeout=120) as http:
            for i in range(per_user):
                q = questions[(u * per_user + i) % len(questions)]
                t = time.perf_counter()
                try:
                    body = ask(http, q)
                    ok = isinstance(body, dict) and "answer" in body
                except Exception as e:  # noqa: BLE001 (counted and reported, not hidden)
                    ok, body = False, repr(e)
                with lock:
                    latencies.append(time.perf_counter() - t)
                    if not ok:
                        errors.append(f"user {u}, {q!r}: {str(body)[:200]}")

    def page() -> None:
        with httpx.Client(timeout=30) as http:
            while not done.is_set():
                t = time.perf_counter()
                try:
                    ok = http.get(url).status_code == 200 and http.get(url.rstrip("/") + "/config").status_code == 200
                except httpx.HTTPError:
                    ok = False
                with lock:
                    pages.append(time.perf_counter() - t if ok else float("inf"))
                done.wait(0.5)

    loader = threading.Thread(target=page, daemon=True)
    loader.start()
    start = time.perf_counter()
    threads = [threading.Thread(target=user, args=(u,)) for u in range(users)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    done.set()
    loader.join()
    finite = [p for p in pages if p != float("inf")]
    return {
        "users": users,
        "answers": len(latencies),
        "errors": len(errors),
        "error_examples": errors[:5],
        "seconds": round(wall, 1),
        "answers_per_second": round(len(latencies) / wall, 2) if wall else 0.0,
        "answer_s_p50": round(statistics.median(latencies), 3) if latencies else None,
        "answer_s_p95": round(percentile(latencies, 0.95), 3),
        "answer_s_max": round(max(latencies, default=0.0), 3),
        "page_loads": len(pages),
        "page_failures": len(pages) - len(finite),
        "page_s_p50": round(statistics.median(finite), 3) if finite else None,
        "page_s_max": round(max(finite, default=0.0), 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, required=True, help="an index built with `ombudsman ingest`")
    parser.add_argument("--users", type=int, default=16)
    parser.add_argument("--questions", type=int, default=8, help="questions each user asks, one after another")
    parser.add_argument("--also-alone", action="store_true", help="first measure one user alone")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--project", type=Path, default=PROJECT_ROOT,
                        help="the checkout whose app to serve (default: this one)")
    args = parser.parse_args(argv)
    questions = [q.question for q in load_questions(QUESTIONS)]
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    log = args.out.with_suffix(".serve.log")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    proc = start_server(args.index, port, log, args.project.resolve())
    results = {}
    try:
        ready = wait_ready(url, proc)
        print(f"app up at {url} after {ready:.1f} s; warming up", flush=True)
        run(url, 1, 3, questions)  # the model and the catalogue load on the first questions
        if args.also_alone:
            results["alone"] = run(url, 1, args.questions * 2, questions)
            print(json.dumps({"alone": results["alone"]}), flush=True)
        results["concurrent"] = run(url, args.users, args.questions, questions)
        print(json.dumps({"concurrent": results["concurrent"]}), flush=True)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
    args.out.write_text(json.dumps({"index": args.index.name, **results}, indent=1) + "\n")
    log.unlink(missing_ok=True)
    c = results["concurrent"]
    print(f"\n{c['users']} users, {c['answers']} answers in {c['seconds']} s: {c['errors']} errors; answer p50 "
          f"{c['answer_s_p50']} s, p95 {c['answer_s_p95']} s, max {c['answer_s_max']} s; page p50 {c['page_s_p50']} s, "
          f"max {c['page_s_max']} s ({c['page_failures']} of {c['page_loads']} failed)")
    return 0 if c["errors"] == 0 and c["page_failures"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
