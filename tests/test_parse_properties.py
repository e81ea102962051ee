"""Properties of the parser and of the question checks, on inputs made by machine (hypothesis).

Whatever the text, parsing either gives a decision or a ``DecisionError`` naming the input, never
another exception; a decision built from generated sections gets its paragraphs numbered 1..n in
order, each paragraph's text taken from the input and none dropped but the known site
furniture; and the same decision saved as UTF-8, UTF-8 with a byte order mark, UTF-16 (as
Windows editors save "Unicode", with or without the mark) or Windows-1252 parses the same.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from index.parse import DecisionError, decode_bytes, parse_file, parse_text
from rag.question import check_question

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

WORDS = ("council", "complaint", "delay", "assessment", "care", "housing", "school", "transport", "fault",
         "payment", "review", "officer", "letter", "meeting", "plan", "records", "notice", "evidence", "daughter")
HEADINGS = ("The complaint", "The Ombudsman’s role and powers", "How I considered this complaint", "My assessment",
            "What I found", "Final decision", "Agreed action")
FURNITURE = ("Back to top", "Print this page")  # between sections; at the end of the page


@st.composite
def sentences(draw) -> str:
    words = draw(st.lists(st.sampled_from(WORDS), min_size=4, max_size=14))
    number = draw(st.integers(min_value=0, max_value=5000))
    return f"The {' '.join(words)} was {number} days late."


@st.composite
def paragraph_texts(draw) -> str:
    return " ".join(draw(st.lists(sentences(), min_size=1, max_size=3)))


@st.composite
def decisions(draw) -> tuple[str, list[str], str]:
    """(decision text, its paragraphs in order, its summary) in the numbered export format, each
    section restarting at 1. as exports do, with site furniture between sections."""
    sections = draw(st.lists(st.tuples(st.sampled_from(HEADINGS), st.lists(paragraph_texts(), min_size=1, max_size=5)),
                             min_size=1, max_size=6))
    summary = draw(paragraph_texts())
    lines = ["Anytown Borough Council (25 123 456)", "", "Category : Housing > Allocations", "",
             "Decision : Upheld", "", "Decision date : 12 Mar 2025", "", "The Ombudsman's final decision:", "",
             f"Summary: {summary}", ""]
    paragraphs = []
    for heading, texts in sections:
        lines += [heading, ""]
        for i, text in enumerate(texts, start=1):
            lines += [f"  {i}. {text}"]
            paragraphs.append(text)
        lines += ["", "Back to top", ""]
    if draw(st.booleans()):
        lines += ["Print this page", "", "Investigator's decision on behalf of the Ombudsman"]
    return "\n".join(lines), paragraphs, summary


@FAST
@given(st.text(max_size=3000))
def test_any_text_is_a_decision_or_an_error_naming_the_input(text):
    try:
        decision = parse_text(text, source="typed.txt")
    except DecisionError as e:
        assert str(e).startswith("typed.txt: ")
        return
    assert decision.paragraphs or decision.summary
    assert [p.number for p in decision.paragraphs] == list(range(1, len(decision.paragraphs) + 1))


LINE_STARTS = ("", "  1. ", "      2. ", "- ", "  - ", "• ", "a) ", "(Local Government Act 1974, section 26(1))",
               "Summary: ", "Back to top", "My assessment", "Category : ", "Decision : ")


@FAST
@given(st.lists(st.tuples(st.sampled_from(LINE_STARTS), st.text(max_size=120)), max_size=40))
def test_a_decision_heading_then_any_lines_never_breaks_the_numbering(lines):
    text = "Anytown Borough Council (25 123 458)\n" + "\n".join(start + rest for start, rest in lines)
    try:
        d = parse_text(text, "messy.txt")
    except DecisionError as e:
        assert str(e).startswith("messy.txt: 25 123 458: ")
        return
    assert [p.number for p in d.paragraphs] == list(range(1, len(d.paragraphs) + 1))
    squashed = re.sub(r"\s+", "", text)
    for p in d.paragraphs:
        # Sub-items are relettered ("a) ", "• "), so compare each line's own words without them.
        for piece in p.text.split("\n"):
            assert re.sub(r"\s+", "", re.sub(r"^(?:[a-z]\) |• )", "", piece)) in squashed


@FAST
@given(st.binary(max_size=4000))
def test_any_bytes_are_text_or_an_error_naming_the_file(data):
    try:
        text = decode_bytes(data, "upload.bin")
    except DecisionError as e:
        assert str(e).startswith("upload.bin: ")
        return
    assert isinstance(text, str)


@FAST
@given(decisions())
def test_generated_decisions_keep_every_paragraph_in_order_and_numbered_from_one(made):
    text, paragraphs, summary = made
    d = parse_text(text, "made.txt")
    assert [p.number for p in d.paragraphs] == list(range(1, len(paragraphs) + 1))
    assert [p.text for p in d.paragraphs] == paragraphs  # nothing dropped, merged or split
    assert d.summary == summary
    for p in d.paragraphs:
        assert p.text in text  # every paragraph's text comes from the input
        assert not any(f in p.text for f in FURNITURE)


@settings(max_examples=40, deadline=None)
@given(decisions(), st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "cp1252"]))
def test_a_decision_reads_the_same_in_every_encoding_windows_editors_save(tmp_path_factory, made, encoding):
    text, paragraphs, _ = made
    path = tmp_path_factory.mktemp("enc") / "decision.txt"
    path.write_bytes(text.replace("’", "'").encode(encoding))
    d = parse_file(path)
    assert [p.text for p in d.paragraphs] == [p.replace("’", "'") for p in paragraphs]


def test_paragraph_numbers_run_past_a_thousand(tmp_path):
    body = "\n".join(f"  {i}. Paragraph {i} says the council was late." for i in range(1, 1206))
    text = ("Anytown Borough Council (25 123 457)\n\nDecision : Upheld\n\nSummary: A long one.\n\n"
            f"My assessment\n\n{body}\n")
    d = parse_text(text, "long.txt")
    assert len(d.paragraphs) == 1205
    assert d.paragraph(1000).text == "Paragraph 1000 says the council was late."
    assert d.paragraph(1205).number == 1205


@pytest.mark.parametrize("raw", [b"\xff\xfe", b"\xef\xbb\xbf", b"\xff\xfe \x00\n\x00", b"   \n\t "])
def test_a_file_of_only_a_byte_order_mark_or_spaces_is_empty(raw):
    with pytest.raises(DecisionError, match="the file is empty"):
        decode_bytes(raw, "blank.txt")


def test_nul_bytes_that_are_not_utf16_are_a_binary_file():
    with pytest.raises(DecisionError, match="binary file"):
        decode_bytes(bytes(range(256)) * 8, "image.png")


@FAST
@given(st.text(max_size=1500))
def test_any_question_is_checked_into_a_clear_question_or_a_clear_reason(text):
    try:
        q = check_question(text)
    except ValueError as e:
        assert re.match(r"the question (is|contains|has)", str(e))
        return
    assert q == q.strip() and q and any(c.isalnum() for c in q)
