"""Parsing decision texts: official paragraph numbers, sections, metadata, references and noise.

The numbers asserted for corpus decisions were counted by hand from the raw files (top-level
paragraphs in order, sub-items and trailing statute lines folded into the paragraph above).
"""

from __future__ import annotations

import csv
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest

from index.config import SEEDS_DIR
from index.decision import (PARSER_VERSION, Decision, Paragraph, derive_url, find_references, normalise_reference,
                            passage_id, reference_slug)
from index.parse import DecisionError, parse_file, parse_text

LGA = "Local Government Act 1974"


@pytest.fixture(scope="module")
def d809():
    return parse_file(SEEDS_DIR / "24-016-809.txt")


@pytest.fixture(scope="module")
def d184():
    return parse_file(SEEDS_DIR / "24-000-184.txt")


def corpus(corpus_dir: Path, ref_slug: str):
    return parse_file(corpus_dir / f"{ref_slug}.txt")


def numbers(d) -> list[int]:
    return [p.number for p in d.paragraphs]


def starts(d) -> dict[int, str]:
    return {p.number: p.text for p in d.paragraphs}


# -- the two seeds, exactly ---------------------------------------------------------------------


def test_seed_24_000_184_has_paragraphs_1_to_13_and_a_summary(d184):
    assert d184.reference == "24 000 184"
    assert numbers(d184) == list(range(1, 14))
    assert d184.summary == (
        "We will not investigate this complaint about how the Council dealt with child protection matters. "
        "This is because we cannot add to the investigation carried out by the Council and an investigation "
        "would not lead to a different outcome."
    )


def test_seed_24_016_809_has_paragraphs_1_to_18_and_a_summary(d809):
    assert d809.reference == "24 016 809"
    assert numbers(d809) == list(range(1, 19))
    assert d809.summary.startswith("We will not investigate this complaint about the Council’s engagement with Mr X")
    assert d809.summary.endswith("we could not achieve a worthwhile outcome for Mr X.")


def test_paragraph_numbers_run_on_across_sections(d809):
    # Every section of the export restarts at "1."; the official numbers do not.
    by_section = [(p.number, p.section, p.subsection) for p in d809.paragraphs]
    assert by_section == [
        (1, "The complaint", ""),
        (2, "The Ombudsman’s role and powers", ""),
        (3, "The Ombudsman’s role and powers", ""),
        (4, "How I considered this complaint", ""),
        (5, "How I considered this complaint", ""),
        (6, "What I found", "What happened"),
        (7, "What I found", "What happened"),
        (8, "What I found", "What happened"),
        (9, "What I found", "What happened"),
        (10, "What I found", "What happened"),
        (11, "My assessment", "Contact restrictions and initial investigation"),
        (12, "My assessment", "Contact restrictions and initial investigation"),
        (13, "My assessment", "Contact restrictions and initial investigation"),
        (14, "My assessment", "Poor communication and report inaccuracies"),
        (15, "My assessment", "Poor communication and report inaccuracies"),
        (16, "My assessment", "Poor communication and report inaccuracies"),
        (17, "My assessment", "Poor communication and report inaccuracies"),
        (18, "Final decision", ""),
    ]
    assert d809.sections == [
        "The complaint", "The Ombudsman’s role and powers", "How I considered this complaint",
        "What I found", "My assessment", "Final decision",
    ]


def test_paragraph_15_of_24_016_809_is_the_strategy_meeting(d809):
    p = d809.paragraph(15)
    assert p.text.startswith("The Council acknowledges it should have held the strategy meeting")
    assert p.text.endswith("I consider the Council’s response to be sufficient.")
    assert p.section == "My assessment"
    assert p.subsection == "Poor communication and report inaccuracies"


def test_bullet_sub_items_and_trailing_statute_line_belong_to_paragraph_2(d809):
    assert d809.paragraph(2).text == (
        "We investigate complaints about ‘maladministration’ and ‘service failure’, which we call ‘fault’. "
        "We must also consider whether any fault has had an adverse impact on the person making the complaint, "
        "which we call ‘injustice’. We provide a free service, but must use public money carefully. We do not "
        "start or continue an investigation if we decide:\n"
        "• there is not enough evidence of fault to justify investigating, or\n"
        "• any fault has not caused injustice to the person who complained, or\n"
        "• further investigation would not lead to a different outcome, or\n"
        "• we cannot achieve the outcome someone wants, or\n"
        "• there is no worthwhile outcome achievable by our investigation.\n"
        "(Local Government Act 1974, section 24A(6), as amended, section 34(B))"
    )
    assert d809.paragraph(2).statutes == (f"{LGA}, section 24A(6)", f"{LGA}, section 34(B)")
    # The statute line did not start a paragraph of its own: paragraph 3 is the next numbered item.
    assert d809.paragraph(3).text == (
        "The law says we cannot normally investigate a complaint when someone could take the matter to court. "
        "However, we may decide to investigate if we consider it would be unreasonable to expect the person to "
        "go to court. (Local Government Act 1974, section 26(6)(c), as amended)"
    )


def test_short_paragraphs_and_final_decision_exact(d809):
    assert d809.paragraph(4).text == "I considered information provided by the complainant and the Council."
    assert d809.paragraph(5).text == "I considered the Ombudsman’s Assessment Code."
    assert d809.paragraph(11).section == "My assessment"
    assert d809.paragraph(11).subsection == "Contact restrictions and initial investigation"
    assert d809.paragraph(11).text.startswith("Our role is not to ask whether an organisation could have done things better")
    p18 = d809.paragraph(18)
    assert p18.section == "Final decision"
    assert p18.subsection == ""
    assert p18.text == (
        "We will not investigate Mr X’s complaint because there is not enough evidence of fault causing him "
        "injustice and we could not achieve a worthwhile outcome for him."
    )


def test_seed_24_000_184_paragraphs_and_sections(d184):
    assert [p.section for p in d184.paragraphs] == (
        ["The complaint"] + ["The Ombudsman’s role and powers"] * 3 + ["How I considered this complaint"] * 2
        + ["My assessment"] * 6 + ["Final decision"]
    )
    assert d184.paragraph(3).text == (
        "If there was no fault in how the organisation made its decision, we cannot question the outcome. "
        "(Local Government Act 1974, section 34(3), as amended)"
    )
    assert d184.paragraph(2).text.count("\n• ") == 4
    assert d184.paragraph(7).text.startswith("The Council investigated Dr X’s complaint and upheld some of the points")
    assert d184.paragraph(13).text.startswith("We will not investigate Dr X’s complaint because we cannot add")


def test_seed_metadata_exact(d809, d184):
    assert d809.authority == "Leicestershire County Council"
    assert d809.category == ("Children's care services", "Child protection")
    assert d809.category_path == "Children's care services > Child protection"
    assert d809.outcome == "Closed after initial enquiries"
    assert d809.decision_date == date(2025, 4, 9)
    assert d809.to_json()["decision_date"] == "2025-04-09"
    assert d809.signature == "Investigator's decision on behalf of the Ombudsman"
    assert d184.decision_date == date(2024, 6, 4)
    assert d184.outcome == "Closed after initial enquiries"


def test_url_is_derived_when_the_file_has_none(d809, d184):
    assert d809.url == "https://www.lgo.org.uk/decisions/children-s-care-services/child-protection/24-016-809"
    assert d184.url == "https://www.lgo.org.uk/decisions/children-s-care-services/child-protection/24-000-184"
    assert derive_url("23 017 881a", ("Health", "Mental health services")) == (
        "https://www.lgo.org.uk/decisions/health/mental-health-services/23-017-881a"
    )


def test_complainant_aliases(d809, d184):
    assert d809.aliases == ("Mr X",)
    assert d184.aliases == ("Dr X",)


def test_mr_and_mrs_names_both_people():
    d = parse_text(
        "Somewhere Council (21 000 001)\nSummary: We will not investigate Mr and Mrs K’s complaint.\n"
        "The complaint\n  1. Mr and Mrs K complain about a tree.\n"
    )
    assert d.aliases == ("Mr K", "Mrs K")


def test_statutes_per_paragraph(d809, d184):
    with_statutes = {p.number: p.statutes for p in d809.paragraphs if p.statutes}
    assert with_statutes == {
        2: (f"{LGA}, section 24A(6)", f"{LGA}, section 34(B)"),
        3: (f"{LGA}, section 26(6)(c)",),
    }
    assert d809.statutes == (f"{LGA}, section 24A(6)", f"{LGA}, section 34(B)", f"{LGA}, section 26(6)(c)")
    assert {p.number: p.statutes for p in d184.paragraphs if p.statutes} == {
        2: (f"{LGA}, section 24A(6)", f"{LGA}, section 34(B)"),
        3: (f"{LGA}, section 34(3)",),
        4: (f"{LGA}, section 24A(6)",),
    }


def test_noise_never_enters_a_paragraph_of_the_seeds(d809, d184):
    for d in (d809, d184):
        for text in [d.summary, *(p.text for p in d.paragraphs)]:
            for noise in ("Back to top", "Print this page", "LGO logogram", "cookies", "privacy settings",
                          "final decision:", "on behalf of the Ombudsman"):
                assert noise.lower() not in text.lower(), (d.reference, noise, text)


def test_parsing_ignores_line_endings_and_a_byte_order_mark():
    text = (SEEDS_DIR / "24-016-809.txt").read_text(encoding="utf-8")
    plain = parse_text(text)
    assert parse_text("\ufeff" + text.replace("\n", "\r\n")) == plain
    assert parse_text("\ufeff" + text.replace("\n", "\r\n")).content_hash == plain.content_hash


def test_the_content_hash_of_a_decision_is_what_indexes_already_built_hold():
    # An index keeps each decision's hash and re-embeds a decision whose hash differs: the hash of
    # the same decision must not change with how it is computed (these values are those of the
    # hash as first written, over ``dataclasses.asdict``), only with PARSER_VERSION. The source is
    # not part of it.
    d = Decision("24 000 002", "Café Borough Council", ("Adult care services", "Charging"),
                 "Upheld: fault and injustice", date(2024, 2, 1), "https://example.org/d",
                 "The Council charged Mrs Y twice.",
                 (Paragraph(1, "Complaint", "Mrs Y complains the Council charged her twice’s.", "", ()),
                  Paragraph(2, "Analysis", "Section 26(6)(c) applies.", "Charging",
                            ("Local Government Act 1974, section 26(6)(c)",))),
                 ("Mrs Y",), ("Local Government Act 1974, section 26(6)(c)",), "Jane Doe", source="/elsewhere/d.txt")
    assert PARSER_VERSION == "3"
    assert d.content_hash == "4d31a71117d2f93217d4986bd796d2cb"
    assert replace(d, decision_date=None, source="").content_hash == "b05f38aebd8b74d7f9d77b147bf3d193"
    assert replace(d, source="/moved/d.txt").content_hash == d.content_hash
    assert replace(d, signature="John Doe").content_hash != d.content_hash


def test_a_url_line_is_kept_as_the_address():
    text = "URL: https://www.lgo.org.uk/decisions/x/y/24-016-809\n" + (SEEDS_DIR / "24-016-809.txt").read_text()
    assert parse_text(text).url == "https://www.lgo.org.uk/decisions/x/y/24-016-809"


# -- references ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "written, expected",
    [
        ("24 016 809", "24 016 809"),
        ("24-016-809", "24 016 809"),
        ("24016809", "24 016 809"),
        ("24/016/809", "24 016 809"),
        ("  24 016 809 ", "24 016 809"),
        ("decision 24-016-809 para 15", "24 016 809"),
        ("23 017 881A", "23 017 881a"),
        ("23 017 881a", "23 017 881a"),
        ("23-017-881a", "23 017 881a"),
        ("17002402b", "17 002 402b"),
    ],
)
def test_reference_in_any_form_is_normalised(written, expected):
    assert normalise_reference(written) == expected


@pytest.mark.parametrize("text", ["", "hello", "24 016", "240168091", "section 26(6)"])
def test_text_without_a_reference_is_a_clear_error(text):
    with pytest.raises(ValueError, match="not a decision reference"):
        normalise_reference(text)


def test_reference_slug_and_passage_ids():
    assert reference_slug("24/016/809") == "24-016-809"
    assert passage_id("24 016 809", 15) == "24-016-809#15"
    assert passage_id("24 016 809", "summary") == "24-016-809#summary"
    assert passage_id("23 017 881A", 2) == "23-017-881a#2"
    assert find_references("see 24-016-809 and 24 000 184, and again 24016809") == ["24 016 809", "24 000 184"]


def test_letter_suffix_in_the_heading_is_kept_lower_case():
    d = parse_text("Some NHS Trust (23 017 881A)\nSummary: We will not investigate.\n")
    assert d.reference == "23 017 881a"
    assert d.url.endswith("/23-017-881a")


def test_a_text_without_a_heading_line_is_not_a_decision():
    with pytest.raises(DecisionError, match=r"notes\.txt: not a decision: no heading line"):
        parse_text("Some notes about a complaint.\n  1. A paragraph.\n", source="notes.txt")


# -- the corpus ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def index_rows(corpus_dir):
    with (corpus_dir / "INDEX.tsv").open(encoding="utf-8") as f:
        return {row["ref"]: row for row in csv.DictReader(f, delimiter="\t")}


@pytest.fixture(scope="module")
def parsed_corpus(corpus_dir):
    return {f.stem: parse_file(f) for f in sorted(corpus_dir.glob("*.txt"))}


def test_every_corpus_file_parses_with_its_file_name_as_reference(corpus_dir, parsed_corpus):
    files = sorted(corpus_dir.glob("*.txt"))
    assert len(files) == 148
    for f in files:
        d = parsed_corpus[f.stem]
        assert d.slug == f.stem, f
        assert d.summary or d.paragraphs, f
        assert [p.number for p in d.paragraphs] == list(range(1, len(d.paragraphs) + 1)), f


def test_corpus_metadata_matches_the_index_file(parsed_corpus, index_rows):
    assert set(index_rows) == set(parsed_corpus)
    for ref, row in index_rows.items():
        d = parsed_corpus[ref]
        assert d.authority == row["authority"], ref
        assert d.category_path == row["category"], ref
        assert d.outcome == row["outcome"], ref
        assert d.url == row["url"], ref
        written = d.decision_date.strftime("%d %b %Y") if d.decision_date else ""
        assert written == row["decision_date"], ref


def test_noise_never_enters_a_corpus_paragraph(parsed_corpus):
    for ref, d in parsed_corpus.items():
        for text in [d.summary, *(p.text for p in d.paragraphs)]:
            for line in text.split("\n"):
                assert line.strip().lower() not in {"back to top", "print this page", "lgo logogram",
                                                    "privacy settings", "review your privacy settings"}, ref
            for noise in ("Back to top", "Print this page", "LGO logogram", "Google Analytics", "cookies"):
                assert noise not in text, (ref, noise)


def test_numbered_export_restarting_per_section(corpus_dir):
    # 20 003 546: sections restart at 1.; 1 + 2 + 2 + 1 top-level items.
    d = corpus(corpus_dir, "20-003-546")
    assert numbers(d) == [1, 2, 3, 4, 5, 6]
    t = starts(d)
    assert t[1].startswith("Mr X complains about the Council’s delay")
    assert t[3].startswith("If we are satisfied with a council’s actions")
    assert t[4] == "I considered the information provided by Mr X."
    assert t[5] == "I considered the information provided by the Council."
    assert t[6].startswith("A member of the public can ask for a Modification Order")
    assert (d.paragraph(6).section, d.paragraph(6).subsection) == ("What I found", "What happened")
    assert d.paragraph(2).statutes == (f"{LGA}, section 26(1)", f"{LGA}, section 26A(1)")
    assert d.paragraph(3).statutes == (f"{LGA}, section 30(1B)", f"{LGA}, section 34H(i)")


def test_numbered_export_restarting_within_one_section(corpus_dir):
    # 18 016 351: "1." with six • bullets, then "1." again in the same section: paragraph 2.
    d = corpus(corpus_dir, "18-016-351")
    assert numbers(d) == [1, 2]
    assert d.paragraph(1).text.startswith("I have called the complainant ‘Mr B’.")
    assert d.paragraph(1).text.count("\n• ") == 6
    assert d.paragraph(2).text.startswith("Mr B says the Council was also at fault")
    assert d.paragraph(2).section == "The complaint"


def test_dash_bullets_are_paragraphs_with_subsections(corpus_dir):
    # 19 016 962: seven "- " paragraphs, no Category/Decision lines; the category comes from the URL.
    d = corpus(corpus_dir, "19-016-962")
    assert numbers(d) == [1, 2, 3, 4, 5, 6, 7]
    t = starts(d)
    assert t[1].startswith("The complainant, who I shall call Mrs Y")
    assert t[2].startswith("We investigate complaints about ‘maladministration’")
    assert t[3].startswith("I read what Mrs Y had told us")
    assert t[4].startswith("If a council is not satisfied that parents")
    assert t[5] == "A parent can be prosecuted for failure to comply with a school attendance order."
    assert t[6].startswith("Mrs Y educates her child at home.")
    assert t[7].startswith("The Council served Mrs Y with a school attendance order.")
    assert [(p.section, p.subsection) for p in d.paragraphs][3:] == [
        ("What I found", "School attendance order"),
        ("What I found", "School attendance order"),
        ("What I found", "What happened"),
        ("What I found", "What happened"),
    ]
    assert d.outcome == "" and d.decision_date is None
    assert d.category == ("Education", "Other")


def test_dash_bullets_after_a_lead_in_are_sub_items(corpus_dir):
    # 20 001 594: "She complains:" + 5 lower-case items; "Miss Q says:" + 2 items; then 2 paragraphs.
    d = corpus(corpus_dir, "20-001-594")
    assert numbers(d) == [1, 2, 3, 4]
    t = starts(d)
    assert t[1].startswith("The complainant, whom I shall describe as Miss Q")
    assert t[1].count("\n• ") == 5
    assert t[1].split("\n")[1] == "• the Council took long to assess R’s special educational needs;"
    assert t[2].startswith("Miss Q says:\n• this resulted in R missing over a year")
    assert t[2].count("\n• ") == 2
    assert t[3].startswith("We investigate complaints about")
    assert t[4].startswith("We cannot investigate late complaints")
    assert d.paragraph(4).statutes == (f"{LGA}, section 26B", f"{LGA}, section 34D")


def test_nested_numbered_items_are_lettered_sub_items(corpus_dir):
    # 20 000 997: two top-level items, with 4 and 3 nested "      1." items.
    d = corpus(corpus_dir, "20-000-997")
    assert numbers(d) == [1, 2]
    lines1 = d.paragraph(1).text.split("\n")
    assert lines1[0].startswith("Mr G complains on behalf of his grandmother Mrs C.")
    assert [ln[:3] for ln in lines1[1:]] == ["a) ", "b) ", "c) ", "d) "]
    assert lines1[1].startswith("a) The company cared for her poorly")
    lines2 = d.paragraph(2).text.split("\n")
    assert lines2[0] == "Mr G says this caused him and Mrs C injustice because:"
    assert [ln[:3] for ln in lines2[1:]] == ["a) ", "b) ", "c) "]
    assert lines2[2] == "b) Mr G spent many hours pursuing the Council; and"


def test_nested_items_then_sections_restarting(corpus_dir):
    # 19 002 506: 1 (with 4 nested items) + 2 + 2 + 1 under "What I found" / "The law".
    d = corpus(corpus_dir, "19-002-506")
    assert numbers(d) == [1, 2, 3, 4, 5, 6]
    t = starts(d)
    assert t[1].startswith("Ms X complained the Council:\na) Delayed in completing")
    assert t[1].count("\n") == 4
    assert t[2].startswith("We can decide whether to start or discontinue")
    assert t[3].startswith("We cannot investigate a complaint if someone has appealed")
    assert t[4].startswith("I read the complaint information")
    assert t[5].startswith("Ms X and the Council both had the opportunity")
    assert t[6].startswith("The Council has duties under the Children Act 1989")
    assert (d.paragraph(6).section, d.paragraph(6).subsection) == ("What I found", "The law")
    assert d.paragraph(2).statutes == (f"{LGA}, section 24A(6)", f"{LGA}, section 34B(8)")


def test_nested_items_in_the_first_of_three_sections(corpus_dir):
    # 18 005 787: 1 (with 5 nested items), 1 under "What I have investigated", 1 under role and powers.
    d = corpus(corpus_dir, "18-005-787")
    assert numbers(d) == [1, 2, 3]
    assert d.paragraph(1).text.startswith("Mr X complains on behalf of Mr Y. He complains that the Council:\na) informed him")
    assert [ln[:3] for ln in d.paragraph(1).text.split("\n")[1:]] == ["a) ", "b) ", "c) ", "d) ", "e) "]
    assert d.paragraph(2).section == "What I have investigated"
    assert d.paragraph(2).text.startswith("I have investigated events from April 2018")
    assert d.paragraph(3).section == "The Ombudsman’s role and powers"
    assert d.paragraph(3).text.startswith("The law says we cannot normally investigate")


def test_round_bullets_are_sub_items(corpus_dir):
    # 19 014 245: a single paragraph whose four • items belong to it.
    d = corpus(corpus_dir, "19-014-245")
    assert numbers(d) == [1]
    text = d.paragraph(1).text
    assert text.startswith("Mr Q complains about the Council’s response to various matters")
    assert text.count("\n• ") == 4
    assert text.split("\n")[-1].startswith("• That the Council has not resolved flooding problems on the highway")


def test_summary_only_decision(corpus_dir):
    d = corpus(corpus_dir, "20-002-739")
    assert d.paragraphs == ()
    assert d.summary.startswith("Mr B complained about the care and support provided to his late uncle")
    assert d.outcome == "Not upheld"
    assert d.decision_date == date(2022, 4, 3)
    with pytest.raises(KeyError, match="no numbered paragraphs, only a summary"):
        d.paragraph(1)


def test_cookie_banner_before_the_heading_is_ignored(corpus_dir):
    # 17 007 746: the privacy-settings block comes first; three paragraphs follow the heading.
    d = corpus(corpus_dir, "17-007-746")
    assert d.authority == "London Borough of Lambeth"
    assert d.outcome == "Not upheld"
    assert d.decision_date == date(2018, 3, 21)
    assert d.summary == "The Council was not at fault for the way in which it dealt with Ms C’s penalty charge notice."
    assert numbers(d) == [1, 2, 3]
    t = starts(d)
    assert t[1].startswith("Ms C complains that the Council did not treat her fairly")
    assert t[2].startswith("We investigate complaints of injustice caused by")
    assert t[3].startswith("If we are satisfied with a council’s actions")
    assert d.paragraph(2).statutes == (f"{LGA}, section 34(3)",)
    # 20 012 408: the same banner, then a summary-only decision.
    d2 = corpus(corpus_dir, "20-012-408")
    assert d2.authority == "Malvern Hills District Council"
    assert d2.paragraphs == ()
    assert d2.summary.startswith("We will not investigate Mr and Mrs X’s complaint")
    assert "cookie" not in d2.summary.lower()
    assert d2.aliases == ("Mr X", "Mrs X")


def test_letter_suffix_reference_with_dash_sub_items(corpus_dir):
    # 23 017 881a: "Specifically she complains;" takes the three items after it.
    d = corpus(corpus_dir, "23-017-881a")
    assert d.reference == "23 017 881a"
    assert d.slug == "23-017-881a"
    assert d.url == "https://lgo.org.uk/decisions/health/mental-health-services/23-017-881a"
    assert numbers(d) == [1, 2, 3, 4, 5]
    t = starts(d)
    assert t[1].startswith("Mrs A complains about the lack of section 117 aftercare")
    assert t[2].startswith("Specifically she complains;\n• Ms B has not had a section 117 aftercare plan")
    assert t[2].count("\n• ") == 3
    assert t[3].startswith("Mrs A says Ms B feels unsupported")
    assert t[4].startswith("Mrs A wants a full investigation")
    assert d.paragraph(5).section == "The Ombudsmen’s role and powers"
    assert d.paragraph(5).statutes == (
        f"{LGA}, section 33ZA",
        "Health Service Commissioners Act 1993, section 18ZA",
        f"{LGA}, section 34B",
        f"{LGA}, section 34C",
        "Health Service Commissioners Act 1993, section 3(1)",
    )
    assert d.aliases == ("Mrs A", "Ms B")


def test_dash_export_with_every_section_to_final_decision(corpus_dir):
    # 25 007 800: eight "- " paragraphs, one or two per section, ending in "Final decision".
    d = corpus(corpus_dir, "25-007-800")
    assert numbers(d) == list(range(1, 9))
    assert [p.section for p in d.paragraphs] == [
        "The complaint", "The Ombudsman’s role and powers", "The Ombudsman’s role and powers",
        "How I considered this complaint", "How I considered this complaint", "My assessment",
        "Agreed action", "Final decision",
    ]
    assert d.paragraph(8).text.startswith("We have upheld this complaint because the Council has agreed")
    assert d.signature == "Investigator's decision on behalf of the Ombudsman"
    assert d.category_path == "Adult care services > Transport"


def test_standard_wording_shares_a_key_made_from_its_first_sixteen_words_with_names_and_acts_folded():
    from index.passage import boilerplate_key

    opening = ("We investigate complaints about councils and certain other bodies. Where an individual, "
               "organisation or private company is providing services")
    # The tail after the sixteenth word, case, punctuation, "Mr X" and an Act in brackets do not matter.
    assert boilerplate_key(opening + " on behalf of a council, we can investigate it.") == \
        boilerplate_key(opening.upper().replace(",", ";") + " for Mr X under its own powers (Local Government Act 1974).")
    assert boilerplate_key("Mr B complains (Local Government Act 1974, section 26) about the council") == \
        boilerplate_key("complains about the council")
    # A word changed among the first sixteen makes another key; so does a word added to a text of fewer.
    assert boilerplate_key(opening.replace("certain", "some")) != boilerplate_key(opening)
    short = "We investigate complaints about councils"
    assert boilerplate_key(short) != boilerplate_key(short + " today")
    assert boilerplate_key("") == boilerplate_key("12, 34.") != boilerplate_key("a")
