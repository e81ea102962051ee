"""Where things live and how the process is kept offline: one place for paths and environment.

Importing this module sets the variables that stop libraries from reaching the network
(model hubs, telemetry, analytics) before any of them is imported.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "GRADIO_ANALYTICS_ENABLED": "False",
    "ANONYMIZED_TELEMETRY": "False",
    "ORT_DISABLE_TELEMETRY": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TRANSFORMERS_VERBOSITY": "error",
}
for _k, _v in OFFLINE_ENV.items():
    os.environ.setdefault(_k, _v)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SEEDS_DIR = PROJECT_ROOT / "seeds"


def data_dir() -> Path:
    """The project's data folder (index, caches): ``OMBUDSMAN_DATA`` or ``<project>/data``."""
    return Path(os.environ.get("OMBUDSMAN_DATA") or PROJECT_ROOT / "data")


def default_index_dir() -> Path:
    """The local index: ``OMBUDSMAN_INDEX`` or ``<data>/index``."""
    return Path(os.environ.get("OMBUDSMAN_INDEX") or data_dir() / "index")


def whole_setting(variable: str, default: int) -> int:
    """The whole number ``variable`` sets (``default`` when unset or blank); one that is not a whole
    number of at least 1 is refused, naming the variable (ingest's batch sizes and cores)."""
    raw = os.environ.get(variable, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{variable} must be a whole number of at least 1, not {raw!r}")
    return value


@dataclass(frozen=True)
class StoreConfig:
    """Which store to open: a local folder, or a Chroma server (then ``index_dir`` holds the lexical index)."""

    index_dir: Path
    chroma_url: str = ""

    @classmethod
    def from_env(cls, index_dir: str | Path | None = None, chroma_url: str | None = None) -> "StoreConfig":
        url = chroma_url if chroma_url is not None else os.environ.get("OMBUDSMAN_CHROMA_URL", "")
        return cls(Path(index_dir) if index_dir else default_index_dir(), url.strip())

    @property
    def description(self) -> str:
        return f"Chroma server {self.chroma_url}" if self.chroma_url else f"local index {self.index_dir}"
