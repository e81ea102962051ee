"""Answers come from the decision the question names: its complainant, its council, its reference.

When no indexed decision fits what the question names (Mrs D at Surrey, when Surrey's fostering
decision is about Mrs X), the answer says so and shows the closest decisions as not matching; it
never answers about Mrs X as if she were Mrs D. A tiny index of look-alike decisions made here
(fostering allowances at two councils, three complainants) is the whole archive.
"""

from __future__ import annotations

import pytest

from index import config
from rag.answer import Answerer
from rag.plan import COUNCIL, MISMATCH

pytestmark = pytest.mark.slow


def _decision(authority: str, ref: str, outcome: str, when: str, summary: str, complaint: str, finding: str) -> str:
    return f"""{authority} ({ref})

Category : Children's care services > Fostering

Decision : {outcome}

Decision date : {when}

The Ombudsman's final decision:

Summary: {summary}

The complaint

  1. {complaint}

Back to top

My assessment

  1. {finding}

Back to top

Final decision

  1. {summary}

Back to top
"""


DECISIONS = {
    # Surrey, about Mrs X: the words of the questions below match it best.
    "26-900-101.txt": _decision(
        "Surrey County Council", "26 900 101", "Upheld", "12 Jan 2026",
        "The Council delayed paying Mrs X the fostering allowance for the child in her care. It has agreed to "
        "apologise and pay the allowance owed with £200 for her distress.",
        "Mrs X complains the Council did not pay her fostering allowance for four months after a child was placed with her.",
        "The Council's records show the allowance was not set up because a form was lost. That is fault.",
    ),
    # Nottinghamshire, about Mr and Mrs D: the same subject, other words.
    "26-900-102.txt": _decision(
        "Nottinghamshire County Council", "26 900 102", "Not upheld", "03 Feb 2026",
        "There was no fault in how the Council decided the rate it pays Mr and Mrs D as foster carers.",
        "Mr and Mrs D complain the Council pays them the standard rate although the child they look after has "
        "complex needs.",
        "The Council assessed the child's needs against its published banding scheme and recorded its reasons. "
        "It was entitled to decide the standard band applied.",
    ),
    # Nottinghamshire again, another complainant: a second decision for the council.
    "26-900-103.txt": _decision(
        "Nottinghamshire County Council", "26 900 103", "Upheld", "17 Mar 2026",
        "The Council failed to review Ms K's fostering approval on time. It has agreed to apologise.",
        "Ms K complains the Council took a year to carry out her annual foster carer review.",
        "The review was eight months late and the Council has not explained why. That is fault.",
    ),
}
SURREY_X, NOTTS_D, NOTTS_K = "26 900 101", "26 900 102", "26 900 103"


@pytest.fixture(scope="module")
def answerer(tmp_path_factory, embedder) -> Answerer:
    from rag.archive import Archive

    folder = tmp_path_factory.mktemp("named-decisions")
    for name, text in DECISIONS.items():
        (folder / name).write_text(text, encoding="utf-8")
    archive = Archive(config.StoreConfig(index_dir=tmp_path_factory.mktemp("named-index")), embedder=embedder)
    assert not archive.ingest([folder]).failed
    return Answerer(archive, llm=None)


def cited(answer) -> set[str]:
    return {c.hit.ref for c in answer.citations}


def test_a_complainant_no_decision_has_at_that_council_is_not_answered_about_someone_else(answerer):
    a = answerer.answer("why did Surrey not pay Mrs D's fostering allowance?")
    assert not a.found and a.refused == MISMATCH
    assert not a.citations
    assert "Mrs D" in a.text and "not matching" in a.text
    assert a.closest and a.closest[0].ref == SURREY_X  # the closest decision is shown, labelled, to judge


def test_a_complainant_named_picks_their_decision_over_a_closer_worded_one(answerer):
    a = answerer.answer("why wasn't Mr and Mrs D's fostering allowance paid?")
    assert a.found
    assert cited(a) == {NOTTS_D}
    assert a.citations[0].hit.ref == NOTTS_D


def test_a_title_users_swap_still_names_the_complainant(answerer):
    # The decision says Ms K; a user may well write Mrs K or Miss K.
    for alias in ("Ms K", "Mrs K", "Miss K"):
        a = answerer.answer(f"why was {alias}'s foster carer review late?")
        assert a.found and a.citations[0].hit.ref == NOTTS_K, alias


def test_a_different_title_is_a_different_complainant(answerer):
    a = answerer.answer("why was Mr K's foster carer review late?")
    assert not a.found and a.refused == MISMATCH


def test_a_council_named_keeps_the_answer_to_its_decisions(answerer):
    a = answerer.answer("nottinghamshire pays us the standard fostering rate for a child with complex needs")
    assert a.found and cited(a) <= {NOTTS_D, NOTTS_K}


def test_a_misspelt_council_is_still_that_council(answerer):
    a = answerer.answer("nottinghamshre foster carer review late")
    assert a.found and a.citations[0].hit.ref == NOTTS_K


def test_a_council_that_is_not_indexed_is_refused_by_name_even_misspelt(answerer):
    for question in ("why did Lincolnshire not pay my fostering allowance?", "lincolnshre fostering allowance late"):
        a = answerer.answer(question)
        assert not a.found and a.refused == COUNCIL, question
        assert "Lincolnshire" in a.note


def test_a_reference_keeps_the_answer_to_that_decision_whatever_the_words(answerer):
    a = answerer.answer("26-900-102 why was the fostering allowance not paid?")
    assert a.found and cited(a) == {NOTTS_D}
