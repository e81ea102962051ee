"""ONNX encoders: exported offline on first use and cached, as accurate as torch, and chosen with
fallbacks that say why.

The fp32 and int8 exports are made once for this file (about 5 s) in a data folder of its own, and
shared by the tests that only read them.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from index import config, onnx_encoder
from index.embedder import EmbedderError, TorchEmbedder
from index.onnx_encoder import (
    FP32_FILE,
    INT8_FILE,
    OnnxEmbedder,
    cache_dir,
    cpu_supports_int8,
    encoder_from_env,
    load_fastest,
    load_onnx,
    start_all,
    weights_digest,
)
from index.parse import parse_file

# Measured on the seed paragraphs (2026-11-22, AMD EPYC with avx512_vnni): fp32 min cosine to
# torch 0.9999999; int8 min 0.9885, mean 0.994 (0.9859 / 0.993 over the shared corpus). The
# thresholds sit a little below, so that a broken export or pooling fails and noise does not.
FP32_MIN_COSINE, FP32_MEAN_COSINE = 0.9999, 0.99999
INT8_MIN_COSINE, INT8_MEAN_COSINE = 0.985, 0.992


def _offline_sockets(mp: pytest.MonkeyPatch) -> None:
    def refuse(*args, **kwargs):
        raise OSError("network access during the ONNX export")

    mp.setattr(socket.socket, "connect", refuse)
    mp.setattr(socket, "create_connection", refuse)


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    """fp32 and int8 exports made on first use in an empty data folder, with no network."""
    data = tmp_path_factory.mktemp("onnx-data")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OMBUDSMAN_DATA", str(data))
        _offline_sockets(mp)
        folder = cache_dir()
        existed_before = folder.exists()
        started = time.perf_counter()
        fp32 = load_onnx(quantised=False)
        first_load = time.perf_counter() - started
        int8 = load_onnx(quantised=True)
    return SimpleNamespace(
        data=data, folder=folder, existed_before=existed_before, first_load=first_load,
        fp32=fp32, int8=int8, mtimes={f: (folder / f).stat().st_mtime_ns for f in (FP32_FILE, INT8_FILE)},
    )


@pytest.fixture
def data_with_exports(exported, monkeypatch):
    """This test's ``OMBUDSMAN_DATA`` is the folder holding the shared exports."""
    monkeypatch.setenv("OMBUDSMAN_DATA", str(exported.data))
    return exported


@pytest.fixture(scope="session")
def torch_embedder():
    return TorchEmbedder()


@pytest.fixture(scope="session")
def seed_paragraphs() -> list[str]:
    texts = [p.text for path in sorted(config.SEEDS_DIR.glob("*.txt")) for p in parse_file(path).paragraphs]
    assert len(texts) > 20
    return texts


@pytest.fixture(scope="session")
def torch_vectors(torch_embedder, seed_paragraphs) -> np.ndarray:
    """The reference: sentence-transformers on torch."""
    return torch_embedder.embed(seed_paragraphs)


def _copy_export(exported, data: Path) -> Path:
    """The shared fp32 export copied into ``data``'s cache; returns the cache folder."""
    target = data / "encoders" / exported.folder.name
    target.mkdir(parents=True)
    shutil.copy2(exported.folder / FP32_FILE, target / FP32_FILE)
    return target


# --- export and cache ---------------------------------------------------------------------------------


def test_export_is_made_offline_on_first_use_in_the_data_folder(exported):
    assert os.environ["HF_HUB_OFFLINE"] == "1"  # set by importing index.config
    assert not exported.existed_before
    assert exported.folder.parent == exported.data / "encoders"
    assert exported.folder.name.startswith("all-MiniLM-L6-v2-")
    assert (exported.folder / FP32_FILE).stat().st_size > 50_000_000
    assert (exported.folder / INT8_FILE).stat().st_size < (exported.folder / FP32_FILE).stat().st_size
    assert (exported.fp32.encoder, exported.int8.encoder) == ("onnx", "onnx-int8")
    assert not list(exported.folder.glob(".tmp-*")), "temporary files were left behind"


def test_second_load_reuses_the_cached_export(data_with_exports, monkeypatch):
    def no_export(target):
        raise AssertionError(f"re-exported {target}")

    monkeypatch.setattr(onnx_encoder, "export_onnx", no_export)
    monkeypatch.setattr(onnx_encoder, "quantise", no_export)
    started = time.perf_counter()
    again = load_onnx(quantised=False)
    elapsed = time.perf_counter() - started
    load_onnx(quantised=True)
    folder = data_with_exports.folder
    assert {f: (folder / f).stat().st_mtime_ns for f in (FP32_FILE, INT8_FILE)} == data_with_exports.mtimes
    assert again.path == folder / FP32_FILE
    assert elapsed < data_with_exports.first_load / 2


def test_corrupt_cached_model_is_detected_and_replaced(exported, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("OMBUDSMAN_DATA", str(tmp_path))
    folder = _copy_export(exported, tmp_path)
    good_size = (folder / FP32_FILE).stat().st_size
    with (folder / FP32_FILE).open("r+b") as f:  # as a disk fault or an interrupted copy leaves it
        f.truncate(good_size // 2)

    with caplog.at_level(logging.WARNING, logger="index.onnx_encoder"):
        embedder = load_onnx(quantised=False)

    assert any("unusable" in r.getMessage() and FP32_FILE in r.getMessage() for r in caplog.records)
    assert (folder / FP32_FILE).stat().st_size == pytest.approx(good_size, rel=0.01)
    assert embedder.embed(["The Council delayed the assessment."]).shape == (1, 384)


def test_corrupt_int8_model_is_quantised_again_from_the_good_fp32(exported, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("OMBUDSMAN_DATA", str(tmp_path))
    folder = _copy_export(exported, tmp_path)
    (folder / INT8_FILE).write_bytes(b"not an onnx model")
    monkeypatch.setattr(onnx_encoder, "export_onnx", lambda target: pytest.fail("fp32 re-exported"))

    with caplog.at_level(logging.WARNING, logger="index.onnx_encoder"):
        embedder = load_onnx(quantised=True)

    assert any(INT8_FILE in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert embedder.encoder == "onnx-int8"
    assert (folder / INT8_FILE).stat().st_size > 1_000_000


def test_a_failed_export_leaves_no_model_behind(tmp_path, monkeypatch):
    import torch

    def half_written_then_killed(model, args, path, **kwargs):
        Path(path).write_bytes(b"\x08\x07partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch.onnx, "export", half_written_then_killed)
    target = tmp_path / "encoders" / "m" / FP32_FILE
    with pytest.raises(KeyboardInterrupt):
        onnx_encoder.export_onnx(target)
    assert not target.exists()
    assert list(target.parent.iterdir()) == []


def test_temporaries_left_by_a_killed_export_are_cleared_later(data_with_exports):
    folder = data_with_exports.folder
    old, young = folder / ".tmp-model-killed.onnx", folder / ".tmp-model-in-progress.onnx"
    old.write_bytes(b"half a model")
    young.write_bytes(b"another process is writing this")
    two_hours_ago = time.time() - 7200
    os.utime(old, (two_hours_ago, two_hours_ago))
    try:
        load_onnx(quantised=False)
        assert not old.exists()
        assert young.exists()
    finally:
        old.unlink(missing_ok=True)
        young.unlink(missing_ok=True)


def test_a_model_with_layers_after_pooling_is_refused(tmp_path, monkeypatch):
    (tmp_path / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"},
    ]))
    with pytest.raises(EmbedderError, match=r"Dense.*OMBUDSMAN_ENCODER=torch"):
        onnx_encoder._pooling_mode(tmp_path)


def test_the_cache_folder_names_the_weights_and_the_exporter(tmp_path, monkeypatch):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "model.safetensors").write_bytes(b"weights v1")
    monkeypatch.setattr(onnx_encoder, "model_path", lambda: model)
    first = weights_digest()

    (model / "model.safetensors").write_bytes(b"weights v2")
    second = weights_digest()
    monkeypatch.setattr(onnx_encoder, "EXPORTER_VERSION", "next")
    third = weights_digest()

    assert len({first, second, third}) == 3
    assert cache_dir().name == f"all-MiniLM-L6-v2-{third[:16]}"


def test_quantising_leaves_the_applications_logging_alone(exported, tmp_path, monkeypatch):
    # onnxruntime's quantiser logs on the root logger; with no handler there, logging.warning()
    # would install one and a later logging.basicConfig() in the app would do nothing.
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])
    onnx_encoder.quantise(exported.folder / FP32_FILE, tmp_path / INT8_FILE)
    assert root.handlers == []
    assert root.filters == []


# --- vectors --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "which, min_cosine, mean_cosine",
    [("fp32", FP32_MIN_COSINE, FP32_MEAN_COSINE), ("int8", INT8_MIN_COSINE, INT8_MEAN_COSINE)],
)
def test_vectors_agree_with_torch_on_real_paragraphs(exported, torch_vectors, seed_paragraphs, which,
                                                      min_cosine, mean_cosine):
    vectors = getattr(exported, which).embed(seed_paragraphs, batch_size=8)  # several sorted batches
    cosines = (torch_vectors * vectors).sum(axis=1)
    assert cosines.min() >= min_cosine, f"worst paragraph: {seed_paragraphs[int(cosines.argmin())][:80]!r}"
    assert cosines.mean() >= mean_cosine


def test_vectors_are_unit_length_float32_rows_in_input_order(exported, seed_paragraphs):
    texts = [seed_paragraphs[0], "Refund", seed_paragraphs[1], ""]  # long, short, long, empty
    vectors = exported.fp32.embed(texts, batch_size=2)
    assert vectors.dtype == np.float32 and vectors.shape == (4, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    one_by_one = np.vstack([exported.fp32.embed([t]) for t in texts])
    assert np.allclose((vectors * one_by_one).sum(axis=1), 1.0, atol=1e-5)
    assert exported.fp32.embed([]).shape == (0, 384)


def test_pieces_counted_for_windows_are_embedded_as_the_tokenizer_would_make_them(exported, seed_paragraphs):
    # Ingest counts a text's word pieces to cut windows, then embeds it: the pieces kept from the
    # count give the same model input, and the same vectors, as tokenising it again.
    encoder = exported.fp32
    long_text = "The Council failed to review the care plan. " * 80  # past the window: truncated
    texts = [*seed_paragraphs[:6], "Refund", "", long_text]
    with encoder._tokenizer_lock:
        direct = encoder.tokenizer(texts, truncation=True, max_length=encoder.max_tokens, padding=False,
                                   return_attention_mask=False, return_token_type_ids=True)
    fresh = encoder.embed(texts)
    encoder.count_model_tokens_many(texts)
    assert set(texts) - {long_text} <= set(encoder._pieces)
    assert long_text not in encoder._pieces  # longer than a window: cut, never embedded whole
    assert encoder._tokenise(texts) == direct["input_ids"]
    assert {t for types in direct["token_type_ids"] for t in types} == {0}  # what every run is given
    assert np.array_equal(encoder.embed(texts), fresh)
    assert not set(texts) & set(encoder._pieces)  # embedded once, then let go


def test_a_standard_paragraph_counted_for_several_decisions_is_tokenised_only_when_counted(exported, seed_paragraphs):
    # Standard paragraphs recur across decisions: each decision's copy is counted for windows, and
    # each copy embedded, in the same batch or a later one, uses the pieces counted for it.
    encoder = exported.fp32
    standard, other = seed_paragraphs[0], seed_paragraphs[1]
    alone = encoder.embed([standard, other])
    calls = []
    real = encoder.tokenizer

    def counted(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    encoder.__dict__["tokenizer"] = counted
    try:
        assert encoder.count_model_tokens_many([standard, other]) == [len(real(t, add_special_tokens=False)["input_ids"])
                                                                      for t in (standard, other)]  # first decision
        assert encoder.count_model_tokens_many([standard]) == encoder.count_model_tokens_many([standard])  # second, third
        assert calls == [([standard, other],)]  # the second and third decisions' copies: the pieces kept
        calls.clear()
        first = encoder.embed([standard, other, standard])  # one batch: two decisions
        assert standard in encoder._pieces and other not in encoder._pieces
        second = encoder.embed([standard])  # a later batch: the third
        assert calls == []
        assert standard not in encoder._pieces  # every counted use embedded: let go
        again = encoder.embed([standard])  # not counted this time: tokenised
        assert len(calls) == 1
    finally:
        encoder.__dict__["tokenizer"] = real
    assert np.array_equal(first, alone[[0, 1, 0]])
    assert np.array_equal(second, alone[:1]) and np.array_equal(again, alone[:1])


def test_a_text_given_several_times_is_run_once_and_gets_the_same_vector_each_time(exported, seed_paragraphs):
    encoder = exported.int8
    texts = [seed_paragraphs[2], seed_paragraphs[3], seed_paragraphs[2], "Refund", seed_paragraphs[2]]
    runs = []
    encode = encoder._encode

    def counted(batch, batch_size):
        runs.append(list(batch))
        return encode(batch, batch_size)

    encoder._encode = counted
    try:
        vectors = encoder.embed(texts)
    finally:
        del encoder._encode
    assert runs == [[seed_paragraphs[2], seed_paragraphs[3], "Refund"]]
    assert vectors.shape == (5, 384)
    assert np.array_equal(vectors[0], vectors[2]) and np.array_equal(vectors[0], vectors[4])
    assert np.array_equal(vectors[[0, 1, 3]], encoder.embed([seed_paragraphs[2], seed_paragraphs[3], "Refund"]))


def test_pieces_kept_are_bounded_and_the_text_counted_last_is_let_go_last(exported, seed_paragraphs, monkeypatch):
    from index import onnx_encoder

    encoder = exported.fp32
    monkeypatch.setattr(onnx_encoder, "PIECES_KEPT", 2)
    long_text = "The Council failed to review the care plan. " * 80  # cut into windows: never kept
    standard, first, second = seed_paragraphs[4], seed_paragraphs[5], seed_paragraphs[6]
    encoder._pieces.clear(), encoder._counted.clear()  # nothing left from other tests
    encoder.count_model_tokens_many([standard, first])
    encoder.count_model_tokens_many([standard])  # the standard paragraph again: now the newest
    encoder.count_model_tokens_many([second, long_text])
    assert list(encoder._pieces) == [standard, second] and encoder._pieces.keys() == encoder._counted.keys()
    assert encoder._counted[standard] == 2
    encoder.embed([standard, standard, second])
    assert not encoder._pieces and not encoder._counted


def test_the_window_and_size_come_from_the_models_configuration(exported):
    assert exported.fp32.max_tokens == 256
    assert exported.fp32.dimension == 384
    assert exported.fp32.pooling == "mean"
    long_text = "The Council failed to review the care plan. " * 80
    assert exported.fp32.count_model_tokens(long_text) > 256  # counted in full, for windows()
    assert len(exported.fp32.windows(long_text)) > 1


def test_several_threads_can_embed_at_once(exported, seed_paragraphs):
    embedder = exported.int8
    chunks = [seed_paragraphs[i:i + 5] for i in range(0, len(seed_paragraphs), 5)]
    expected = [embedder.embed(c) for c in chunks]
    start = threading.Barrier(len(chunks))

    def work(chunk):
        start.wait()
        embedder.count_model_tokens(" ".join(chunk))
        return embedder.embed(chunk)

    with ThreadPoolExecutor(len(chunks)) as pool:
        results = list(pool.map(work, chunks))
    for got, want in zip(results, expected):
        assert np.array_equal(got, want)


def test_batches_run_side_by_side_give_the_vectors_of_batches_run_in_turn(exported, seed_paragraphs, monkeypatch):
    embedder = exported.int8
    assert embedder.workers == (os.cpu_count() or 1)
    side_by_side = embedder.embed(seed_paragraphs, batch_size=4)
    monkeypatch.setattr(embedder, "workers", 1)
    in_turn = embedder.embed(seed_paragraphs, batch_size=4)
    assert len(seed_paragraphs) > 8  # several batches
    assert np.array_equal(side_by_side, in_turn)


def test_runs_begun_by_a_second_call_go_ahead_while_a_run_of_the_first_is_still_going(exported, seed_paragraphs):
    # The child process begins each batch it is sent this way: its threads go from one batch's
    # runs to the next's without waiting for the slowest run of the first.
    embedder = exported.int8
    calls, gate, lock = [], threading.Event(), threading.Lock()

    class Gated:
        """The real session; the second run asked of it waits at the gate."""

        def run(self, names, feeds):
            with lock:
                calls.append(len(feeds["input_ids"]))
                n = len(calls)
            if n == 2:
                assert gate.wait(60)
            return embedder.session.run(names, feeds)

    a, b = seed_paragraphs[:8], seed_paragraphs[8:16]
    shape = (embedder._pad_id, embedder.pooling, embedder.dimension)
    with ThreadPoolExecutor(max_workers=2) as runner:
        first = start_all(runner, Gated(), *embedder._batches(a, 4), *shape)
        second = start_all(runner, Gated(), *embedder._batches(b, 4), *shape)
        second_vectors = second()  # both its runs made on the thread the gate does not hold
        assert not gate.is_set() and len(calls) == 4
        gate.set()
        first_vectors = first()
    assert np.array_equal(first_vectors, embedder.embed(a, batch_size=4))
    assert np.array_equal(second_vectors, embedder.embed(b, batch_size=4))


# --- the model in a child process, for ingest ------------------------------------------------------


def _ready(embedder) -> None:
    """Until the child process started by ``bulk`` has loaded the model (it loads in the background)."""
    deadline = time.monotonic() + 60
    while not embedder._process.ready:
        assert time.monotonic() < deadline and embedder._process._failed is None, embedder._process._failed
        time.sleep(0.05)


def test_within_bulk_the_child_process_gives_the_vectors_this_process_gives(exported, seed_paragraphs):
    embedder = exported.int8
    with embedder.bulk():
        _ready(embedder)
        child = embedder._process._child
        assert child.poll() is None and child.pid != os.getpid()
        first = embedder.embed_later(seed_paragraphs[:10], batch_size=4)
        rest = embedder.embed_later(seed_paragraphs[10:], batch_size=4)  # sent while the first runs
        assert embedder._process._sent == 2
        vectors = np.vstack([first(), rest()])
        assert embedder._process._received == 2  # both came from the child
    here = np.vstack([embedder.embed(seed_paragraphs[:10], batch_size=4), embedder.embed(seed_paragraphs[10:], batch_size=4)])
    assert np.array_equal(vectors, here)  # to the last bit
    assert child.poll() == 0  # ended with the bulk
    assert embedder._process is None


def test_outside_bulk_texts_are_embedded_here(exported, seed_paragraphs):
    embedder = exported.fp32
    later = embedder.embed_later(seed_paragraphs[:4])
    assert embedder._process is None
    assert np.array_equal(later(), embedder.embed(seed_paragraphs[:4]))


def test_a_child_that_dies_is_reported_and_the_texts_are_embedded_here(exported, seed_paragraphs, caplog):
    embedder = exported.int8
    expected = embedder.embed(seed_paragraphs[:6])
    with caplog.at_level(logging.WARNING, logger="index.onnx_encoder"), embedder.bulk():
        _ready(embedder)
        embedder._process._child.kill()
        embedder._process._child.wait()
        assert np.array_equal(embedder.embed_later(seed_paragraphs[:6])(), expected)
        assert np.array_equal(embedder.embed_later(seed_paragraphs[:6])(), expected)  # and after
    assert "the encoder process stopped" in caplog.text and "embedding in this process instead" in caplog.text


def test_a_child_that_cannot_load_the_model_is_reported_and_the_texts_are_embedded_here(
    exported, seed_paragraphs, tmp_path, monkeypatch, caplog
):
    embedder = exported.fp32
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    monkeypatch.setattr(embedder, "path", broken)
    with caplog.at_level(logging.WARNING, logger="index.encoder_process"), embedder.bulk():
        process = embedder._process
        process._ready.wait(60)
        assert not process.ready and "could not load the model" in process._failed
        assert np.array_equal(embedder.embed_later(seed_paragraphs[:3])(), embedder.embed(seed_paragraphs[:3]))
    assert "the encoder process could not load the model" in caplog.text


def _started(embedder, model: Path | None = None):
    from index.encoder_process import EncoderProcess

    process = EncoderProcess(model or embedder.path, embedder.pooling, embedder._pad_id, 1)
    assert process._ready.wait(60) and process.ready, process._failed
    return process


def test_the_child_ends_when_its_input_breaks_off_part_way_through_a_batch(exported):
    # The parent killed while sending: the child must not wait for the rest for ever.
    process = _started(exported.fp32)
    process._child.stdin.write(b"\x80\x05\x95\xff\xff\x00\x00")  # the start of a pickle, cut
    process._child.stdin.close()
    assert process._child.wait(timeout=30) == 0
    process._child.stdout.close()


def test_closing_a_child_whose_vectors_nobody_reads_kills_it_instead_of_waiting(exported, seed_paragraphs):
    embedder = exported.fp32
    process = _started(embedder)
    pieces, starts, batches = embedder._batches(seed_paragraphs * 20, 16)  # a reply larger than a pipe holds
    process.submit(pieces, starts, batches)
    started = time.monotonic()
    process.close()
    # Killed: it could not write its reply, so waiting for it to exit would last the whole 10 s
    # ``close`` allows before it kills.
    assert process._child.returncode == -9 and time.monotonic() - started < 5


def test_a_child_that_cannot_write_its_reply_ends_instead_of_running_on(exported, seed_paragraphs):
    # The parent stops reading (closes its end of the replies) but keeps the child's input open:
    # the child's reply fails, and the child ends rather than take requests nobody will answer.
    embedder = exported.int8
    process = _started(embedder)
    process._child.stdout.close()
    process.submit(*embedder._batches(seed_paragraphs[:8], 4))
    try:
        assert process._child.wait(timeout=30) == 1
    finally:
        process._child.kill()
        process._child.stdin.close()


def test_a_relative_model_path_is_found_from_any_working_folder(exported, tmp_path, monkeypatch):
    monkeypatch.chdir(exported.fp32.path.parent)
    process = _started(exported.fp32, Path(exported.fp32.path.name))
    process.close()
    assert process._child.returncode == 0


# --- choosing the encoder -------------------------------------------------------------------------------


def test_when_the_export_fails_load_fastest_falls_back_to_torch_and_says_why(
    tmp_path, monkeypatch, caplog, torch_embedder
):
    monkeypatch.setenv("OMBUDSMAN_DATA", str(tmp_path))  # nothing cached: must export
    monkeypatch.setattr(onnx_encoder, "cpu_supports_int8", lambda: (True, "test CPU has VNNI"))

    def broken(target):
        raise RuntimeError("exporter exploded")

    monkeypatch.setattr(onnx_encoder, "export_onnx", broken)
    monkeypatch.setattr(onnx_encoder, "TorchEmbedder", lambda: torch_embedder)  # already loaded

    with caplog.at_level(logging.INFO, logger="index.onnx_encoder"):
        embedder = load_fastest()

    assert embedder.encoder == "torch"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("onnx-int8" in m and "exporter exploded" in m for m in warnings), warnings
    assert any("encoder onnx " in m and "exporter exploded" in m for m in warnings), warnings
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert any(m.startswith("using encoder torch") and "exporter exploded" in m for m in infos), infos


def test_without_int8_support_the_cpu_skips_int8_and_says_why(data_with_exports, monkeypatch, caplog):
    monkeypatch.setattr(onnx_encoder, "cpu_supports_int8", lambda: (False, "no AVX2 or VNNI on this CPU"))

    with caplog.at_level(logging.INFO, logger="index.onnx_encoder"):
        embedder = load_fastest()

    assert embedder.encoder == "onnx"
    messages = [r.getMessage() for r in caplog.records]
    assert any("skipping encoder onnx-int8" in m and "no AVX2 or VNNI" in m for m in messages), messages
    assert any(m.startswith("using encoder onnx:") for m in messages), messages


def test_with_int8_support_the_fastest_is_int8(data_with_exports, monkeypatch, caplog):
    monkeypatch.setattr(onnx_encoder, "cpu_supports_int8", lambda: (True, "the CPU has avx512_vnni"))
    with caplog.at_level(logging.INFO, logger="index.onnx_encoder"):
        embedder = load_fastest(("onnx-int8", "onnx", "torch"))
    assert embedder.encoder == "onnx-int8"
    assert any("using encoder onnx-int8" in r.getMessage() and "avx512_vnni" in r.getMessage()
               for r in caplog.records)


def test_when_no_encoder_loads_the_error_lists_each_failure(tmp_path, monkeypatch):
    monkeypatch.setenv("OMBUDSMAN_DATA", str(tmp_path))

    def broken(*args, **kwargs):
        raise RuntimeError("broken install")

    monkeypatch.setattr(onnx_encoder, "export_onnx", broken)
    monkeypatch.setattr(onnx_encoder, "TorchEmbedder", broken)
    with pytest.raises(EmbedderError, match=r"onnx failed .*broken install.*torch failed .*OMBUDSMAN_ENCODER"):
        load_fastest(("onnx", "torch"))


def test_unknown_encoder_names_are_refused():
    with pytest.raises(EmbedderError, match="unknown encoders"):
        load_fastest(("onnx", "tensorflow"))


@pytest.mark.parametrize(
    "flags, supported, reason",
    [
        ("fpu sse2 avx avx2 avx512f avx512_vnni", True, "avx512_vnni"),
        ("fpu sse2 avx avx2 avx_vnni", True, "avx_vnni"),
        ("fpu sse2 avx avx2 fma", True, "avx2"),
        ("fpu sse2 sse4_2 avx", False, "neither AVX2 nor VNNI"),
    ],
)
def test_int8_support_is_read_from_the_cpu_flags(flags, supported, reason):
    cpuinfo = f"processor\t: 0\nmodel name\t: Test CPU\nflags\t\t: {flags}\n\nprocessor\t: 1\nflags\t\t: {flags}\n"
    ok, why = cpu_supports_int8(cpuinfo)
    assert ok is supported
    assert reason in why


def test_this_cpu_is_described():
    ok, why = cpu_supports_int8()
    assert isinstance(ok, bool) and why


@pytest.mark.parametrize(
    "value, expected", [(None, "auto"), ("", "auto"), ("torch", "torch"), (" ONNX-int8 ", "onnx-int8")]
)
def test_the_encoder_can_be_chosen_with_an_environment_variable(monkeypatch, value, expected):
    if value is None:
        monkeypatch.delenv("OMBUDSMAN_ENCODER", raising=False)
    else:
        monkeypatch.setenv("OMBUDSMAN_ENCODER", value)
    assert encoder_from_env() == expected


def test_an_unknown_encoder_in_the_environment_is_refused_with_the_choices(monkeypatch):
    monkeypatch.setenv("OMBUDSMAN_ENCODER", "gpu")
    with pytest.raises(EmbedderError, match=r"OMBUDSMAN_ENCODER='gpu'.*auto, torch, onnx, onnx-int8"):
        encoder_from_env()


def test_onnx_embedder_is_an_embedder(exported):
    from index.embedder import Embedder

    assert isinstance(exported.fp32, OnnxEmbedder) and isinstance(exported.fp32, Embedder)
    assert exported.int8.label == "sentence-transformers/all-MiniLM-L6-v2 [onnx-int8]"


# -- the cores the ingesting process keeps to while the child runs ---------------------------------


def test_the_ingesting_process_keeps_to_a_quarter_of_the_cores_at_least_one_unless_told(monkeypatch):
    from index.encoder_process import ingest_cores

    monkeypatch.delenv("OMBUDSMAN_INGEST_CORES", raising=False)
    assert [ingest_cores(n) for n in (1, 2, 3, 4, 8, 16)] == [1, 1, 1, 1, 2, 4]
    monkeypatch.setenv("OMBUDSMAN_INGEST_CORES", "3")
    assert [ingest_cores(n) for n in (2, 8)] == [2, 3]
    for bad in ("0", "two", "-1"):
        monkeypatch.setenv("OMBUDSMAN_INGEST_CORES", bad)
        with pytest.raises(ValueError, match=f"OMBUDSMAN_INGEST_CORES must be a whole number of at least 1, not '{bad}'"):
            ingest_cores(2)


needs_two_cores = pytest.mark.skipif(
    not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2 or not os.path.isdir("/proc/self/task"),
    reason="confining threads to cores needs Linux and at least two cores to choose from")


def _thread_cores() -> list[set[int]]:
    """The cores of each thread of this process (a thread that ends meanwhile is left out)."""
    out = []
    for thread in os.listdir("/proc/self/task"):
        try:
            out.append(os.sched_getaffinity(int(thread)))
        except (ProcessLookupError, FileNotFoundError):
            pass
    return out


@needs_two_cores
def test_within_bulk_every_thread_of_this_process_keeps_to_its_cores_and_the_child_to_all(exported, monkeypatch):
    monkeypatch.delenv("OMBUDSMAN_INGEST_CORES", raising=False)
    allowed = os.sched_getaffinity(0)
    kept = set(sorted(allowed)[-max(1, len(allowed) // 4):])
    go_on, seen = threading.Event(), {}

    def older() -> None:  # started before the bulk, running through it
        go_on.wait(30)
        seen["older"] = os.sched_getaffinity(0)

    before = threading.Thread(target=older)
    before.start()
    embedder = exported.int8
    try:
        with embedder.bulk():
            _ready(embedder)
            assert os.sched_getaffinity(0) == kept
            newer = threading.Thread(target=lambda: seen.setdefault("newer", os.sched_getaffinity(0)))
            newer.start()
            newer.join()
            go_on.set()
            before.join()
            assert os.sched_getaffinity(embedder._process._child.pid) == allowed
        assert seen == {"older": kept, "newer": kept}
        assert {cores == allowed for cores in _thread_cores()} == {True}
    finally:
        go_on.set()
        before.join()


@needs_two_cores
def test_told_to_keep_to_every_core_the_ingesting_process_is_not_confined(exported, monkeypatch):
    allowed = os.sched_getaffinity(0)
    monkeypatch.setenv("OMBUDSMAN_INGEST_CORES", str(len(allowed)))
    embedder = exported.int8
    with embedder.bulk():
        _ready(embedder)
        assert os.sched_getaffinity(0) == allowed


@needs_two_cores
def test_a_model_run_in_this_process_within_bulk_has_every_core_while_it_lasts(exported, seed_paragraphs, monkeypatch):
    # The child still loading or failed: the run made here would otherwise have one core of two.
    from index import onnx_encoder as module

    monkeypatch.delenv("OMBUDSMAN_INGEST_CORES", raising=False)
    allowed = os.sched_getaffinity(0)
    kept = set(sorted(allowed)[-max(1, len(allowed) // 4):])
    during = []
    run_all = module.run_all
    monkeypatch.setattr(module, "run_all", lambda *a: (during.append(os.sched_getaffinity(0)), run_all(*a))[1])
    embedder = exported.int8
    with embedder.bulk():
        _ready(embedder)
        embedder._process._failed = "stopped for the test"
        vectors = embedder.embed_later(seed_paragraphs[:3])()
        assert os.sched_getaffinity(0) == kept
    assert during == [allowed] and vectors.shape == (3, embedder.dimension)


@needs_two_cores
def test_bulks_of_two_encoders_at_once_share_one_confinement_and_each_thread_gets_back_its_own_cores(
        exported, monkeypatch):
    monkeypatch.delenv("OMBUDSMAN_INGEST_CORES", raising=False)
    allowed = os.sched_getaffinity(0)
    kept = set(sorted(allowed)[-max(1, len(allowed) // 4):])
    own = {min(allowed)}  # a thread that had chosen its cores before
    chosen, go_on, seen = threading.Event(), threading.Event(), {}

    def particular() -> None:
        os.sched_setaffinity(0, own)
        chosen.set()
        go_on.wait(60)
        seen["after"] = os.sched_getaffinity(0)

    thread = threading.Thread(target=particular)
    thread.start()
    chosen.wait(10)
    try:
        with exported.int8.bulk():
            _ready(exported.int8)
            with exported.fp32.bulk():  # started from a confined thread
                _ready(exported.fp32)
                assert os.sched_getaffinity(exported.fp32._process._child.pid) == allowed
                assert os.sched_getaffinity(0) == kept
            assert os.sched_getaffinity(0) == kept  # the other bulk goes on
        go_on.set()
        thread.join()
        assert seen["after"] == own and os.sched_getaffinity(0) == allowed
    finally:
        go_on.set()
        thread.join()
