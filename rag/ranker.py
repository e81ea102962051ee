"""The ranking function: a linear model over the named evidence of ``rag.evidence``, with weights
fitted on the tuning questions by ``python -m eval.fit_ranker`` and read from one file.

A higher score means a better passage for the question. The file records the features it was
fitted on; an index of other features, or a missing file, is an error that says what to run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from rag.evidence import FEATURES
from rag.parameters import RANKER_FILE


class RankerError(RuntimeError):
    pass


@dataclass(frozen=True)
class Ranker:
    """Standardise each feature, then weigh it: ``score = ((x - mean) / scale) @ weights + bias``."""

    features: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    bias: float = 0.0
    meta: dict | None = None

    def score(self, matrix: np.ndarray) -> np.ndarray:
        if matrix.shape[1] != len(self.features):
            raise RankerError(f"the ranking weights have {len(self.features)} features, the evidence {matrix.shape[1]}")
        return ((matrix - self.mean) / self.scale) @ self.weights + self.bias

    def probability(self, matrix: np.ndarray) -> np.ndarray:
        """The scores as probabilities that each passage answers the question (the fit calibrates
        the bias and the weights' scale on the tuning questions)."""
        return 1.0 / (1.0 + np.exp(-self.score(matrix)))

    def to_json(self) -> dict:
        return {
            **(self.meta or {}),
            "features": list(self.features),
            "mean": [round(float(v), 6) for v in self.mean],
            "scale": [round(float(v), 6) for v in self.scale],
            "weights": [round(float(v), 6) for v in self.weights],
            "bias": round(float(self.bias), 6),
        }

    def save(self, path: Path = RANKER_FILE) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=1, ensure_ascii=False) + "\n")
        tmp.replace(path)

    @classmethod
    def from_json(cls, data: dict) -> "Ranker":
        features = tuple(data["features"])
        meta = {k: v for k, v in data.items() if k not in ("features", "mean", "scale", "weights", "bias")}
        return cls(features, np.asarray(data["mean"], float), np.asarray(data["scale"], float),
                   np.asarray(data["weights"], float), float(data.get("bias", 0.0)), meta)


@lru_cache(maxsize=8)
def load_ranker(path: Path = RANKER_FILE, features: tuple[str, ...] = FEATURES,
                command: str = "python -m eval.fit_ranker") -> Ranker:
    """Fitted linear weights (the ranking function's by default; ``rag.selection`` keeps its own
    for sentences); an error naming ``command``, which writes them, when the file is missing or
    was fitted on other features than ``features``."""
    try:
        ranker = Ranker.from_json(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError) as e:
        raise RankerError(f"cannot read the fitted weights {path} ({e}); write them with `{command}`") from None
    if ranker.features != features:
        raise RankerError(f"the weights in {path} were fitted on other features than this version "
                          f"computes; fit them again with `{command}`")
    return ranker
