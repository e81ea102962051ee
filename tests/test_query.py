"""Query understanding: what a question says about decisions, paragraphs, authorities, complainants,
outcomes and the law. Pure functions: no model, no store.
"""

from __future__ import annotations

import pytest

from index.lexical import tokenize
from rag.query import (CLOSED, NOT_UPHELD, UPHELD, AuthorityNames, alias_fits, aliases_fit, names_place, short_name,
                       understand, within_one_edit)

# Authorities as the index names them, with the neighbours that make short names ambiguous.
AUTHORITIES = [
    "Leicestershire County Council",
    "Leicester City Council",
    "North West Leicestershire District Council",
    "NHS Leicester, Leicestershire and Rutland Integrated Care Board",
    "Kingston upon Hull City Council",
    "East Riding of Yorkshire Council",
    "Hull and East Yorkshire Hospitals NHS Trust",
    "London Borough of Lambeth",
    "London Borough of Lewisham",
    "Lancashire County Council",
    "City of Wolverhampton Council",
]


@pytest.fixture(scope="module")
def names() -> AuthorityNames:
    return AuthorityNames.of(AUTHORITIES)


# -- references -----------------------------------------------------------------------------------

@pytest.mark.parametrize("written", ["24 016 809", "24-016-809", "24016809", "24/016/809"])
def test_reference_in_any_form_is_understood(written):
    q = understand(f"what did {written} decide?")
    assert q.references == ("24 016 809",)


@pytest.mark.parametrize("written", ["23 017 881a", "23-017-881a", "23017881a", "23/017/881A"])
def test_reference_keeps_its_letter_suffix(written):
    assert understand(f"tell me about {written}").references == ("23 017 881a",)


def test_several_references_are_kept_in_order_without_repeats():
    q = understand("compare 24 016 809 with 24-000-184 and 24016809")
    assert q.references == ("24 016 809", "24 000 184")


def test_references_are_not_searched_as_words():
    q = understand("24-016-809 strategy meeting")
    assert q.content == "strategy meeting"


def test_numbers_that_are_not_references_are_not_taken_for_one():
    for text in ("call 0300 061 0614", "planning application 23/01234/FUL", "a bill of 1234 pounds"):
        assert understand(text).references == (), text


# -- paragraphs -----------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "text",
    ["24 016 809 para 15", "24 016 809 paragraph 15", "24-016-809 ¶15", "24016809 p15",
     "paragraph 15 of 24/016/809", "24 016 809, para. 15"],
)
def test_paragraph_next_to_a_reference_is_understood(text):
    q = understand(text)
    assert q.references == ("24 016 809",)
    assert q.paragraph == 15


def test_summary_next_to_a_reference_is_understood():
    assert understand("24 016 809 summary").paragraph == "summary"


def test_paragraph_without_a_reference_names_no_paragraph():
    assert understand("what does paragraph 15 say about strategy meetings?").paragraph is None


# -- authorities ----------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "text, authority",
    [
        ("Leicestershire", "Leicestershire County Council"),
        ("complaints about Leicestershire County Council", "Leicestershire County Council"),
        ("Leicester City Council", "Leicester City Council"),
        ("what did Leicester decide about business rates?", "Leicester City Council"),
        ("Hull", "Kingston upon Hull City Council"),
        ("bins in Hull", "Kingston upon Hull City Council"),
        ("Kingston upon Hull City Council", "Kingston upon Hull City Council"),
        ("Lambeth parking fines", "London Borough of Lambeth"),
        ("London Borough of Lambeth", "London Borough of Lambeth"),
        ("Wolverhampton", "City of Wolverhampton Council"),
        ("North West Leicestershire", "North West Leicestershire District Council"),
    ],
)
def test_authority_name_maps_to_that_authority_only(names, text, authority):
    assert names.find(text) == [authority]


def test_leicester_is_never_leicestershire_and_leicestershire_is_never_leicester(names):
    for text in ("Leicester", "Leicester City Council", "leicester's planning department"):
        assert "Leicestershire County Council" not in names.find(text), text
    for text in ("Leicestershire", "Leicestershire County Council", "the county council in Leicestershire"):
        assert "Leicester City Council" not in names.find(text), text


def test_both_leicester_councils_named_in_one_question_are_both_found(names):
    found = names.find("did Leicestershire or Leicester City Council handle it?")
    assert sorted(found) == ["Leicester City Council", "Leicestershire County Council"]


def test_hull_is_not_the_east_riding_or_the_hospital_trust(names):
    assert names.find("Hull") == ["Kingston upon Hull City Council"]
    assert names.find("East Riding of Yorkshire") == ["East Riding of Yorkshire Council"]


def test_a_question_naming_no_authority_finds_none(names):
    for text in ("why was the complaint by Mr X closed?", "what did the council do?", "county council delays"):
        assert names.find(text) == [], text


def test_authority_found_through_understand(names):
    assert understand("why was the complaint about Hull upheld?", names).authorities == (
        "Kingston upon Hull City Council",
    )
    assert understand("why was the complaint about Hull upheld?").authorities == ()  # no names given


@pytest.mark.parametrize(
    "authority, short",
    [
        ("Leicestershire County Council", "leicestershire"),
        ("Leicester City Council", "leicester"),
        ("London Borough of Lambeth", "lambeth"),
        ("Kingston upon Hull City Council", "kingston upon hull"),
        ("City of Wolverhampton Council", "wolverhampton"),
        ("Telford & Wrekin Council", "telford and wrekin"),
    ],
)
def test_short_name_drops_the_kind_of_authority(authority, short):
    assert short_name(authority) == short


# -- complainant aliases --------------------------------------------------------------------------

@pytest.mark.parametrize(
    "text, aliases",
    [
        ("why was the complaint by Mr X closed?", ("Mr X",)),
        ("Mr X’s complaint", ("Mr X",)),
        ("what did mrs b complain about", ("Mrs B",)),
        ("MR X", ("Mr X",)),
        ("Mr. X and Ms C", ("Mr X", "Ms C")),
        ("dr x", ("Dr X",)),
    ],
)
def test_complainant_alias_is_understood(text, aliases):
    assert understand(text).aliases == aliases


def test_a_name_is_not_an_alias():
    assert understand("Mr Xavier complained").aliases == ()


# -- outcomes -------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "text",
    ["why was it closed?", "complaints that were not investigated", "why won't you investigate?",
     "why won’t you investigate?", "the Ombudsman won't investigate", "won’t investigate",
     "closed after initial enquiries"],
)
def test_closed_words_mean_closed_after_initial_enquiries(text):
    assert understand(text).outcomes == (CLOSED,)


@pytest.mark.parametrize("text", ["which complaints were upheld?", "Upheld", "was the Council found at fault?"])
def test_upheld_means_upheld(text):
    assert understand(text).outcomes == (UPHELD,)


@pytest.mark.parametrize("text", ["not upheld", "complaints that were not upheld", "why wasn't it upheld?",
                                  "the complaint wasn’t upheld"])
def test_not_upheld_means_not_upheld_and_never_upheld(text):
    q = understand(text)
    assert q.outcomes == (NOT_UPHELD,)
    assert UPHELD not in q.outcomes


def test_a_question_with_no_outcome_words_has_no_outcome():
    assert understand("what did the council say about the Safety Plan?").outcomes == ()


# -- why and the law ------------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["why was the complaint by Mr X closed?", "Why did the Ombudsman not investigate?",
                                  "what were the reasons for the decision?"])
def test_why_questions_are_recognised(text):
    q = understand(text)
    assert q.why
    assert not q.law


@pytest.mark.parametrize(
    "text",
    ["what are the Ombudsman's powers?", "the Ombudsman's role and powers", "is there a time limit for complaints?",
     "can the ombudsman investigate if I could go to court?", "what does section 26(6)(c) say?",
     "Local Government Act 1974"],
)
def test_questions_about_powers_or_the_law_are_recognised(text):
    assert understand(text).law


@pytest.mark.parametrize(
    "text",
    ["why was the complaint by Mr X closed?", "what did the council say about the Safety Plan?",
     "Mr X's 2 children were moved", "Mrs B's 2023 complaint about bins", "it's 3 years since I complained"],
)
def test_ordinary_questions_are_not_about_the_law(text):
    q = understand(text)
    assert not q.law
    assert q.provision is None


# -- provisions -----------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "text, part",
    [
        ("section 26(6)(c)", "section 26(6)(c)"),
        ("what does s26(6)(c) say?", "section 26(6)(c)"),
        ("s.34(3)", "section 34(3)"),
        ("section 24A(6)", "section 24A(6)"),
        ("Schedule 5, paragraph 5(2)", "Schedule 5, paragraph 5(2)"),
    ],
)
def test_provision_is_understood(text, part):
    q = understand(text)
    assert q.provision is not None
    assert q.provision.part == part
    assert q.law


# -- the BM25 tokenizer ---------------------------------------------------------------------------

def test_tokenize_keeps_a_provision_whole_with_its_enclosing_provisions():
    tokens = tokenize("(Local Government Act 1974, section 26(6)(c), as amended)")
    assert {"26(6)(c)", "26(6)", "s26"} <= set(tokens)
    # The bare parts would match "Ms C" and every number 6 in the archive.
    assert not {"6", "c"} & set(tokens)


def test_a_query_for_a_provision_matches_the_narrower_ones_it_contains():
    assert "26(6)" in tokenize("section 26(6)")
    assert "26(6)" in tokenize("section 26(6)(a)")


def test_tokenize_stems_and_drops_stopwords():
    assert tokenize("Disabled Facilities Grant") == tokenize("disabled facility grants")
    assert "the" not in tokenize("the complaint")
    assert tokenize("investigating") == tokenize("investigated")


def test_tokenize_folds_a_reference_into_one_token_whatever_its_form():
    forms = [tokenize(r) for r in ("24 016 809", "24-016-809", "24016809", "24/016/809")]
    assert all(f == forms[0] for f in forms)
    assert len(forms[0]) == 1


def test_tokenize_stems_words_that_begin_like_a_reference_token():
    # Reference tokens ("ref24016809") stay whole; ordinary words beginning "ref" are stemmed like
    # any other, so a question about a refund finds paragraphs saying the council refunded.
    assert tokenize("refunded") == tokenize("refunds") == tokenize("refund")
    assert tokenize("referred") == tokenize("referring") == tokenize("refer")
    assert tokenize("refused") == tokenize("refusing")
    assert tokenize("24 016 809 refunded") == ["ref24016809", *tokenize("refund")]
    assert tokenize("24 016 809a") == ["ref24016809a"]


@pytest.mark.parametrize("text, place, named", [
    ("Can I bury my mother in the council's cemetery?", "Bury", False),  # "council" elsewhere is not enough
    ("Did Bury refuse my blue badge?", "Bury", True),
    ("Bury Council refused my blue badge", "Bury", True),
    ("bury metropolitan borough council and my blue badge", "Bury", True),
    ("Reading the decision, was Mr X treated fairly?", "Reading", False),
    ("What did Reading Borough Council get wrong?", "Reading", True),
    ("I want a bath adaptation", "Bath", False),
    ("The council in Stoke never billed me", "Stoke", True),
    ("Why did Test Valley refuse planning?", "Test Valley", True),
    ("a test valley survey", "Test Valley", False),
    ("Leicestershire closed my complaint", "Leicestershire", True),  # not an everyday word
])
def test_a_place_that_is_an_everyday_word_counts_only_when_used_as_a_name(text, place, named):
    assert names_place(text, place) is named


def test_an_indexed_council_named_by_an_everyday_word_needs_it_used_as_a_name():
    names = AuthorityNames.of(["Bury Metropolitan Borough Council", "Reading Borough Council"])
    assert names.find("can I bury my mother near the council offices?") == []
    assert names.find("Did Bury refuse my blue badge?") == ["Bury Metropolitan Borough Council"]
    assert names.find("reading borough council parking fine") == ["Reading Borough Council"]


# -- misspelt councils and complainants' titles ------------------------------------------------------

@pytest.mark.parametrize("typed, meant", [("nottinghamshre", "nottinghamshire"), ("leicstershire", "leicestershire"),
                                          ("hartlepoole", "hartlepool"), ("lambteh", "lambeth"), ("lambeth", "lambeth")])
def test_one_slip_of_the_keyboard_is_within_one_edit(typed, meant):
    assert within_one_edit(typed, meant)


@pytest.mark.parametrize("typed, other", [("nottingham", "nottinghamshire"), ("leicester", "leicestershire"),
                                          ("button", "sutton1"), ("lambethh", "lambe")])
def test_different_words_are_not_within_one_edit(typed, other):
    assert not within_one_edit(typed, other)


def test_a_misspelt_council_is_found_only_where_the_word_is_not_one_the_archive_uses():
    names = AuthorityNames.of(["Nottinghamshire County Council", "Hartlepool Borough Council"],
                              is_word=lambda w: w in {"nottinghamshir"})  # as if the archive used that word
    assert names.find("why did hartlepoole refuse my blue badge") == ["Hartlepool Borough Council"]
    assert names.find("nottinghamshir school transport") == []  # a word of the archive's own text
    assert AuthorityNames.of(["Hartlepool Borough Council"]).find("hartlepoole") == []  # no vocabulary given


def test_short_council_names_are_never_guessed_from_a_slip():
    names = AuthorityNames.of(["London Borough of Sutton", "Medway Council"], is_word=lambda w: False)
    assert names.find("the button on the form") == [] and names.find("midway through") == []


@pytest.mark.parametrize("named, used, fits", [
    ("Mrs D", "Mrs D", True), ("Mrs D", "Ms D", True), ("Miss D", "Mrs D", True), ("Mr D", "Mrs D", False),
    ("Mr D", "Dr D", False), ("Dr X", "Dr X", True), ("Mrs D", "Mrs X", False),
])
def test_a_complainant_fits_a_decision_by_letter_and_kind_of_title(named, used, fits):
    assert alias_fits(named, used) is fits


def test_mr_and_mrs_d_fits_a_decision_about_either():
    assert aliases_fit(("Mr D", "Mrs D"), ("Mrs D",)) and not aliases_fit(("Mr D", "Mrs D"), ("Mrs X", "Mr X"))


@pytest.mark.parametrize("text, years", [("what happened in 2021?", (2021,)), ("since 2019 and in 2020", (2019, 2020)),
                                         ("paid £2020 for 24 016 809", ()), ("no year here", ())])
def test_years_named_are_understood_but_not_sums_or_references(text, years):
    assert understand(text).years == years


@pytest.mark.parametrize("text, asks", [("what did Mrs B complain about?", True), ("what was Mr X's complaint about", True),
                                        ("why was my complaint about the bins closed", False)])
def test_a_question_about_what_was_complained_of_is_recognised(text, asks):
    assert understand(text).complaint is asks
