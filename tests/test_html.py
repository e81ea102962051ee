"""A decision page saved from the LGO website parses to the same Decision as its text export.

``tests/data/decision.html`` and ``tests/data/decision.txt`` are hand-made (a fictional decision)
in the shapes of the website and of the seed exports.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from index.html import html_to_text
from index.parse import is_html, parse_file, parse_text

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def from_html():
    return parse_file(DATA / "decision.html")


@pytest.fixture(scope="module")
def from_text():
    return parse_file(DATA / "decision.txt")


def test_saved_page_parses_to_the_same_decision_as_its_text_export(from_html, from_text):
    assert from_html == from_text
    assert from_html.to_json() == from_text.to_json()
    assert from_html.content_hash == from_text.content_hash


def test_page_metadata(from_html):
    assert from_html.reference == "23 456 789"
    assert from_html.authority == "Example Borough Council"
    assert from_html.category == ("Housing", "Homelessness")
    assert from_html.outcome == "Upheld"
    assert from_html.decision_date == date(2024, 3, 12)
    assert from_html.url == "https://www.lgo.org.uk/decisions/housing/homelessness/23-456-789"
    assert from_html.summary == (
        "Mrs B complained that the Council delayed in deciding her homelessness application and placed her "
        "in unsuitable accommodation. We found fault causing injustice. The Council has agreed to apologise "
        "and pay Mrs B £300."
    )
    assert from_html.aliases == ("Mrs B",)
    assert from_html.signature == "Investigator's decision on behalf of the Ombudsman"


def test_ol_items_restarting_per_section_are_numbered_on(from_html):
    assert [(p.number, p.section, p.subsection) for p in from_html.paragraphs] == [
        (1, "The complaint", ""),
        (2, "The complaint", ""),
        (3, "The Ombudsman’s role and powers", ""),
        (4, "The Ombudsman’s role and powers", ""),
        (5, "What I found", "What happened"),
        (6, "What I found", "What happened"),
        (7, "What I found", "The delay"),
        (8, "Final decision", ""),
    ]


def test_nested_ol_is_lettered_inside_its_paragraph(from_html):
    assert from_html.paragraph(1).text == (
        "Mrs B complains that the Council:\n"
        "a) took four months to decide her homelessness application; and\n"
        "b) placed her and her son in bed and breakfast accommodation for ten weeks."
    )
    assert from_html.paragraph(2).text == "Mrs B says this caused her family distress and cost her £120 in travel."


def test_ul_bullets_and_statute_line_stay_in_their_paragraph(from_html):
    p = from_html.paragraph(3)
    assert p.text == (
        "We investigate complaints about ‘maladministration’ and ‘service failure’. We may decide not to start "
        "or continue an investigation if we believe:\n"
        "• there is not enough evidence of fault to justify investigating, or\n"
        "• we cannot achieve the outcome someone wants.\n"
        "(Local Government Act 1974, section 24A(6), as amended)"
    )
    assert p.statutes == ("Local Government Act 1974, section 24A(6)",)
    assert from_html.paragraph(4).statutes == (
        "Local Government Act 1974, section 30(1B)",
        "Local Government Act 1974, section 34H(i)",
    )


def test_scripts_navigation_cookies_and_site_furniture_are_ignored(from_html):
    text = html_to_text((DATA / "decision.html").read_text(encoding="utf-8"))
    for absent in ("dataLayer", "querySelectorAll", "Make a complaint", "font-family", "PO Box"):
        assert absent not in text
    everything = "\n".join([from_html.summary, *(p.text for p in from_html.paragraphs)])
    for noise in ("Back to top", "Print this page", "cookies", "privacy", "Home", "Decisions", "Accept"):
        assert noise not in everything


def test_html_is_recognised_without_the_html_suffix(tmp_path, from_text):
    saved = tmp_path / "page-saved-as.txt"
    saved.write_bytes((DATA / "decision.html").read_bytes())
    assert is_html(saved.read_text(encoding="utf-8"))
    assert parse_file(saved) == from_text
    assert not is_html((DATA / "decision.txt").read_text(encoding="utf-8"))


def test_character_references_are_decoded():
    page = (
        "<html><body><h1>Some Council (21 000 002)</h1>"
        "<p>Summary: Mr D&rsquo;s complaint &amp; the &pound;50 fee.</p></body></html>"
    )
    assert parse_text(html_to_text(page)).summary == "Mr D’s complaint & the £50 fee."
