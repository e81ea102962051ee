"""The ONNX encoder's model runs in a child process while ingest embeds, so that nothing in the
ingesting process can hold it up.

Chroma's ``add`` holds the interpreter lock for its whole call (about 0.65 s for 4,096 windows), and
the encoder's threads need the lock for a moment between two model runs: in one process, every
write to the store stalled the encoder. The child has an interpreter of its own; the parent still
counts word pieces, cuts windows and orders the runs, and sends the word pieces and the runs; the
child runs them on its cores and sends back the pooled vectors, the same to the last bit as the
parent's own runs would give. Measured over 16,780 paragraphs
(`python -m eval.bench_ingest --encoder onnx-int8 --repeat 20 --rounds 2`): ingest at 0.882 of
the encoder-alone rate, with the batches sent ahead (``submit``), against 0.84 to 0.88 in one
process.

The child begins the runs of each batch it is sent as the batch arrives (``start_all``) and answers
in order on a thread of its own, so its threads go from one batch's runs to the next's: waiting for
a batch's slowest run before starting the next left one core idle for about a quarter of a second
at every batch (seen by sampling the CPU every half second through an ingest).

Messages are pickled over the child's standard input and a copy of its standard output (the real
one is pointed at standard error, so a library printing cannot corrupt them). The child ends when
its input closes or breaks off (the parent closed it, or died), once it has answered the requests it
was sent, or at once when it cannot write a reply; it ignores Ctrl-C, which is the parent's to handle.
"""

from __future__ import annotations

import logging
import os
import pickle
import queue
import signal
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

import numpy as np

from index.config import whole_setting

log = logging.getLogger(__name__)

_PACKAGE_ROOT = Path(__file__).resolve().parent.parent  # the folder holding the ``index`` package


# While the child runs, the ingesting process keeps to a quarter of the cores it may use (at least
# one); the child keeps them all. On 2 cores, three ingests of 3,000 files alternated with three
# unconfined (a one-off script, ``python -m eval.bench_ingest``'s files): 36.5 to 36.6 s against
# 37.3 to 37.7 s, the ingesting process's CPU 8.0 to 8.4 s against 9.2 to 9.4 s (its threads, Chroma's
# among them, hand work to each other tens of thousands of times, and on one core they do so
# without waking the other), the child's 64 to 65 s either way. Measured on 2 cores only; on more,
# a quarter leaves the ingesting process more than the eighth of the CPU its work takes beside the
# encoder. ``OMBUDSMAN_INGEST_CORES=N`` sets another number (as many as there are: not confined),
# which ``python -m eval.bench_ingest --also-with`` compares within rounds: with
# ``--also-with OMBUDSMAN_INGEST_CORES=2``, ingest at 0.922 of the encoder alone confined against
# 0.877 not, ahead in every round (``eval/results/ingest-onnx-int8-also-OMBUDSMAN_INGEST_CORES-2.json``).
INGEST_CORES_SHARE = 4
INGEST_CORES_ENV = "OMBUDSMAN_INGEST_CORES"


def ingest_cores(allowed: int) -> int:
    """Cores the ingesting process keeps to while the child runs, of the ``allowed`` it may use."""
    return min(whole_setting(INGEST_CORES_ENV, max(1, allowed // INGEST_CORES_SHARE)), allowed)


def _threads() -> list[int]:
    """The ids of this process's threads (Linux), none where they cannot be listed."""
    try:
        return [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:
        return []


def _set_affinity(thread: int, cores: set[int]) -> None:
    try:
        os.sched_setaffinity(thread, cores)
    except OSError:  # the thread ended meanwhile, or may not be moved
        pass


class Confinement:
    """This process's threads kept to some of the cores it may use (see ``confined``)."""

    def __init__(self, allowed: set[int], cores: set[int]) -> None:
        self.allowed, self.cores = allowed, cores
        self._lock = threading.Lock()
        self._lifted = 0  # model runs in this process going on (see ``lifted``)
        self._on = False
        self._before: dict[int, set[int]] = {}  # each thread's cores when it began

    def _apply(self) -> None:
        """Every thread on the confined cores, or, when off or lifted, on those it had before (a
        thread started since: every allowed core). Threads started while the list is walked take
        their starter's cores, so it is walked until it shows no thread not yet set."""
        if self.cores == self.allowed:  # nothing to confine
            return
        confine = self._on and not self._lifted
        done: set[int] = set()
        while new := [t for t in _threads() if t not in done]:
            for thread in new:
                _set_affinity(thread, self.cores if confine else self._before.get(thread, self.allowed))
            done.update(new)

    def start(self) -> None:
        with self._lock:
            for thread in _threads():
                try:
                    self._before[thread] = os.sched_getaffinity(thread)
                except OSError:
                    pass
            self._on = True
            self._apply()

    def end(self) -> None:
        with self._lock:
            self._on = False
            self._apply()

    @contextmanager
    def lifted(self) -> Iterator[None]:
        """Within: every core again, for a model run made in this process (the child still loading,
        or failed), which would otherwise run on the ingesting process's share alone."""
        with self._lock:
            self._lifted += 1
            if self._lifted == 1:
                self._apply()
        try:
            yield
        finally:
            with self._lock:
                self._lifted -= 1
                if self._lifted == 0:
                    self._apply()


_shared: Confinement | None = None  # the confinement in force, shared by bulks running at once
_users = 0
_shared_lock = threading.Lock()


def unconfined_cores() -> set[int] | None:
    """The cores this process may use as they were before the confinement in force (None when
    there is none): what a child started meanwhile (another encoder's) is given."""
    with _shared_lock:
        return set(_shared.allowed) if _shared is not None and _shared.allowed else None


@contextmanager
def confined() -> Iterator[Confinement]:
    """Within: every thread of this process, those there now and those started meanwhile (which
    take their starter's cores), on ``ingest_cores`` of the cores it may use, except while a model
    run in this process lifts it (``Confinement.lifted``); after: each on the cores it had. Bulks
    running at once share one confinement, ended with the last. Where threads cannot be confined
    (not Linux, or one core), nothing changes."""
    global _shared, _users
    with _shared_lock:
        if _shared is None:
            supported = hasattr(os, "sched_setaffinity") and bool(_threads())
            allowed = os.sched_getaffinity(0) if supported else set()
            count = ingest_cores(len(allowed)) if allowed else 0
            _shared = Confinement(allowed, set(sorted(allowed)[-count:]) if 0 < count < len(allowed) else allowed)
            try:
                _shared.start()
            except BaseException:
                _shared = None
                raise
        _users += 1
        confinement = _shared
    try:
        yield confinement
    finally:
        with _shared_lock:
            _users -= 1
            if _users == 0:
                _shared = None
                confinement.end()


class EncoderProcessError(RuntimeError):
    """The child process could not start, or stopped; the parent embeds in-process instead."""


class EncoderProcess:
    """A child process running an ONNX model file's sessions, one per core (see the module)."""

    def __init__(self, model: Path, pooling: str, pad_id: int, workers: int) -> None:
        """Starts the child and returns at once: it loads the model while the parent goes on
        (``ready`` says whether it has)."""
        # Run from the folder holding the package, which ``-c`` puts first on the import path.
        self._child = subprocess.Popen(
            [sys.executable, "-c", "from index.encoder_process import main; main()",
             str(Path(model).resolve()), pooling, str(pad_id), str(workers)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=str(_PACKAGE_ROOT),
            stderr=subprocess.DEVNULL if sys.stderr is None else None,
        )
        cores = unconfined_cores()  # started by a confined thread (another encoder's bulk): every core
        if cores:
            _set_affinity(self._child.pid, cores)
        self._sending, self._receiving = threading.Lock(), threading.Lock()  # one message at a time each way
        self._sent = self._received = 0  # requests sent, replies read
        self._replies: dict[int, tuple[str, object]] = {}  # read, not yet asked for
        self._ready = threading.Event()
        self._failed: str | None = None
        self._closing = False
        threading.Thread(target=self._await_ready, name="ombudsman-encoder-start", daemon=True).start()

    def _await_ready(self) -> None:
        try:
            message = pickle.load(self._child.stdout)
            if message != "ready":
                self._failed = f"the encoder process could not load the model: {message}"
        except Exception as e:  # it died before loading
            self._failed = f"the encoder process stopped while starting ({type(e).__name__}: {e})"
        if self._failed and not self._closing:
            log.warning("%s; embedding in this process instead", self._failed)
        self._ready.set()

    @property
    def failed(self) -> bool:
        """Whether the child could not start or load the model, or stopped."""
        return self._failed is not None

    @property
    def ready(self) -> bool:
        """Whether the child has loaded the model and can run (false while starting, or once failed)."""
        return self._ready.is_set() and not self.failed

    def submit(self, pieces: np.ndarray, starts: np.ndarray, batches: list[np.ndarray]) -> Callable[[], np.ndarray]:
        """Sends the texts whose word pieces are ``pieces[starts[i]:starts[i + 1]]`` (each of
        ``batches``, rows, run together) and returns at once; what it returns gives their vectors,
        waiting for them (the first call; later calls give the same array). The child queues each
        batch's runs as it arrives, behind those of the batches before, so a batch sent while
        another runs starts as soon as its threads are free. Raises ``EncoderProcessError`` if the
        child is gone."""
        if not self.ready:
            raise EncoderProcessError(self._failed or "the encoder process is still starting")
        with self._sending:
            number = self._sent
            try:
                pickle.dump((pieces, starts, batches), self._child.stdin, protocol=pickle.HIGHEST_PROTOCOL)
                self._child.stdin.flush()
            except Exception as e:  # killed, or out of memory
                raise self._stopped(e) from e
            except BaseException:  # interrupted part way: the stream is cut, so the child cannot go on
                self._failed = "the encoder process was interrupted while sent a batch"
                self._child.kill()
                raise
            self._sent += 1
        got: list[np.ndarray] = []

        def vectors() -> np.ndarray:
            if not got:
                got.append(self._reply(number))
            return got[0]

        return vectors

    def _reply(self, number: int) -> np.ndarray:
        """The vectors of request ``number`` (replies come in order; earlier ones are kept)."""
        with self._receiving:
            while number not in self._replies:
                if self._failed:
                    raise EncoderProcessError(self._failed)
                try:
                    self._replies[self._received] = pickle.load(self._child.stdout)
                except Exception as e:
                    raise self._stopped(e) from e
                self._received += 1
            status, value = self._replies.pop(number)
        if status != "ok":
            raise EncoderProcessError(f"the encoder process failed: {value}")
        return value

    def _stopped(self, error: Exception) -> EncoderProcessError:
        self._failed = f"the encoder process stopped ({type(error).__name__}: {error})"
        return EncoderProcessError(self._failed)

    def close(self) -> None:
        """Ends the child: it exits when its input closes. One still loading the model, or with
        vectors nobody will read (an ingest that stopped on an error, an early batch dropped), is
        killed instead: nothing waits for it, and it could not write its reply."""
        self._closing = True
        if not self._ready.is_set() or self._received < self._sent:
            self._child.kill()
        try:
            self._child.stdin.close()
        except OSError:
            pass
        try:
            self._child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._child.kill()
            self._child.wait()
        self._child.stdout.close()


def _serve(source: BinaryIO, sink: BinaryIO, model: str, pooling: str, pad_id: int, workers: int) -> None:
    from index.onnx_encoder import _open_session, start_all  # the child's only model code: the parent's

    try:
        session = _open_session(Path(model))
    except Exception as e:
        pickle.dump(f"{type(e).__name__}: {e}", sink)
        sink.flush()
        return
    dimension = int(session.get_outputs()[0].shape[-1])
    runner = ThreadPoolExecutor(max_workers=workers) if workers > 1 else None
    requests: queue.Queue = queue.Queue()

    def receive() -> None:  # so that the parent can send a request while the one before runs
        try:
            while True:
                requests.put(pickle.load(source))
        except BaseException:  # the parent closed our input, or died (part way through a request)
            pass
        finally:
            requests.put(None)

    threading.Thread(target=receive, daemon=True).start()
    started: queue.Queue = queue.Queue()  # each request's runs queued, in order, until answered

    def answer() -> None:  # so that the next request's runs start while this one's last ones end
        try:
            while (vectors := started.get()) is not None:
                try:
                    reply = ("ok", vectors())
                except Exception as e:
                    reply = ("error", f"{type(e).__name__}: {e}")
                pickle.dump(reply, sink, protocol=pickle.HIGHEST_PROTOCOL)
                sink.flush()
        except BaseException:  # a reply cannot be written (the parent stopped reading, or memory ran
            os._exit(1)  # out): the child ends at once, so that a parent still there sees it stop

    pickle.dump("ready", sink)
    sink.flush()
    answering = threading.Thread(target=answer, daemon=True)
    answering.start()
    while (request := requests.get()) is not None:
        pieces, starts, batches = request
        try:
            started.put(start_all(runner, session, pieces, starts, batches, pad_id, pooling, dimension))
        except Exception as e:  # a request that cannot be queued (malformed) is answered with its error
            started.put(_raiser(e))
    started.put(None)
    answering.join()


def _raiser(error: Exception) -> Callable[[], np.ndarray]:
    def raise_it() -> np.ndarray:
        raise error
    return raise_it


def main() -> None:
    """The child's entry point: ``model pooling pad_id workers`` on the command line."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C in a terminal reaches the whole group
    model, pooling, pad_id, workers = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    sink = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything printed goes to standard error, not into the replies
    source = os.fdopen(0, "rb")
    _serve(source, sink, model, pooling, pad_id, workers)
