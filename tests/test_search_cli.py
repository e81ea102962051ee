"""``ombudsman search``: the JSON a hit prints as (ARCHITECTURE.md), batches of questions from a JSONL
file, clear errors for questions that cannot be searched, and the filters on the command line.
"""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner

from ui.cli import main

pytestmark = pytest.mark.slow

HIT_FIELDS = {"ref", "paragraph", "section", "authority", "outcome", "decision_date", "url", "text", "score"}
WHY_CLOSED = "why was the complaint by Mr X closed?"


@pytest.fixture(scope="module")
def run(seeds_archive):
    """Run ``ombudsman --index <seeds index> --encoder <session encoder> ARGS``."""
    runner = CliRunner()
    common = ["--index", str(seeds_archive.store_config.index_dir), "--encoder", seeds_archive.embedder.encoder]

    def invoke(*args: str):
        return runner.invoke(main, [*common, *args])

    return invoke


def search_json(run, *args: str) -> list[dict]:
    result = run("search", *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


# -- the JSON of a hit ----------------------------------------------------------------------------

def test_search_json_has_the_architecture_shape(run):
    hits = search_json(run, WHY_CLOSED, "--k", "5")
    assert len(hits) == 5
    for h in hits:
        assert HIT_FIELDS <= set(h), HIT_FIELDS - set(h)
        assert h["paragraph"] == "summary" or isinstance(h["paragraph"], int)
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", h["decision_date"])
        assert isinstance(h["score"], float) and h["score"] > 0
        assert h["url"].startswith("https://www.lgo.org.uk/decisions/")
    first = hits[0]
    assert (first["ref"], first["paragraph"]) == ("24 016 809", 18)
    assert first["section"] == "Final decision"
    assert first["authority"] == "Leicestershire County Council"
    assert first["outcome"] == "Closed after initial enquiries"
    assert first["decision_date"] == "2025-04-09"
    assert first["url"] == "https://www.lgo.org.uk/decisions/children-s-care-services/child-protection/24-016-809"


def test_search_json_gives_the_whole_paragraph_text(run, seeds_archive):
    hits = search_json(run, "24 016 809 para 13")
    assert (hits[0]["ref"], hits[0]["paragraph"]) == ("24 016 809", 13)
    decision = seeds_archive.decision("24 016 809")
    paragraph = next(p for p in decision.paragraphs if p.number == 13)
    assert hits[0]["text"] == paragraph.text
    assert len(hits[0]["text"]) > 600  # a long paragraph, not a snippet or a window of it
    summary = search_json(run, "24 016 809 summary")[0]
    assert summary["paragraph"] == "summary" and summary["section"] == "Summary"
    assert summary["text"] == decision.summary


def test_search_prints_readable_hits_without_json(run):
    result = run("search", "24 016 809 para 15", "--k", "2")
    assert result.exit_code == 0, result.output
    assert "[1] Leicestershire County Council (24 016 809), para 15" in result.stdout
    assert "The Council acknowledges it should have held the strategy meeting" in result.stdout


@pytest.mark.parametrize("mode", ["hybrid", "dense", "bm25"])
def test_search_mode_option(run, mode):
    hits = search_json(run, WHY_CLOSED, "--mode", mode, "--k", "3")
    assert len(hits) == 3 and "24 016 809" in [h["ref"] for h in hits]
    if mode == "hybrid":  # the ranking function over both retrievers settles which decision
        assert hits[0]["ref"] == "24 016 809"


def test_k_limits_the_number_of_hits(run):
    assert len(search_json(run, WHY_CLOSED, "--k", "1")) == 1
    assert len(search_json(run, WHY_CLOSED, "--k", "12")) == 12


# -- batches from a JSONL file --------------------------------------------------------------------

def test_queries_file_gives_one_json_line_per_question_with_the_same_ids(run, tmp_path):
    questions = [
        {"id": "q1", "question": WHY_CLOSED},
        {"id": 7, "question": "24 016 809 para 15"},
        {"id": "q3", "question": "why did the Ombudsman not investigate Dr X's complaint?"},
    ]
    path = tmp_path / "questions.jsonl"
    path.write_text("\n".join(json.dumps(q) for q in questions) + "\n\n", encoding="utf-8")
    result = run("search", "--queries", str(path), "--k", "3")
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["id"] for line in lines] == ["q1", 7, "q3"]
    assert all(len(line["hits"]) == 3 and HIT_FIELDS <= set(line["hits"][0]) for line in lines)
    assert lines[0]["hits"][0]["ref"] == "24 016 809"
    assert (lines[1]["hits"][0]["ref"], lines[1]["hits"][0]["paragraph"]) == ("24 016 809", 15)
    assert lines[2]["hits"][0]["ref"] == "24 000 184"


def test_queries_file_applies_the_filters_to_every_question(run, tmp_path):
    path = tmp_path / "questions.jsonl"
    path.write_text('{"id": 1, "question": "safeguarding"}\n{"id": 2, "question": "strategy meeting"}\n')
    result = run("search", "--queries", str(path), "--k", "4", "--ref", "24-000-184")
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["id"] for line in lines] == [1, 2]
    assert {h["ref"] for line in lines for h in line["hits"]} == {"24 000 184"}


def test_a_question_too_long_in_a_queries_file_is_an_error_on_its_line_only(run, tmp_path):
    path = tmp_path / "questions.jsonl"
    path.write_text(json.dumps({"id": "long", "question": "why " * 300}) + "\n"
                    + json.dumps({"id": "ok", "question": WHY_CLOSED}) + "\n")
    result = run("search", "--queries", str(path), "--k", "2")
    assert result.exit_code == 0, result.output
    long, ok = (json.loads(line) for line in result.stdout.splitlines())
    assert long["id"] == "long" and long["hits"] == [] and "1000" in long["error"]
    assert ok["id"] == "ok" and len(ok["hits"]) == 2


@pytest.mark.parametrize(
    "bad_line",
    ['{"id": 2, "question": "unclosed', '{"id": 2}', '{"id": 2, "question": ""}', '["a list"]',
     '{"id": 2, "question": 42}'],
)
def test_a_malformed_queries_line_is_an_error_naming_the_file_and_line(run, tmp_path, bad_line):
    path = tmp_path / "questions.jsonl"
    path.write_text(json.dumps({"id": 1, "question": WHY_CLOSED}) + "\n" + bad_line + "\n", encoding="utf-8")
    result = run("search", "--queries", str(path))
    assert result.exit_code != 0
    assert str(path) in result.stderr and "line 2" in result.stderr
    assert result.stdout == ""  # nothing searched before the whole file was read


def test_a_missing_queries_file_is_an_error_naming_it(run, tmp_path):
    missing = tmp_path / "nowhere.jsonl"
    result = run("search", "--queries", str(missing))
    assert result.exit_code != 0
    assert "nowhere.jsonl" in result.output


# -- questions that cannot be searched ------------------------------------------------------------

@pytest.mark.parametrize("question", ["", "   ", "\t\n"])
def test_an_empty_question_is_a_clear_error(run, question):
    result = run("search", question)
    assert result.exit_code != 0
    assert result.stderr.startswith("error: ")
    assert "question" in result.stderr.lower()
    assert "Traceback" not in result.output


def test_no_question_at_all_is_a_clear_error(run):
    result = run("search")
    assert result.exit_code != 0
    assert "QUESTION" in result.stderr and "--queries" in result.stderr


def test_a_question_over_1000_characters_is_a_clear_error(run):
    result = run("search", "x" * 1001)
    assert result.exit_code != 0
    assert "1001 characters" in result.stderr and "1000" in result.stderr
    assert run("search", "y" * 1000, "--json").exit_code == 0  # the limit itself is allowed


# -- filters on the command line ------------------------------------------------------------------

def test_ref_filter_option(run):
    for written in ("24 000 184", "24-000-184", "24000184", "24/000/184"):
        hits = search_json(run, WHY_CLOSED, "--ref", written)
        assert hits and {h["ref"] for h in hits} == {"24 000 184"}, written


def test_date_filter_options(run):
    since = search_json(run, WHY_CLOSED, "--since", "2025-01-01")
    assert since and {h["ref"] for h in since} == {"24 016 809"}  # decided 9 April 2025
    until = search_json(run, WHY_CLOSED, "--until", "2024-12-31")
    assert until and {h["ref"] for h in until} == {"24 000 184"}  # decided 4 June 2024
    both = search_json(run, WHY_CLOSED, "--since", "2024-06-04", "--until", "2024-06-04")
    assert {h["ref"] for h in both} == {"24 000 184"}


def test_authority_category_and_outcome_filter_options(run):
    hits = search_json(run, WHY_CLOSED, "--authority", "Leicestershire County Council", "--category", "child protection",
                       "--outcome", "closed after initial enquiries")
    assert len(hits) == 10 and {h["ref"] for h in hits} == {"24 016 809", "24 000 184"}


@pytest.mark.parametrize(
    "args",
    [["--authority", "Leicester City Council"], ["--authority", "Lambeth"], ["--outcome", "Upheld"],
     ["--category", "Planning"], ["--since", "2026-01-01"], ["--ref", "24 016 809", "--until", "2024-12-31"]],
)
def test_a_filter_nothing_matches_gives_no_hits(run, args):
    assert search_json(run, WHY_CLOSED, *args) == []
    result = run("search", WHY_CLOSED, *args)
    assert result.exit_code == 0
    assert "No indexed paragraph matches." in result.stdout


@pytest.mark.parametrize(
    "args, words",
    [(["--since", "9 April 2025"], "--since"), (["--ref", "nonsense"], "not a decision reference"),
     (["--k", "0"], "--k"), (["--mode", "sparse"], "--mode")],
)
def test_a_bad_option_is_a_clear_error(run, args, words):
    result = run("search", WHY_CLOSED, *args)
    assert result.exit_code != 0
    assert words in result.stderr
