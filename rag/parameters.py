"""Every constant that shapes ranking or answers, each with where its value came from.

Figures quoted here come from the tuning questions (``eval/questions.jsonl``) unless a comment
says otherwise; the unseen questions (``eval/unseen.jsonl``) are never used to choose a value.
Commands are run from the project folder against an index of the seeds and the corpus.
"""

from __future__ import annotations

from pathlib import Path

# -- retrieval ------------------------------------------------------------------------------------

# Candidates taken from each retriever (dense, BM25) before the ranking function orders their
# union. `python -m eval.fit_ranker`: 274 of the 277 tuning questions it ranks have a gold
# passage among the candidates; the other 3 have none in either retriever's first 100.
CANDIDATES = 100

# The rank offset of reciprocal rank fusion (Cormack, Clarke and Buettcher, 2009: 60). The fused
# score is one feature of the ranking function, whose weight is fitted; 60 is kept as published.
RRF_K = 60

# The fitted weights of the ranking function: written by `python -m eval.fit_ranker`, which
# records in the file the command, the date and its cross-validated figures.
RANKER_FILE = Path(__file__).resolve().parent / "ranker.json"

# At most this many passages of one decision before other decisions get a place in a result
# list, so that a list of ten shows more than one decision. `python -m eval.fit_ranker` reports
# the cross-validated figures for caps of 1, 2, 3, 5 and none: Recall@5 0.842, 0.876, 0.898,
# 0.922, 0.922 (MRR@10 0.827 to 0.849); 5 loses nothing against no cap and keeps two decisions
# in a list of ten.
PER_DECISION = 5

# A search restricted to at most this many passages scores them exactly from the catalogue's
# vector copy; larger ones probe the clusters as an unrestricted search does. Speed only.
EXACT_DENSE_LIMIT = 50_000

# Clusters of a large segment a dense search scores (of about one per 400 windows): the share of
# exact search's 100 nearest passages it finds is printed by `python -m eval.bench_search` as
# dense_recall_at_100 (0.97 at 100,000 paragraphs with 32; every probe more costs ~0.15 ms).
DENSE_PROBES = 64

# Decisions a retriever keeps parsed after reading them for passages its catalogue does not hold (most
# recently used; hits come from the catalogue): speed only. A decision's parsed JSON is a few
# kilobytes, so 4,096 of them cost tens of megabytes.
DECISION_CACHE = 4096
# Filters whose passages a retriever keeps (most recently used): speed only; each costs a bool per
# passage of the archive (1.5 MB at 1.5 million paragraphs) and, for a filter of at most
# EXACT_DENSE_LIMIT passages, its windows' vectors gathered (at most about 20 MB), which only the
# last FILTER_BLOCKS filters keep.
FILTER_CACHE = 16
FILTER_BLOCKS = 4
# Question embeddings a retriever keeps (most recently used): speed only (1.5 KB each).
QUESTION_CACHE = 1024

# -- query understanding ----------------------------------------------------------------------------

# Misspelt council names are recognised in words of at least this many letters (rag.query), one
# slip away from an indexed council's one-word name. Shorter names are one slip from everyday
# words (Sutton/button, Medway/midway, Dover/cover).
FUZZY_MIN_LETTERS = 7

# -- answers --------------------------------------------------------------------------------------

# Paragraphs retrieved to answer a question.
RETRIEVED = 10

# Below this probability (the ranking function's, that its first passage answers the question)
# nothing indexed answers the question: "not found" (a topic nothing covers). Chosen by
# `python -m eval.fit_not_found` (rerun it after `eval.fit_ranker`, whose calibration it reads) as
# the lowest threshold at which nine in ten of the tuning negatives are refused, counting those
# the rules refuse (a council not indexed, a complainant no relevant decision has; that check
# uses this threshold too, so the value is the fixed point of rerunning the command until it
# stops changing): 49 of the 78 are refused by rules, and 0.142 refuses 22 of the other 29 while
# losing 22 of 295 answerable questions. The best cosine between the question and a retrieved sentence (the
# measure used before the ranking function) needs 0.523 for 22 of them and loses 54.
ANSWERABLE_FROM = 0.142

# The sentences of this many of the first retrieved paragraphs are compared with the question for
# the floor below (speed: each is embedded; 3 of 10 cut the time of an answer by half, measured
# with `python -m eval.load`).
SENTENCE_HITS = 3

# ... and whatever that probability, below this relevance of the best retrieved sentence (its
# cosine to the question). The probability is calibrated on the 150 decisions of the seeds and
# the corpus; in a much smaller archive (the two seeds the app starts with) every decision is a
# top candidate and an unrelated question scores higher, while sentence similarity does not
# depend on the archive's size. `python -m eval.fit_not_found`: the highest floor that refuses at
# most 1% of the answerable tuning questions the probability answers (2 of 273): 0.348.
SENTENCE_FLOOR = 0.34

# When the question's only cues (an alias, an outcome, a council) fit several decisions, the best
# this many are answered in turn.
MAX_DECISIONS = 3

# -- the sentences an answer quotes -------------------------------------------------------------------

# The fitted weights of the sentence selection (``rag.selection``): written by
# `python -m eval.fit_sentences --write`, which records in the file the command, the date and its
# cross-validated figures.
SELECTION_FILE = Path(__file__).resolve().parent / "selection.json"

# Thoughts quoted in an answer about one decision, and per decision when several are answered in
# turn: the lengths answers had before the selection was fitted (a reader's few sentences).
MAX_SENTENCES = 4
PER_DECISION_SENTENCES = 2

# A thought joins the answer when its fitted score is within a margin of the best one's (the
# scores are log-odds), and an answer quotes at least a minimum number of thoughts. Both are chosen
# by `python -m eval.fit_sentences` with the weights, by cross-validated share of tuning answers
# containing their marked line (the smallest margin within 0.01 of the best), and stored with
# them in rag/selection.json ("margin", "min_sentences", and "grid": the share at each tried).
