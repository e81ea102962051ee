"""BM25 without scoring every passage: the pruned search finds exactly the passages, and the
scores, that scoring every posting of every word finds, with filters and with dead copies."""

from __future__ import annotations

import numpy as np
import pytest

from index import catalogue as cat
from index.catalogue import Catalogue
from tests.test_catalogue import copy_index

QUESTIONS = [
    "why did the council refuse to pay for school transport",
    "the council did not follow its safety plan for the child",
    "delay in carrying out an education health and care plan annual review",
    "council council council complaint",  # a word repeated counts each time
    "section 26(6)(c) alternative remedy tribunal",
    "housing benefit overpayment recovered from my wages",
    "planning permission for the extension next door blocked my light",
    "care home fees charged after my mother died",
    "complaint",
    "zzzunknownword council",
]


def exhaustive(c: Catalogue, question: str, k: int, allowed: np.ndarray | None) -> list[tuple[int, float]]:
    """The best ``k`` by scoring every passage: score descending, then position."""
    scores = c.lexical.scores(question)
    if scores is None:
        return []
    keep = scores > 0
    if allowed is not None:
        keep &= allowed
    positions = np.flatnonzero(keep)
    order = np.lexsort((positions, -scores[positions]))[:k]
    return [(int(positions[o]), float(scores[positions[o]])) for o in order]


@pytest.fixture(scope="module")
def corpus_catalogue(corpus_archive) -> Catalogue:
    return Catalogue.load(corpus_archive.store)


@pytest.mark.parametrize("k", [1, 10, 100])
def test_pruned_search_finds_the_same_passages_and_scores_as_scoring_every_passage(corpus_catalogue, k):
    c = corpus_catalogue
    rng = np.random.default_rng(3)
    third = rng.random(c.size) < 0.33
    upheld = cat.PassageSet(c, c.by_outcome["upheld"]).mask()
    for question in QUESTIONS:
        for allowed in (None, third, upheld):
            assert c.lexical.query(question).top(k, allowed) == exhaustive(c, question, k, allowed), question


def test_scores_at_any_positions_equal_the_full_scores_to_the_bit(corpus_catalogue):
    c = corpus_catalogue
    everywhere = np.arange(c.size)
    for question in QUESTIONS:
        full = c.lexical.scores(question)
        got = c.lexical.query(question).at(everywhere)
        assert np.array_equal(got, full if full is not None else np.zeros(c.size, np.float32)), question


def test_best_is_the_highest_score_of_any_passage_even_when_a_filter_is_set(corpus_catalogue):
    c = corpus_catalogue
    question = QUESTIONS[0]
    scores = c.lexical.query(question)
    assert scores.top(5, cat.PassageSet(c, c.by_outcome["upheld"]).mask())
    assert scores.best == pytest.approx(float(c.lexical.scores(question).max()), abs=0)


def test_which_words_a_passage_has_comes_with_each_words_idf(corpus_catalogue):
    c = corpus_catalogue
    question = "safety plan zzzunknownword"
    pid = "24-016-809#15"  # "The Council acknowledges it should have held the strategy meeting ..."
    position = c.position(pid)
    words = c.lexical.query(question).contains([position], unindexed=True)
    postings = c.lexical.postings(question, unindexed=True)
    assert [idf for idf, _ in words] == [idf for idf, _ in postings]
    assert [bool(has[0]) for _, has in words] == [position in docs for _, docs in postings]
    assert words[-1][0] == c.lexical.idf(0) and not words[-1][1].any()  # the unknown word: rarest, found nowhere


def test_a_decision_written_again_scores_only_its_live_copy(seeds_archive, embedder, tmp_path):
    archive = copy_index(seeds_archive, tmp_path / "index", embedder)
    store = archive.store
    records = store.complete_records()
    cat.add_parts(store, cat._parts_from_store(store, ["24 016 809"], records))  # a newer copy in a second segment
    c = Catalogue.load(store)
    assert len(c.segments) == 2 and int((~c.live).sum()) == 19  # the older copy's 18 paragraphs and Summary
    for question in ("safety plan strategy meeting", "complaint council social worker"):
        got = c.lexical.query(question).top(50)
        assert got == exhaustive(c, question, 50, None)
        assert all(c.live[p] for p, _ in got)
        assert c.lexical.document_frequency("strategi") == len(c.lexical.postings("strategy")[0][1])


def test_the_best_score_after_a_restricted_search_is_still_the_best_of_all(corpus_catalogue):
    # A restricted search's best passage is a floor the highest score of any passage starts from.
    c = corpus_catalogue
    upheld = cat.PassageSet(c, c.by_outcome["upheld"]).mask()
    for question in QUESTIONS:
        scores = c.lexical.query(question)
        scores.top(10, ~upheld)
        full = c.lexical.scores(question)
        assert scores.best == (float(full.max()) if full is not None else 0.0), question


@pytest.mark.parametrize("k", [1, 10, 100])
def test_the_best_of_all_is_exact_after_a_first_search_among_few_passages(corpus_catalogue, k):
    # The highest score of all starts from the best of a restricted search (a floor); it stays
    # exact however few passages that search allowed, and the search's own passages stay exactly
    # those of scoring every passage.
    c = corpus_catalogue
    rng = np.random.default_rng(5)
    sparse = rng.random(c.size) < 0.02
    one_decision = np.zeros(c.size, dtype=bool)
    one_decision[c.position("24-016-809#1"): c.position("24-016-809#15") + 1] = True
    upheld = cat.PassageSet(c, c.by_outcome["upheld"]).mask()
    for question in QUESTIONS:
        full = c.lexical.scores(question)
        for allowed in (sparse, one_decision, ~upheld):
            c.lexical._best.clear()  # not known from an earlier search
            scores = c.lexical.query(question)
            assert scores.top(k, allowed) == exhaustive(c, question, k, allowed), question
            assert scores.best == (float(full.max()) if full is not None else 0.0), question


def test_tokenising_drops_bm25s_stopwords_without_importing_bm25s_or_scipy():
    # The stopword list is read from bm25s' module alone: the package's import pulls in scipy.
    import subprocess
    import sys

    from index.config import PROJECT_ROOT

    code = ("import sys; from index.lexical import tokenize; "
            "print(tokenize('Because the Council would not pay for their travel'), "
            "'bm25s' in sys.modules, 'scipy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['becaus', 'council', 'pay', 'travel'] False False"
