"""The archive: one opened store with its embedder and retriever, loaded lazily, shared by the
command line and the app so that the model and the store client are loaded once, in one place.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from pathlib import Path

from index.config import SEEDS_DIR, StoreConfig
from index.decision import Decision
from index.embedder import ENCODERS, Embedder, label_for, load_embedder
from index.ingest import IngestReport, ProgressFn, ingest
from index.catalogue import saved_generation
from index.store import Store

log = logging.getLogger(__name__)


def encoder_of_label(label: str | None) -> str | None:
    """``sentence-transformers/all-MiniLM-L6-v2 [onnx-int8]`` -> ``onnx-int8``."""
    m = re.search(r"\[([\w-]+)\]$", label or "")
    return m.group(1) if m and m.group(1) in ENCODERS else None


class Archive:
    """The indexed decisions and what reads them."""

    def __init__(self, store_config: StoreConfig, encoder: str = "auto", embedder: Embedder | None = None,
                 ranker=None) -> None:
        """``embedder``: one already loaded (benchmarks and tests share one between archives);
        ``ranker``: ranking weights other than the fitted ones (``rag.ranker.Ranker``)."""
        self.ranker = ranker
        self.store_config = store_config
        self.requested_encoder = embedder.encoder if embedder is not None and encoder == "auto" else encoder
        self.store = Store(store_config)
        self._embedder: Embedder | None = embedder
        self._retriever = None
        self._lock = threading.RLock()
        self._checked = 0.0

    def _encoder(self, rebuild: bool = False) -> str:
        """The requested encoder; with ``auto``, the one the index was built with, if any."""
        if self.requested_encoder != "auto":
            return self.requested_encoder
        recorded = None if rebuild else encoder_of_label(self.store.model_label)
        return recorded or "auto"

    @property
    def embedder(self) -> Embedder:
        with self._lock:
            if self._embedder is None:
                self._embedder = load_embedder(self._encoder())
            return self._embedder

    def ingest(self, paths: list[Path], *, prune: bool = False, rebuild: bool = False,
               progress: ProgressFn | None = None) -> IngestReport:
        with self._lock:
            encoder = self._encoder(rebuild)
            if encoder == "auto" or self._embedder is not None:
                source, label = self.embedder, self.embedder.label
            else:
                source, label = (lambda: self.embedder), label_for(encoder)
            report = ingest(paths, self.store, source, label=label, prune=prune, rebuild=rebuild,
                            progress=progress)
            self._retriever = None  # the next search sees the new content
            return report

    def ensure_index(self, seeds: Path = SEEDS_DIR) -> IngestReport | None:
        """Build the index from ``seeds`` when the store is empty (first run of the app)."""
        with self._lock:
            if self.store.has_decisions():
                return None
            log.info("no index at %s yet: building it from %s", self.store_config.description, seeds)
            return self.ingest([seeds])

    def refresh_if_changed(self, every: float = 1.0) -> bool:
        """Pick up decisions another process ingested (``ombudsman ingest`` while the app serves, or
        another app on the same Chroma server): when the saved catalogue is no longer the one the
        retriever loaded, reconnect to the store and load the new one. Checks at most once every
        ``every`` seconds (a file read); returns whether anything changed."""
        now = time.monotonic()
        with self._lock:
            if self._retriever is None or now - self._checked < every:
                return False
            self._checked = now
            loaded = self._retriever.catalogue
            if saved_generation(self.store.catalogue_dir) in ("", loaded.fingerprint) \
                    and self.store.generation() == loaded.store_generation:
                return False
            log.info("the index changed under this process; loading the new catalogue")
            self.store.reopen()
            self._retriever = None
            return True

    def decision(self, reference: str) -> Decision:
        return self.store.decision(reference)

    @property
    def retriever(self):
        with self._lock:
            if self._retriever is None:
                from rag.retriever import Retriever

                self.store.check_model(self.embedder.label)
                self._retriever = Retriever(self.store, self.embedder, self.ranker)
            return self._retriever

    def status(self) -> dict:
        """What the app's status line shows, from the loaded catalogue (counting the store's records
        would read every one of them, seconds for a whole archive on a server)."""
        decisions, paragraphs = 0, 0
        if self.store.has_decisions():
            cat = self.retriever.catalogue
            decisions, paragraphs = len(cat.decisions), len(cat.passages)
        return {
            "decisions": decisions,
            "paragraphs": paragraphs,
            "model": self.store.model_label or (self._embedder.label if self._embedder else ""),
            "store": self.store_config.description,
        }
