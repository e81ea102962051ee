"""How long an extractive answer takes, question by question, with nothing cached between them.

    python -m eval.time_answers [--index DIR] [--set eval/questions.jsonl] [--n 200]

The first ``n`` questions of the set are each answered once after a warm-up of twenty (the model
loaded, the catalogue open); the sentence embeddings an answer makes are dropped before each
question, so each one pays for its own. Prints p50 and p95 in milliseconds.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from eval.run import QUESTIONS, load_questions
from index.config import StoreConfig
from rag.answer import Answerer
from rag.archive import Archive


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", help="the index (default: OMBUDSMAN_INDEX or data/index)")
    parser.add_argument("--chroma-url", default=None)
    parser.add_argument("--set", type=Path, default=QUESTIONS)
    parser.add_argument("--n", type=int, default=200)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    answerer = Answerer(Archive(StoreConfig.from_env(args.index, args.chroma_url)), llm=None)
    questions = [q.question for q in load_questions(args.set)][: args.n]
    for q in questions[:20]:
        answerer.answer(q)
    times = []
    for q in questions:
        answerer.similarity.forget()
        start = time.perf_counter()
        answerer.answer(q)
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    print(f"{len(times)} answers: p50 {times[len(times) // 2]:.0f} ms, p95 {times[int(0.95 * (len(times) - 1))]:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
