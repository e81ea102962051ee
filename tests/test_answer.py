"""Grounded answers: every sentence quoted from the paragraph it cites, "not found" when nothing
indexed answers, several decisions named when several fit, follow-ups kept to the decision under
discussion."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner

from eval.answers import answer_checks, score_answers, scorable
from eval.run import Question, load_sets
from rag.answer import Answer, Answerer, Turn
from rag.councils import named_places
from rag.retriever import Filters
from ui.cli import main

WHY_CLOSED = "why was the complaint by Mr X closed?"


@pytest.fixture(scope="module")
def seeds(seeds_archive):
    return Answerer(seeds_archive, llm=None)


def cli(archive, *args):
    return CliRunner().invoke(main, ["--index", str(archive.store_config.index_dir), "--encoder",
                                     archive.embedder.encoder, *args])


def quoted_sentences(answer: Answer) -> list[tuple[str, int]]:
    """(sentence, marker) for every marked sentence of the answer text."""
    out = []
    for line in answer.text.split("\n"):
        for m in re.finditer(r"(.+?) \[(\d+)\](?: |$)", line):
            sentence = m.group(1).split(":\n")[-1].strip()
            out.append((sentence, int(m.group(2))))
    return out


def assert_grounded(answer: Answer) -> None:
    """Each marked sentence is one its citation quotes (or a lead-in and its item), and each quoted
    sentence is in the paragraph. A line with no marker (the facts' first line) quotes nothing."""
    for c in answer.citations:
        assert c.sentences, c
        for s in c.sentences:
            assert s in c.hit.text, (c.hit.id, s)
    numbers = {c.n for c in answer.citations}
    assert [c.n for c in answer.citations] == list(range(1, len(answer.citations) + 1))
    for sentence, n in quoted_sentences(answer):
        assert n in numbers, (n, answer.text)
        pieces = answer.citations[n - 1].sentences
        # A list item is quoted with its lead-in: two pieces of the paragraph, joined by a space.
        assert sentence in pieces or any(sentence == f"{a} {b}" for a in pieces for b in pieces), (sentence, pieces)


# -- what an answer says -------------------------------------------------------------------------


def test_why_question_cites_the_summary_or_final_decision(seeds):
    a = seeds.answer(WHY_CLOSED)
    assert a.found and a.mode == "extractive"
    assert {c.hit.ref for c in a.citations} == {"24 016 809"}
    assert {c.hit.paragraph for c in a.citations} <= {"summary", 18}
    assert "not enough evidence of fault causing" in a.text
    assert "worthwhile outcome" in a.text
    assert a.text.startswith("Leicestershire County Council (24 016 809), decided 9 April 2025 "
                             "(Closed after initial enquiries):")
    assert not a.candidates  # only one decision has a Mr X in the seeds: no ambiguity
    assert_grounded(a)


def test_answer_has_two_to_four_sentences_each_with_a_marker(seeds):
    a = seeds.answer("Would holding the strategy meeting sooner have changed the child protection conference or Mr X's "
                     "contact restrictions?")
    marked = quoted_sentences(a)
    assert 2 <= len(marked) <= 4
    assert "24-016-809#16" in [c.hit.id for c in a.citations]
    assert_grounded(a)


def test_other_seed_why_question_cites_its_final_decision(seeds):
    a = seeds.answer("For what reason will the Ombudsman not look into the complaint Dr X made about how Leicestershire "
                     "handled child protection matters?")
    assert a.citations[0].hit.ref == "24 000 184"
    assert {"24-000-184#summary", "24-000-184#13"} & {c.hit.id for c in a.citations}
    assert_grounded(a)


def test_a_paragraph_asked_for_by_number_is_quoted_whole(seeds):
    a = seeds.answer("show me paragraph 15 of 24016809")
    assert [c.hit.id for c in a.citations] == ["24-016-809#15"]
    assert " ".join(a.citations[0].sentences) == a.citations[0].hit.text
    assert_grounded(a)


def test_a_reference_without_a_paragraph_is_answered_from_its_summary(seeds):
    a = seeds.answer("outcome of 24/016/809")
    assert a.citations[0].hit.id == "24-016-809#summary"


def test_citation_json_carries_the_hit_the_number_the_sentences_and_the_line(seeds):
    body = seeds.answer(WHY_CLOSED).to_json()
    assert set(body) >= {"question", "answer", "found", "citations", "mode", "note", "candidates", "closest"}
    c = body["citations"][0]
    assert set(c) >= {"ref", "paragraph", "section", "authority", "outcome", "decision_date", "url", "text",
                      "score", "n", "sentences", "citation"}
    assert c["n"] == 1
    assert c["citation"].startswith("Leicestershire County Council (24 016 809), ")
    assert "[1]" in body["answer"]


def test_stream_yields_growing_text_then_the_answer(seeds):
    pieces = list(seeds.stream(WHY_CLOSED))
    texts, final = pieces[:-1], pieces[-1]
    assert isinstance(final, Answer)
    assert len(texts) >= 3
    assert all(isinstance(t, str) for t in texts)
    assert all(b.startswith(a) for a, b in zip(texts, texts[1:]))
    assert texts[-1] == final.text


def test_a_bad_question_is_refused_with_a_reason(seeds):
    with pytest.raises(ValueError, match="empty"):
        seeds.answer("   ")
    with pytest.raises(ValueError, match="limit is 1000"):
        seeds.answer("why " * 400)


# -- not found -----------------------------------------------------------------------------------


def test_a_council_that_is_not_indexed_is_not_found_even_when_the_topic_matches(seeds):
    a = seeds.answer("Did Kent County Council delay the strategy meeting after my son's abuse allegation?")
    assert not a.found
    assert a.citations == []
    assert "Kent is not among the indexed authorities" in a.text
    assert a.closest and a.closest[0].ref == "24 016 809"  # the closest passages are still shown to judge


def test_a_topic_nothing_indexed_covers_is_not_found(seeds):
    a = seeds.answer("the crematorium lost my grandmother's ashes")
    assert not a.found
    assert a.text.startswith("The indexed decisions do not cover this question")
    assert a.closest


def test_an_indexed_council_with_an_unindexed_topic_is_not_found(seeds):
    assert not seeds.answer("Did Leicestershire close the library in my village?").found


@pytest.mark.parametrize("text, places", [
    ("Did Birmingham City Council refund my garden waste subscription?", ["Birmingham"]),
    ("was the hull council tax bailiff complaint upheld", ["Hull"]),
    ("Newcastle planning permission for a noisy turbine", ["Newcastle"]),
    ("Reading the decision, was Mr X treated fairly?", []),  # a word, not the council
    ("I want a bath adaptation", []),
    ("Kingston upon Thames refused my parking permit", ["Kingston upon Thames"]),
    ("North West Leicestershire missed bin collections", ["Leicestershire"]),
])
def test_named_places_finds_councils_users_name(text, places):
    assert named_places(text) == places


def test_a_reference_that_does_not_exist_is_reported_with_the_nearest(seeds):
    a = seeds.answer("what does 24 016 808 say?")
    assert not a.found
    assert a.missing == "decision 24 016 808 is not indexed; the nearest indexed references are 24 016 809, 24 000 184"


def test_a_paragraph_that_does_not_exist_is_reported_with_the_valid_range(seeds):
    a = seeds.answer("24 016 809 para 30")
    assert not a.found
    assert a.missing == "24 016 809 has no paragraph 30; it has paragraphs 1-18 and a Summary"
    assert a.text.startswith("24 016 809 has no paragraph 30")


# -- follow-ups ----------------------------------------------------------------------------------


def test_follow_up_questions_resolve_against_the_decision_under_discussion(seeds):
    first = seeds.answer(WHY_CLOSED)
    history = [Turn(WHY_CLOSED, first)]
    apology = seeds.answer("what did the council apologise for?", history=history)
    assert {c.hit.ref for c in apology.citations} == {"24 016 809"}
    assert {"24-016-809#14", "24-016-809#15"} & {c.hit.id for c in apology.citations}
    assert "apologised" in apology.text
    assert "following up on 24 016 809" in apology.note
    history.append(Turn("what did the council apologise for?", apology))
    para16 = seeds.answer("and paragraph 16?", history=history)
    assert [c.hit.id for c in para16.citations] == ["24-016-809#16"]
    assert para16.citations[0].sentences[0].startswith("The Council also says the delay in the strategy meeting")


def test_a_question_about_another_named_decision_is_not_a_follow_up(seeds):
    history = [Turn(WHY_CLOSED, seeds.answer(WHY_CLOSED))]
    a = seeds.answer("What outcome did Dr X want from complaining to Leicestershire?", history=history)
    assert a.citations[0].hit.ref == "24 000 184"


def test_filters_keep_the_answer_to_a_decision(seeds):
    a = seeds.answer("why was the complaint closed?", filters=Filters(ref="24 000 184"))
    assert {c.hit.ref for c in a.citations} == {"24 000 184"}


# -- ambiguity (needs the corpus: the seeds have one Mr X) ------------------------------------------


@pytest.fixture(scope="module")
def corpus(corpus_archive):
    return Answerer(corpus_archive, llm=None)


def test_mr_x_with_no_other_cue_matches_several_decisions_and_says_so(corpus):
    a = corpus.answer(WHY_CLOSED)
    assert a.found
    assert "several decisions match" in a.note
    assert len(a.candidates) >= 3
    assert set(a.candidates[0]) == {"ref", "authority", "decision_date", "outcome"}
    answered = list(dict.fromkeys(c.hit.ref for c in a.citations))
    assert 2 <= len(answered) <= 3
    decisions = corpus.retriever.catalogue.decisions
    assert all("Mr X" in decisions[r]["aliases"] and decisions[r]["outcome"].startswith("Closed") for r in answered)
    assert a.text.startswith("Several indexed decisions match this question")
    for ref in answered:  # each answered decision is named with its authority, reference and date
        assert re.search(rf"\d\. .+ \({ref}\), decided \d+ \w+ \d{{4}}", a.text)
    assert a.decision is None  # no single decision under discussion
    assert_grounded(a)


def test_naming_one_of_the_candidates_answers_the_earlier_question_for_it(corpus):
    first = corpus.answer(WHY_CLOSED)
    chosen = next(c for c in first.candidates[1:]
                  if sum(o["authority"] == c["authority"] for o in first.candidates) == 1)
    a = corpus.answer(f"the {chosen['authority']} one", history=[Turn(WHY_CLOSED, first)])
    assert {c.hit.ref for c in a.citations} == {chosen["ref"]}
    assert a.note.startswith(f"answering the earlier question for {chosen['ref']}")


def test_a_cue_that_tells_decisions_apart_is_not_ambiguous(corpus):
    a = corpus.answer("What stopped the ombudsman investigating Mr C's complaint that South Norfolk took away his "
                      "taxi licence?")
    assert not a.candidates
    assert a.citations[0].hit.id == "24-014-083#summary"
    assert "magistrates court" in a.text


# -- the whole eval set ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def eval_answers(corpus, corpus_archive):
    questions = scorable(load_sets(), set(corpus.retriever.catalogue.decisions))
    return questions, {q.id: corpus.answer(q.question) for q in questions}


def test_every_citation_on_both_question_sets_contains_the_sentences_it_supports(eval_answers):
    questions, answers = eval_answers
    assert len(questions) == len(load_sets())  # every gold decision is in the corpus index
    for q in questions:
        assert_grounded(answers[q.id])


# Measured with `ombudsman eval` on the seeds and the corpus, less a margin of about 0.03 (raise
# them when answers improve; never lower them to let a change through).
ANSWER_GATES = {
    "tuning": {"why_first_citation_right": 0.89, "negatives_refused": 0.89, "positives_answered": 0.89},
    "unseen": {"why_first_citation_right": 0.91, "negatives_refused": 0.72, "positives_answered": 0.89},
}


@pytest.mark.parametrize("split", sorted(ANSWER_GATES))
def test_answer_checks_hold_their_measured_values(eval_answers, split):
    questions, answers = eval_answers
    figures = score_answers([q for q in questions if q.split == split], answers)
    assert figures["citations_containing_their_sentence"] == 1.0
    for check, floor in ANSWER_GATES[split].items():
        assert figures[check] >= floor, (check, figures)


def test_answer_checks_count_what_a_reader_would_see(seeds_archive):
    questions = [
        Question("w1", "why", "why did the Ombudsman not investigate Dr X's complaint?", ("24-000-184#summary",),
                 outcome="Closed after initial enquiries"),
        Question("w2", "fact", "what did the council apologise to Dr X for?", ("24-000-184#7",)),
        Question("n1", "negative", "why did Plymouth refuse my parking permit?", (), negative_kind="council"),
        Question("n2", "negative", "my neighbour's bonfire smoke comes into my kitchen every weekend", (),
                 negative_kind="topic"),
        Question("c1", "fact", "what does the corpus decision say?", ("25-002-321#summary",)),
    ]
    figures = answer_checks(seeds_archive, questions)  # c1's decision is not in the seeds: skipped
    assert figures["why_first_citation_right"] == 1.0
    assert figures["citations_containing_their_sentence"] == 1.0
    assert figures["negatives_refused"] == 1.0
    assert figures["negatives_refused_council"] == 1.0 and figures["negatives_refused_topic"] == 1.0
    assert figures["negatives_refused_mismatch"] is None  # no such negative asked
    assert figures["negatives_refused_by_council_rule"] == 0.5 and figures["negatives_refused_by_relevance"] == 0.5
    assert figures["positives_answered"] == 1.0


# -- the ask command ---------------------------------------------------------------------------------


def test_ask_prints_the_answer_then_the_cited_paragraphs(seeds_archive):
    result = cli(seeds_archive, "ask", WHY_CLOSED)
    assert result.exit_code == 0, result.output
    out = result.output
    assert out.index("[1]") < out.index("Cite as:")
    assert "Leicestershire County Council (24 016 809), para 18 — Final decision" in out
    # The Final decision states the finding and its reasons; the Summary, which says the same, is not repeated.
    assert out.startswith("Leicestershire County Council (24 016 809), decided 9 April 2025 (Closed after initial "
                          "enquiries):\nWe will not investigate Mr X’s complaint because there is not enough evidence")
    assert "(24 016 809), Summary — Summary" not in out
    assert "Closed after initial enquiries, 9 April 2025  https://www.lgo.org.uk/decisions/" in out
    assert "Cite as: Leicestershire County Council (24 016 809), para 18, 9 April 2025" in out


def test_ask_json_gives_the_architecture_shape(seeds_archive):
    result = cli(seeds_archive, "ask", WHY_CLOSED, "--json")
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body["question"] == WHY_CLOSED and body["found"] is True
    assert body["citations"][0]["n"] == 1 and body["citations"][0]["ref"] == "24 016 809"


def test_ask_not_found_shows_the_closest_passages(seeds_archive):
    result = cli(seeds_archive, "ask", "Wigan shut the leisure centre pool")
    assert result.exit_code == 0, result.output
    assert "Wigan is not among the indexed authorities" in result.output
    assert "Closest passages (not an answer):" in result.output


def test_ask_queries_answers_a_file_one_json_line_each(seeds_archive, tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text('{"id": "a", "question": "why was Mr X\'s complaint closed?"}\n\n'
                    '{"id": "b", "question": "Camden will not renew my Freedom Pass"}\n')
    result = cli(seeds_archive, "ask", "--queries", str(path))
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert [(x["id"], x["found"]) for x in lines] == [("a", True), ("b", False)]
    assert lines[0]["citations"][0]["ref"] == "24 016 809"


def test_ask_exits_non_zero_when_the_paragraph_does_not_exist(seeds_archive):
    result = cli(seeds_archive, "ask", "what does 24 016 809 paragraph 40 say?")
    assert result.exit_code == 1
    assert "error: 24 016 809 has no paragraph 40; it has paragraphs 1-18 and a Summary" in result.output


def test_ask_refuses_an_empty_or_too_long_question(seeds_archive):
    empty = cli(seeds_archive, "ask", "  ")
    assert empty.exit_code == 1 and "the question is empty" in empty.output
    long = cli(seeds_archive, "ask", "x" * 1200)
    assert long.exit_code == 1 and "the limit is 1000" in long.output
