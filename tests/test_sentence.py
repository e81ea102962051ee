"""Splitting decision text into sentences (for embedding windows and the sentences answers quote)."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from index.sentence import _last_word, split_sentences


def test_titles_and_numbered_abbreviations_do_not_end_sentences():
    text = "Mr. Smith complained. See para. 5 of the guidance. The council replied in No. 10 Street."
    assert split_sentences(text) == ["Mr. Smith complained.", "See para. 5 of the guidance.",
                                     "The council replied in No. 10 Street."]


def test_a_title_at_the_end_of_a_long_sentence_still_joins_the_name_that_follows():
    opening = "The council's officer wrote to the complainant several times over the summer, and then to Mrs. "
    text = opening + "Jones. She replied."
    assert len(opening) > 64
    assert split_sentences(text) == [opening + "Jones.", "She replied."]


def test_list_items_are_sentences_of_their_own():
    assert split_sentences("The council should:\n• apologise\n• pay £200") == [
        "The council should:", "• apologise", "• pay £200"]


_WHOLE = re.compile(r"([\w.]+)[.!?][\"”’)]*$")


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="ab.!?”’)\" x(M5", max_size=160))
def test_the_last_word_read_from_the_tail_is_the_one_the_whole_candidate_gives(candidate):
    whole, tail = _WHOLE.search(candidate), _last_word(candidate)
    assert (whole and whole.group(1)) == (tail and tail.group(1))
