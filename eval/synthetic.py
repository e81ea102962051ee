"""Large synthetic archives for benchmarks, recombined from the paragraphs of real decisions.

Each synthetic paragraph is a run of sentences drawn from different real paragraphs, so its words
and length look like a decision's. Its vector is the normalised mean of its sentences' vectors
(each sentence embedded once), which places it where the encoder would put such a paragraph
closely enough for timing searches, without embedding a million paragraphs.
"""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path
from typing import Callable

import numpy as np

from index.decision import Decision, Paragraph
from index.embedder import Embedder
from index.parse import parse_file
from index.passage import passages_of
from index.sentence import split_sentences
from index import catalogue
from index.catalogue import parts_of_writes
from index.ingest import SEGMENT_WINDOWS
from index.store import DecisionWrite, Store


def real_decisions(folders: list[Path]) -> list[Decision]:
    out = []
    for folder in folders:
        for path in sorted(folder.glob("*.txt")):
            out.append(parse_file(path))
    return out


# Passages of a synthetic decision (its paragraphs and Summary), at least: the archive's mean, about
# 1.5 million paragraphs in about 57,500 decisions. The corpus's excerpts are shorter, so their
# paragraphs are used again until a synthetic decision is as long as an archive one.
PASSAGES_PER_DECISION = 26


class Recombiner:
    """Makes synthetic decisions (with one vector per passage) from real ones."""

    def __init__(self, decisions: list[Decision], embedder: Embedder, seed: int = 7) -> None:
        self.seed = seed
        self.templates = [d for d in decisions if d.paragraphs]
        sentences: list[str] = []
        for d in decisions:
            for p in d.paragraphs:
                sentences.extend(s for s in split_sentences(p.text) if len(s) > 20)
        self.sentences = sorted(set(sentences))
        self.vectors = embedder.embed(self.sentences)
        self.lengths = [max(1, len(split_sentences(p.text))) for d in self.templates for p in d.paragraphs]

    def _paragraph(self, rng: random.Random) -> tuple[str, np.ndarray]:
        n = rng.choice(self.lengths)
        picks = [rng.randrange(len(self.sentences)) for _ in range(n)]
        text = " ".join(self.sentences[i] for i in picks)
        v = self.vectors[picks].mean(axis=0)
        return text, v / (np.linalg.norm(v) or 1.0)

    def decision(self, i: int) -> tuple[Decision, np.ndarray]:
        """Synthetic decision number ``i``: a real decision's shape and metadata, new text and
        reference; the same for the same ``i`` (so a fill can resume where it stopped)."""
        rng = random.Random(self.seed * 1_000_003 + i)
        t = self.templates[i % len(self.templates)]
        paragraphs, vectors = [], []
        while len(paragraphs) + 1 < PASSAGES_PER_DECISION:  # the template's paragraphs, again if need be
            for p in t.paragraphs:
                text, v = self._paragraph(rng)
                paragraphs.append(Paragraph(len(paragraphs) + 1, p.section, text, p.subsection, p.statutes))
                vectors.append(v)
        summary, sv = self._paragraph(rng)
        ref = f"{90 + i // 1_000_000 % 10:02d} {i // 1000 % 1000:03d} {i % 1000:03d}"
        d = replace(
            t, reference=ref, summary=summary, paragraphs=tuple(paragraphs),
            decision_date=(t.decision_date or date(2020, 1, 1)) + timedelta(days=i % 365), url="", source="",
        )
        d = replace(d, url=f"https://www.lgo.org.uk/decisions/synthetic/{d.slug}")
        return d, np.vstack([sv, *vectors]).astype(np.float32)


def fill(store: Store, recombiner: Recombiner, paragraphs: int, label: str, batch: int = 200,
         progress: Callable[[int], None] | None = None, start: tuple[int, int] = (0, 0)) -> int:
    """Add synthetic decisions to ``store`` until it holds about ``paragraphs`` passages, adding
    them to the catalogue in segments as ingest does. ``start``: (paragraphs, decisions) stored by
    an earlier fill of the same store, which this one continues."""
    total, i = start  # paragraphs already stored, decisions already made (to resume a fill)
    parts, windows = [], 0
    while total < paragraphs:
        writes = []
        for _ in range(batch):
            d, vectors = recombiner.decision(i)
            i += 1
            passages = passages_of(d)
            writes.append(DecisionWrite(d, passages, [[p.text] for p in passages], vectors))
            total += len(passages)
            if total >= paragraphs:
                break
        store.write_decisions(writes, label)
        parts.extend(parts_of_writes(writes))
        windows += sum(len(w.vectors) for w in writes)
        if windows >= SEGMENT_WINDOWS or total >= paragraphs:
            catalogue.add_parts(store, parts)
            parts, windows = [], 0
        if progress:
            progress(total)
    catalogue.refresh(store)  # as ingest ends: the catalogue records the store's generation
    catalogue.compact_if_mostly_new(store, total - start[0])
    return total
