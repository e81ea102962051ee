"""Citation lookup: decisions, paragraphs and provisions as users write them, and the line to paste."""

from __future__ import annotations

import json
from datetime import date

import pytest
from click.testing import CliRunner

from rag.citation import citation_line, decision_outline, lookup
from ui.cli import main

URL_809 = "https://www.lgo.org.uk/decisions/children-s-care-services/child-protection/24-016-809"
PARA_15 = "The Council acknowledges it should have held the strategy meeting"


def cli(archive, *args):
    runner = CliRunner()
    return runner.invoke(main, ["--index", str(archive.store_config.index_dir), "--encoder",
                                archive.embedder.encoder, *args])


# -- the citation line ---------------------------------------------------------------------------


def test_citation_line_reads_like_the_lgsco_cites_itself():
    assert citation_line("Leicestershire County Council", "24 016 809", 15, "2025-04-09", URL_809) == (
        f"Leicestershire County Council (24 016 809), para 15, 9 April 2025, {URL_809}"
    )


def test_the_summary_is_cited_as_summary_and_a_date_object_works_too():
    assert citation_line("Leicestershire County Council", "24 016 809", "summary", date(2025, 4, 9), URL_809) == (
        f"Leicestershire County Council (24 016 809), Summary, 9 April 2025, {URL_809}"
    )


def test_an_unknown_date_or_url_is_left_out_not_printed_empty():
    assert citation_line("Tandridge District Council", "24 002 983", 5, "", "") == (
        "Tandridge District Council (24 002 983), para 5"
    )


# -- decisions -----------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["24 016 809", "24-016-809", "24016809", "24/016/809", "decision 24 016 809"])
def test_a_reference_in_any_form_shows_the_decision_outline(seeds_archive, text):
    r = lookup(seeds_archive, text)
    assert r.kind == "decision"
    assert r.decision["ref"] == "24 016 809"
    assert r.decision["authority"] == "Leicestershire County Council"
    assert r.decision["outcome"] == "Closed after initial enquiries"
    assert r.decision["decision_date"] == "2025-04-09"
    assert r.decision["summary"].startswith("We will not investigate this complaint")
    assert [(s["paragraphs"], s["heading"]) for s in r.decision["outline"]] == [
        ("1", "The complaint"),
        ("2-3", "The Ombudsman’s role and powers"),
        ("4-5", "How I considered this complaint"),
        ("6-10", "What I found > What happened"),
        ("11-13", "My assessment > Contact restrictions and initial investigation"),
        ("14-17", "My assessment > Poor communication and report inaccuracies"),
        ("18", "Final decision"),
    ]
    assert r.message == "Leicestershire County Council (24 016 809) has paragraphs 1-18 and a Summary"
    assert r.citation == f"Leicestershire County Council (24 016 809), 9 April 2025, {URL_809}"


def test_outline_of_the_other_seed_counts_thirteen_paragraphs(seeds_archive):
    d = seeds_archive.decision("24 000 184")
    outline = decision_outline(d)
    assert outline[0]["first"] == 1 and outline[-1]["last"] == 13
    assert sum(s["last"] - s["first"] + 1 for s in outline) == 13


# -- paragraphs ----------------------------------------------------------------------------------


@pytest.mark.parametrize("text", [
    "24-016-809 para 15", "24 016 809 paragraph 15", "24016809 ¶15", "24/016/809 p15", "¶15 of 24 016 809",
    "24-016-809#15", "24 016 809 para. 15",
])
def test_a_paragraph_in_any_form_is_printed_with_a_ready_to_paste_citation(seeds_archive, text):
    r = lookup(seeds_archive, text)
    assert r.kind == "paragraph", r.message
    assert r.hit.id == "24-016-809#15"
    assert r.hit.paragraph == 15
    assert r.hit.text.startswith(PARA_15)
    assert r.hit.section == "My assessment"
    assert r.citation == f"Leicestershire County Council (24 016 809), para 15, 9 April 2025, {URL_809}"


def test_the_summary_can_be_looked_up(seeds_archive):
    r = lookup(seeds_archive, "24016809 summary")
    assert r.kind == "paragraph"
    assert r.hit.id == "24-016-809#summary"
    assert r.citation.startswith("Leicestershire County Council (24 016 809), Summary, 9 April 2025")


def test_a_paragraph_that_does_not_exist_names_the_valid_range(seeds_archive):
    r = lookup(seeds_archive, "24 016 809 para 30")
    assert r.kind == "error"
    assert r.message == "24 016 809 has no paragraph 30; it has paragraphs 1-18 and a Summary"
    assert r.choices[:2] == ["24 016 809 summary", "24 016 809 para 1"]


def test_an_unknown_reference_names_the_nearest_indexed_ones(seeds_archive):
    r = lookup(seeds_archive, "24 016 808 para 3")
    assert r.kind == "error"
    assert r.choices[0] == "24 016 809"
    assert r.message.startswith("decision 24 016 808 is not indexed; the nearest indexed references are 24 016 809")


def test_text_that_is_no_citation_says_what_is_accepted(seeds_archive):
    r = lookup(seeds_archive, "the council was rude")
    assert r.kind == "error"
    assert "24 016 809 para 15" in r.message and "section 26(6)(c)" in r.message


# -- provisions ----------------------------------------------------------------------------------


def test_a_provision_lists_the_paragraphs_citing_it_with_counts(seeds_archive):
    r = lookup(seeds_archive, "section 26(6)(c)")
    assert r.kind == "provision"
    assert r.counts == {"decisions": 1, "paragraphs": 1, "exact": 1, "narrower": 0}
    assert [(m["ref"], [p["paragraph"] for p in m["paragraphs"]]) for m in r.matches] == [("24 016 809", [3])]
    assert r.matches[0]["paragraphs"][0]["citation"].startswith("Leicestershire County Council (24 016 809), para 3")
    assert r.message == "section 26(6)(c) (any Act) is cited in 1 paragraph of 1 decision"


def test_a_wider_provision_also_finds_narrower_ones_and_says_which_matched_exactly(seeds_archive):
    r = lookup(seeds_archive, "section 26(6)")
    assert r.kind == "provision"
    p = r.matches[0]["paragraphs"][0]
    assert p["statutes"] == ["Local Government Act 1974, section 26(6)(c)"]
    assert p["exact"] is False
    assert r.counts["narrower"] == 1
    assert "a narrower provision under it" in r.message


@pytest.mark.parametrize("text", ["s34(3)", "Local Government Act 1974 s34(3)", "section 34(3)"])
def test_short_and_long_forms_of_a_section_find_the_same_paragraphs(seeds_archive, text):
    r = lookup(seeds_archive, text)
    assert r.kind == "provision"
    assert sorted((m["ref"], p["paragraph"]) for m in r.matches for p in m["paragraphs"]) == [("24 000 184", 3)]


def test_a_provision_of_another_act_does_not_match(seeds_archive):
    r = lookup(seeds_archive, "Care Act 2014 s34(3)")
    assert r.kind == "error"
    assert r.message.startswith("no indexed paragraph cites Care Act 2014, section 34(3)")


def test_a_schedule_paragraph_is_a_provision_not_a_paragraph_number(seeds_archive):
    r = lookup(seeds_archive, "Schedule 5, paragraph 5(b)")
    assert r.kind == "error"  # the seeds cite no schedule; the point is that it was read as a provision
    assert "Schedule 5, paragraph 5(b)" in r.message


def test_schedule_lookups_over_the_corpus(corpus_archive):
    r = lookup(corpus_archive, "Schedule 5, paragraph 5(b)")
    assert r.kind == "provision"
    assert [(m["ref"], [p["paragraph"] for p in m["paragraphs"]]) for m in r.matches] == [("19 011 371", [5])]


# -- the cite command ----------------------------------------------------------------------------


def test_cite_prints_the_paragraph_and_its_citation_line(seeds_archive):
    result = cli(seeds_archive, "cite", "24-016-809 para 15")
    assert result.exit_code == 0, result.output
    assert PARA_15 in result.output
    assert f"Cite as: Leicestershire County Council (24 016 809), para 15, 9 April 2025, {URL_809}" in result.output


def test_cite_outline_shows_headings_with_paragraph_ranges(seeds_archive):
    result = cli(seeds_archive, "cite", "24 016 809")
    assert result.exit_code == 0, result.output
    assert "6-10   What I found > What happened" in result.output
    assert "Summary: We will not investigate this complaint" in result.output


def test_cite_json_gives_the_hit_shape(seeds_archive):
    result = cli(seeds_archive, "cite", "24016809", "p15", "--json")
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body["kind"] == "paragraph"
    assert body["hit"]["ref"] == "24 016 809" and body["hit"]["paragraph"] == 15
    assert body["citation"].startswith("Leicestershire County Council (24 016 809), para 15")


def test_cite_provision_prints_counts(seeds_archive):
    result = cli(seeds_archive, "cite", "section 26(6)(c)")
    assert result.exit_code == 0, result.output
    assert "cited in 1 paragraph of 1 decision" in result.output
    assert "para 3: Local Government Act 1974, section 26(6)(c)" in result.output


def test_cite_exits_non_zero_with_the_valid_choices(seeds_archive):
    result = cli(seeds_archive, "cite", "24 016 809 para 30")
    assert result.exit_code == 1
    assert "error: 24 016 809 has no paragraph 30; it has paragraphs 1-18 and a Summary" in result.output
