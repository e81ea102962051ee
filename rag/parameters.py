"""Every constant that shapes ranking or answers, each with where its value came from.

Figures quoted here come from the tuning questions (``eval/questions.jsonl``) unless a comment
says otherwise; the unseen questions (``eval/unseen.jsonl``) are never used to choose a value.
Commands are run from the project folder against an index of the seeds and the corpus.
"""

from __future__ import annotations

from pathlib import Path

# -- retrieval ------------------------------------------------------------------------------------

# Candidates taken from each retriever (dense, BM25) before the ranking function orders their
# union. `python -m eval.fit_ranker` prints the share of tuning questions with a gold passage
# among the candidates (MEASURE).
CANDIDATES = 100

# The rank offset of reciprocal rank fusion (Cormack, Clarke and Buettcher, 2009: 60). The fused
# score is one feature of the ranking function, whose weight is fitted; 60 is kept as published.
RRF_K = 60

# The fitted weights of the ranking function: written by `python -m eval.fit_ranker`, which
# records in the file the command, the date and its cross-validated figures.
RANKER_FILE = Path(__file__).resolve().parent / "ranker.json"

# At most this many passages of one decision before other decisions get a place in a result
# list, so that a list of ten shows more than one decision. `python -m eval.fit_ranker` reports
# the cross-validated figures for several caps (MEASURE).
PER_DECISION = 5

# A search restricted to at most this many passages scores them exactly from the catalogue's
# vector copy; larger restrictions over-fetch from Chroma and filter. Speed only, not quality.
EXACT_DENSE_LIMIT = 50_000

# -- query understanding ----------------------------------------------------------------------------

# Misspelt council names are recognised in words of at least this many letters (rag.query), one
# slip away from an indexed council's one-word name. Shorter names are one slip from everyday
# words (Sutton/button, Medway/midway, Dover/cover).
FUZZY_MIN_LETTERS = 7
