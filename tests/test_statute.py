"""Statute citations: every bracketed form found in the corpus, and matching a user's provision query."""

from __future__ import annotations

import pytest

from index.statute import Provision, extract_statutes, parse_citation, parse_provision_query, provision_matches

LGA = "Local Government Act 1974"
HSCA = "Health Service Commissioners Act 1993"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("(Local Government Act 1974, section 26(6)(c), as amended)", [f"{LGA}, section 26(6)(c)"]),
        ("(Local Government Act 1974, section 34(3), as amended)", [f"{LGA}, section 34(3)"]),
        ("(Local Government Act 1974, section 24A(6))", [f"{LGA}, section 24A(6)"]),
        ("(Local Government Act 1974, section 24A (6))", [f"{LGA}, section 24A(6)"]),
        (
            "(Local Government Act 1974, sections 26(1) and 26A(1), as amended)",
            [f"{LGA}, section 26(1)", f"{LGA}, section 26A(1)"],
        ),
        (
            "(Local Government Act 1974, section 30(1B) and 34H(i), as amended)",
            [f"{LGA}, section 30(1B)", f"{LGA}, section 34H(i)"],
        ),
        (
            "(Local Government Act 1974, section 24A(6), as amended, section 34(B))",
            [f"{LGA}, section 24A(6)", f"{LGA}, section 34(B)"],
        ),
        (
            "(Local Government Act 1974, sections 34B(8) and (9))",
            [f"{LGA}, section 34B(8)", f"{LGA}, section 34B(9)"],
        ),
        (
            "(Local Government Act 1974, sections 26B and 34D, as amended)",
            [f"{LGA}, section 26B", f"{LGA}, section 34D"],
        ),
        (
            "(Local Government Act 1974, sections 34B, 34C and 34H(3 and 4) as amended)",
            [f"{LGA}, section 34B", f"{LGA}, section 34C", f"{LGA}, section 34H(3)", f"{LGA}, section 34H(4)"],
        ),
        (
            "(Local Government Act 1974, sections 24A(1)(A), and 25 (7) as amended)",
            [f"{LGA}, section 24A(1)(A)", f"{LGA}, section 25(7)"],
        ),
        ("(Local Government Act 1974, Schedule 5, paragraph 5(b), as amended)", [f"{LGA}, Schedule 5, paragraph 5(b)"]),
        (
            "(Local Government Act 1974, Schedule 5/5A, paragraph 1/3, as amended)",
            [f"{LGA}, Schedule 5/5A, paragraph 1/3"],
        ),
        (
            "(Local Government Act 1974, section 33ZA, as amended, and Health Service Commissioners Act 1993, section 18ZA)",
            [f"{LGA}, section 33ZA", f"{HSCA}, section 18ZA"],
        ),
        (
            "(Health Service Commissioners Act 1993, section 3(2) and Local Government Act 1974, section 24A(6), as amended)",
            [f"{HSCA}, section 3(2)", f"{LGA}, section 24A(6)"],
        ),
        ("(Education Act 1996, section 19)", ["Education Act 1996, section 19"]),
    ],
)
def test_citation_forms_found_in_the_corpus(text, expected):
    assert list(extract_statutes(f"We may decide so. {text}")) == expected


def test_brackets_that_cite_no_act_are_not_statutes():
    assert extract_statutes("the Council (the Council), an Act passed long ago (see above)") == ()
    assert extract_statutes("an order under the Education Act 1996.") == ()  # not in brackets
    assert parse_citation("the Trust") == []


def test_a_paragraph_lists_each_provision_once_in_order():
    text = (
        "First. (Local Government Act 1974, section 24A(6), as amended, section 34(B))\n"
        "Second. (Local Government Act 1974, section 24A(6), as amended) Third. "
        "(Local Government Act 1974, section 26(6)(c), as amended)"
    )
    assert extract_statutes(text) == (
        f"{LGA}, section 24A(6)", f"{LGA}, section 34(B)", f"{LGA}, section 26(6)(c)",
    )


def test_provision_is_printed_with_its_act():
    assert str(Provision(LGA, "section 26(6)(c)")) == f"{LGA}, section 26(6)(c)"
    assert str(Provision("", "section 26(6)(c)")) == "section 26(6)(c)"


@pytest.mark.parametrize(
    "query, expected",
    [
        ("section 26(6)(c)", Provision("", "section 26(6)(c)")),
        ("section 26(6)", Provision("", "section 26(6)")),
        ("section 26 (6) (c)", Provision("", "section 26(6)(c)")),
        ("section 26(6) (c)", Provision("", "section 26(6)(c)")),
        ("s 24A (6)", Provision("", "section 24A(6)")),
        ("s34(3)", Provision("", "section 34(3)")),
        ("s. 34(3)", Provision("", "section 34(3)")),
        ("sections 26A(1)", Provision("", "section 26A(1)")),
        ("section 26a", Provision("", "section 26A")),
        ("Local Government Act 1974 s34(3)", Provision(LGA, "section 34(3)")),
        ("Local Government Act 1974, section 26(6)(c)", Provision(LGA, "section 26(6)(c)")),
        ("Schedule 5, paragraph 5(b)", Provision("", "Schedule 5, paragraph 5(b)")),
        ("which decisions cite section 24A(6)?", Provision("", "section 24A(6)")),
    ],
)
def test_parse_provision_query(query, expected):
    assert parse_provision_query(query) == expected


@pytest.mark.parametrize("query", ["", "what is a safety plan", "24 016 809", "paragraph 15"])
def test_a_query_naming_no_provision_is_none(query):
    assert parse_provision_query(query) is None


@pytest.mark.parametrize(
    "query, cited, matches",
    [
        ("section 26(6)", f"{LGA}, section 26(6)(c)", True),
        ("section 26(6)", f"{LGA}, section 26(6)", True),
        ("section 26(6)(c)", f"{LGA}, section 26(6)(c)", True),
        ("section 26(6)(c)", f"{LGA}, section 26(6)(a)", False),
        ("section 26(6)(c)", f"{LGA}, section 26(6)", False),
        ("section 26", f"{LGA}, section 26(6)(c)", True),
        ("section 26", f"{LGA}, section 26A(1)", False),
        ("section 26", f"{LGA}, section 26A", False),
        ("section 26", f"{LGA}, section 26B", False),
        ("section 26A", f"{LGA}, section 26A(1)", True),
        ("section 34(3)", f"{LGA}, section 34(B)", False),
        ("section 3(1)", f"{HSCA}, section 3(1)", True),
        ("Local Government Act 1974 section 3(1)", f"{HSCA}, section 3(1)", False),
        ("Schedule 5, paragraph 5(b)", f"{LGA}, Schedule 5, paragraph 5(b)", True),
        ("Schedule 5, paragraph 5", f"{LGA}, Schedule 5, paragraph 5(b)", True),
        ("Schedule 5, paragraph 5(b)", f"{LGA}, section 5(b)", False),
    ],
)
def test_provision_matches(query, cited, matches):
    q = parse_provision_query(query)
    assert q is not None
    assert provision_matches(q, cited) is matches
