"""The sentences an answer quotes: whole thoughts (a list item with its lead-in, never a bare
"a) ..."), the finding before the complaint for "why" questions, remedy and fault questions
answered from the decision's facts first, and the measure of it in the eval."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from eval.answers import contains_line, opens_with_fragment
from index.config import StoreConfig
from rag.ranker import RankerError, load_ranker
from rag.retriever import Hit
from rag.selection import FEATURES, asks_fault, asks_remedy, load_selector, thoughts
from rag.parameters import SELECTION_FILE


def head(ref: str, outcome: str, category: str) -> str:
    return (f"Anytown Borough Council ({ref})\n\nCategory : {category}\n\nDecision : {outcome}\n\n"
            "Decision date : 01 Mar 2026\n\n")


FOSTERING = head("26 900 701", "Not upheld", "Children's care services > Fostering") + (
    "Summary: Mr and Mrs D complained about the fostering allowance the Council paid them. There was no fault in "
    "how the Council decided the rate of the allowance.\n\n"
    "The complaint\n\n"
    "  1. Mr and Mrs D are foster carers. Mr and Mrs D said the Council:\n"
    "  a) refused to pay double the normal fostering allowance for a child with complex needs;\n"
    "  b) did not reply to their letters about the allowance.\n\n"
    "My assessment\n\n"
    "  2. The Council paid the fostering allowance at the rate its published scheme sets for every foster carer.\n"
    "  3. There was no fault in how the Council decided the rate, and it replied to each letter within a month.\n\n"
    "Final decision\n\n"
    "  4. I have completed my investigation. There was no fault by the Council.\n")

BENEFIT = head("26 900 702", "Upheld", "Benefits and tax > Housing benefit") + (
    "Summary: The Council was at fault for delaying Mrs P's housing benefit claim for six months. This caused her "
    "distress and rent arrears. The Council has agreed to apologise and pay Mrs P £300 for the distress caused.\n\n"
    "The complaint\n\n"
    "  1. Mrs P complains the Council took six months to decide her housing benefit claim.\n\n"
    "My assessment\n\n"
    "  2. The Council should decide a claim within fourteen days of receiving the information it needs. "
    "It took six months, which is fault.\n\n"
    "Agreed action\n\n"
    "  3. Within one month the Council will apologise to Mrs P and pay her £300 for the distress caused.\n")

PARKING = head("26 900 703", "Closed after initial enquiries", "Transport and highways > Parking") + (
    "Summary: We will not investigate Mr T's complaint about a parking penalty charge because he could appeal to "
    "the traffic tribunal.\n\n"
    "The complaint\n\n"
    "  1. Mr T complains the Council gave him a parking penalty charge when he had a valid permit.\n\n"
    "My assessment\n\n"
    "  2. Mr T could appeal to the traffic tribunal and it is reasonable for him to do so.\n")


@pytest.fixture(scope="module")
def answerer(tmp_path_factory, embedder):
    from rag.answer import Answerer
    from rag.archive import Archive

    files = tmp_path_factory.mktemp("selection-decisions")
    for name, text in (("26-900-701.txt", FOSTERING), ("26-900-702.txt", BENEFIT), ("26-900-703.txt", PARKING)):
        (files / name).write_text(text, encoding="utf-8")
    archive = Archive(StoreConfig(index_dir=tmp_path_factory.mktemp("selection-index")), encoder=embedder.encoder)
    report = archive.ingest([files])
    assert not report.failed, report.failed
    return Answerer(archive, llm=None)


def body(answer) -> str:
    """The answer without its label line."""
    return answer.text.split(":\n", 1)[1]


def quoted(answer) -> list[str]:
    return [s for c in answer.citations for s in c.sentences]


def paragraph_hit(text: str, paragraph: int = 1) -> Hit:
    return Hit(id=f"26-900-799#{paragraph}", ref="26 900 799", paragraph=paragraph, section="The complaint",
               subsection="", authority="Anytown Borough Council", category="", outcome="", decision_date="",
               url="", text=text, score=1.0)


# -- whole thoughts ----------------------------------------------------------------------------------

def test_a_list_item_is_a_thought_with_its_lead_in_and_the_lead_in_is_never_alone():
    hit = paragraph_hit("Mr and Mrs D are foster carers. Mr and Mrs D said the Council:\n"
                        "a) refused to pay double the normal allowance;\n"
                        "b) did not reply to their letters.")
    found = thoughts(hit)
    assert [t.pieces for t in found] == [
        ("Mr and Mrs D are foster carers.",),
        ("Mr and Mrs D said the Council:", "refused to pay double the normal allowance;"),
        ("Mr and Mrs D said the Council:", "did not reply to their letters."),
    ]
    assert [t.item for t in found] == [False, True, True]
    assert all(piece in hit.text for t in found for piece in t.pieces)  # citations stay exact


def test_bullets_take_the_lead_in_and_a_second_sentence_of_an_item_stands_alone():
    hit = paragraph_hit("He complains the Council:\n• lost his form. It never told him.\n• did not call back.")
    assert [t.text for t in thoughts(hit)] == [
        "He complains the Council: lost his form.", "It never told him.", "He complains the Council: did not call back.",
    ]


def test_an_item_whose_lead_in_is_elsewhere_is_not_offered_on_its_own():
    hit = paragraph_hit("a) refused to pay double the normal allowance;\nThe Council replied in May.")
    assert [t.text for t in thoughts(hit)] == ["The Council replied in May."]


# -- what the question asks -----------------------------------------------------------------------

@pytest.mark.parametrize("question, remedy, fault", [
    ("what did the council agree to pay?", True, False),
    ("did she get any compensation", True, False),
    ("was the council at fault?", False, True),
    ("did the council do anything wrong with my benefit", False, True),
    ("why was the complaint closed?", False, False),
])
def test_questions_about_remedy_and_fault_are_told_apart(question, remedy, fault):
    assert (asks_remedy(question), asks_fault(question)) == (remedy, fault)


# -- answers -----------------------------------------------------------------------------------------

def test_what_was_paid_is_answered_with_the_sum_first_and_the_sentence_it_rests_on(answerer):
    """The first line is stated from the decision's facts, on a line of its own; the quotes follow."""
    a = answerer.answer("What did Anytown council agree to pay Mrs P for the housing benefit delay?")
    assert a.found
    assert body(a).startswith("£300 for distress caused.\n")
    first = a.citations[0]
    assert "£300" in first.sentences[0] and first.sentences[0] in first.hit.text
    assert first.hit.ref == "26 900 702"


def test_nothing_is_paid_when_no_fault_was_found_and_the_finding_is_quoted(answerer):
    a = answerer.answer("What did Anytown council agree to pay Mr and Mrs D about their fostering allowance?")
    assert a.found and a.citations[0].hit.ref == "26 900 701"
    assert body(a).startswith("Nothing: the Ombudsman found no fault.\n")
    assert "no fault" in a.citations[0].sentences[0]
    assert not any(s.startswith(("a)", "b)")) for s in quoted(a))


def test_a_fault_question_is_answered_yes_or_no_first(answerer):
    no = answerer.answer("Was Anytown council at fault over Mr and Mrs D's fostering allowance?")
    assert body(no).startswith("No: the Ombudsman found no fault.\n")
    yes = answerer.answer("Was Anytown council at fault for taking six months over Mrs P's housing benefit?")
    assert body(yes).startswith("Yes: the Ombudsman found fault.\n")
    closed = answerer.answer("Was Anytown council at fault over Mr T's parking penalty charge?")
    assert body(closed).startswith("The Ombudsman did not investigate, so made no finding on fault.\n")
    assert "appeal to the traffic tribunal" in closed.citations[0].sentences[0]


def test_a_why_question_leads_with_the_finding_not_the_complaint(answerer):
    a = answerer.answer("Why was Mr and Mrs D's complaint about the fostering allowance not upheld?")
    assert a.found and a.citations[0].hit.ref == "26 900 701"
    assert "no fault" in quoted(a)[0]
    assert not quoted(a)[0].startswith("Mr and Mrs D said")


def test_a_question_about_the_complaint_quotes_items_with_their_lead_in(answerer):
    a = answerer.answer("What did Mr and Mrs D complain the council did about their fostering allowance?")
    assert "Mr and Mrs D said the Council: refused to pay double the normal fostering allowance" in a.text
    assert not opens_with_fragment(a)
    for c in a.citations:
        assert all(s in c.hit.text for s in c.sentences)


# -- the measure -------------------------------------------------------------------------------------

def answer_of(text: str, pieces: list[str]) -> SimpleNamespace:
    return SimpleNamespace(found=True, text=text, citations=[SimpleNamespace(sentences=pieces)])


def test_the_eval_counts_a_line_quoted_across_two_sentences_and_ignores_markers_and_bullets():
    a = answer_of("Label:\nThere was no fault. [1] The Council replied. [1]",
                  ["There was no fault.", "The Council replied."])
    assert contains_line(a, "There was no fault. The Council replied.")
    assert contains_line(a, "• The Council replied.")
    assert not contains_line(a, "There was fault.")
    assert not contains_line(SimpleNamespace(found=False, text="", citations=[]), "There was no fault.")


@pytest.mark.parametrize("pieces, fragment", [
    (["a) refused to pay the allowance;"], True),
    (["refused to pay the allowance."], True),
    (["Mr and Mrs D said the Council:"], True),
    (["Mr and Mrs D said the Council:", "refused to pay the allowance;"], False),
    (["There was no fault by the Council."], False),
])
def test_an_answer_opening_with_a_fragment_is_counted(pieces, fragment):
    assert opens_with_fragment(answer_of(" ".join(pieces), pieces)) is fragment


def test_the_selection_weights_record_how_they_were_fitted_and_stale_ones_name_the_command(tmp_path):
    selector = load_selector()
    assert selector.features == FEATURES
    assert selector.meta["command"].startswith("python -m eval.fit_sentences")
    assert selector.meta["margin"] > 0 and selector.meta["min_sentences"] >= 1
    assert selector.meta["cross_validated_contains_line"] > 0.7
    stale = json.loads(SELECTION_FILE.read_text())
    stale["features"] = stale["features"][:-1] + ["a_feature_no_longer_computed"]
    path = tmp_path / "selection.json"
    path.write_text(json.dumps(stale))
    with pytest.raises(RankerError, match="eval.fit_sentences"):
        load_ranker(path, FEATURES, "python -m eval.fit_sentences --write")
