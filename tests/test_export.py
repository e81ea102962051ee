"""What users take with them: a conversation as Markdown with ready-to-paste citations, cited
paragraphs and search results as CSV (safe to open in a spreadsheet), links to a question or a
paragraph, and the command-line options wherever users put them."""

from __future__ import annotations

import csv
import io
import json

import pytest
from click.testing import CliRunner

from rag.answer import Answer
from rag.citation import Citation
from rag.retriever import Hit
from ui.cli import main
from ui.export import citations_csv, conversation_markdown, file_name, hits_csv, paragraph_link, question_link


def _hit(paragraph=15, text="The Council acknowledges it should have held the meeting sooner. It has apologised."):
    return Hit(id=f"24-016-809#{paragraph}", ref="24 016 809", paragraph=paragraph, section="My assessment",
               subsection="", authority="Leicestershire County Council", category="Children's care services",
               outcome="Closed after initial enquiries", decision_date="2025-04-09",
               url="https://www.lgo.org.uk/decisions/children-s-care-services/child-protection/24-016-809",
               text=text, score=0.9)


def _answer():
    hit = _hit()
    return Answer("did they say sorry?", "Leicestershire County Council (24 016 809):\nIt has apologised. [1]", True,
                  [Citation(1, hit, ["It has apologised."])])


def test_a_conversation_is_markdown_with_each_citation_ready_to_paste():
    md = conversation_markdown([("did they say sorry?", _answer(), ""), ("and then?", None, "the question is empty")],
                               base_url="http://127.0.0.1:7860/")
    assert md.startswith("# Questions about LGSCO decisions\n\n## 1. did they say sorry?\n")
    assert "It has apologised. [1]" in md
    assert ("[1] Leicestershire County Council (24 016 809), para 15, 9 April 2025, "
            "https://www.lgo.org.uk/decisions/children-s-care-services/child-protection/24-016-809") in md
    assert "    In the app: <http://127.0.0.1:7860/?ref=24-016-809&para=15>" in md
    assert "    > It has apologised." in md
    assert "## 2. and then?\n\n_No answer: the question is empty_" in md


def test_cited_paragraphs_are_a_csv_row_each_with_the_line_to_paste():
    rows = list(csv.DictReader(io.StringIO(citations_csv([("did they say sorry?", _answer(), "")]))))
    assert len(rows) == 1
    row = rows[0]
    assert (row["question"], row["n"], row["ref"], row["paragraph"]) == ("did they say sorry?", "1", "24 016 809", "15")
    assert row["citation"].startswith("Leicestershire County Council (24 016 809), para 15, 9 April 2025, https://")
    assert row["quoted"] == "It has apologised." and row["text"].startswith("The Council acknowledges")


def test_a_cell_a_spreadsheet_would_run_as_a_formula_is_kept_as_text():
    rows = list(csv.DictReader(io.StringIO(hits_csv([_hit(text='=HYPERLINK("http://evil")')], "q"))))
    assert rows[0]["text"] == '\'=HYPERLINK("http://evil")' and rows[0]["n"] == "1"
    assert list(csv.DictReader(io.StringIO(hits_csv([_hit("summary")]))))[0]["paragraph"] == "Summary"


def test_links_open_a_question_or_a_paragraph():
    assert question_link("why was Mr X's complaint closed?") == "?q=why%20was%20Mr%20X%27s%20complaint%20closed%3F"
    assert paragraph_link("24 016 809", 15) == "?ref=24-016-809&para=15"
    assert paragraph_link("24 016 809") == "?ref=24-016-809"
    assert file_name("Why was Mr X's complaint closed?", ".md") == "why-was-mr-x-s-complaint-closed.md"


@pytest.mark.slow
def test_search_prints_csv_and_options_may_follow_the_command(seeds_archive):
    index = str(seeds_archive.store_config.index_dir)
    runner = CliRunner()
    after = runner.invoke(main, ["search", "strategy meeting delay", "--k", "3", "--csv", "--index", index])
    before = runner.invoke(main, ["--index", index, "search", "strategy meeting delay", "--k", "3", "--csv"])
    assert after.exit_code == 0, after.output
    assert after.output == before.output
    rows = list(csv.DictReader(io.StringIO(after.output)))
    assert [r["n"] for r in rows] == ["1", "2", "3"] and {r["ref"] for r in rows} <= {"24 016 809", "24 000 184"}
    shown = runner.invoke(main, ["show", "24-016-809", "--json", "--index", index])
    assert shown.exit_code == 0 and json.loads(shown.output)["ref"] == "24 016 809"
    elsewhere = runner.invoke(main, ["--index", index, "show", "24-016-809", "--index", index + "-missing"])
    assert elsewhere.exit_code == 1 and "-missing" in elsewhere.output  # the one after the command wins
