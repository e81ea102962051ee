"""The foundation commands: ``ombudsman show`` and ``ombudsman ingest``, as the command-line contract
in ARCHITECTURE.md describes them, run through Click's test runner."""

from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner

from index.config import SEEDS_DIR
from index.parse import parse_file
from index.facts import facts_of
from ui.cli import main

SHOW_KEYS = {"ref", "authority", "category", "outcome", "decision_date", "url", "summary", "paragraphs"}
REPORT_KEYS = {"added", "replaced", "unchanged", "repaired", "removed", "failed", "seconds",
               "embedded_paragraphs", "paragraphs_per_second", "results"}


@pytest.fixture
def run(seeds_archive):
    """``ombudsman --index <the seeds index> --encoder <its encoder> ARGS``."""

    def invoke(*args: str, index=None):
        index = index or seeds_archive.store_config.index_dir
        return CliRunner().invoke(
            main, ["--index", str(index), "--encoder", seeds_archive.embedder.encoder, *args]
        )

    return invoke


def test_show_json_has_the_architecture_shape_with_official_numbers(run):
    result = run("show", "24 016 809", "--json")
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert SHOW_KEYS <= set(shown)
    assert shown["ref"] == "24 016 809"
    assert shown["authority"] == "Leicestershire County Council"
    assert shown["category"] == "Children's care services > Child protection"
    assert shown["outcome"] == "Closed after initial enquiries"
    assert shown["decision_date"] == "2025-04-09"
    assert shown["url"] == "https://www.lgo.org.uk/decisions/children-s-care-services/child-protection/24-016-809"
    assert shown["summary"].startswith("We will not investigate this complaint about the Council’s engagement")
    paragraphs = shown["paragraphs"]
    assert [p["number"] for p in paragraphs] == list(range(1, 19))
    assert all({"number", "section", "text"} <= set(p) for p in paragraphs)
    p15 = paragraphs[14]
    assert p15["number"] == 15
    assert p15["section"] == "My assessment"
    assert p15["text"].startswith("The Council acknowledges it should have held the strategy meeting")
    assert paragraphs[17]["section"] == "Final decision"
    # What the store gives back is exactly what the parser made of the file,
    # plus the facts read from it: not investigated, and why.
    parsed = parse_file(SEEDS_DIR / "24-016-809.txt")
    assert shown == {**parsed.to_json(), **facts_of(parsed).to_json()}
    assert shown["fault"] is None
    assert "no_evidence_of_fault" in [r["reason"] for r in shown["closed_because"]]


def test_show_json_of_the_other_seed(run):
    shown = json.loads(run("show", "24 000 184", "--json").stdout)
    assert [p["number"] for p in shown["paragraphs"]] == list(range(1, 14))
    assert shown["decision_date"] == "2024-06-04"
    assert shown["paragraphs"][12]["section"] == "Final decision"


@pytest.mark.parametrize("written", ["24-016-809", "24016809", "24/016/809", " 24 016 809 "])
def test_show_finds_a_reference_written_any_way(run, written):
    result = run("show", written, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["ref"] == "24 016 809"


def test_show_prints_numbered_paragraphs_under_their_headings(run):
    result = run("show", "24 016 809")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.startswith("Leicestershire County Council (24 016 809)\n")
    assert "Decision date: 2025-04-09" in out
    assert "\nMy assessment > Poor communication and report inaccuracies\n" in out
    assert "\n  15. The Council acknowledges it should have held the strategy meeting" in out
    assert "\n  18. We will not investigate Mr X’s complaint" in out


def test_show_of_an_unknown_reference_names_the_nearest_references(run):
    result = run("show", "24 016 808", "--json")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert "24 016 808 is not in the local index" in result.stderr
    assert "nearest indexed references are 24 016 809, 24 000 184" in result.stderr


def test_show_of_text_that_is_no_reference_is_a_clear_error(run):
    result = run("show", "the strategy meeting")
    assert result.exit_code == 1
    assert "is not a decision reference" in result.stderr


@pytest.fixture(scope="module")
def first_ingest(seeds_archive, tmp_path_factory):
    """``ombudsman ingest --json`` of a copy of the seeds into a new index: (folder, index, result)."""
    source = tmp_path_factory.mktemp("cli-ingest") / "decisions"
    shutil.copytree(SEEDS_DIR, source)
    index = source.parent / "index"
    result = CliRunner().invoke(main, ["--index", str(index), "--encoder", seeds_archive.embedder.encoder,
                                       "ingest", str(source), "--json"])
    return source, index, result


def test_ingest_json_report_fields(first_ingest):
    source, _, result = first_ingest
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert REPORT_KEYS <= set(report)
    assert (report["added"], report["replaced"], report["unchanged"], report["repaired"], report["removed"],
            report["failed"]) == (2, 0, 0, 0, 0, 0)
    assert report["embedded_paragraphs"] == 19 + 14  # paragraphs plus the Summary of each seed
    assert report["paragraphs_per_second"] > 0
    assert report["seconds"] > 0
    results = {r["reference"]: r for r in report["results"]}
    assert set(results) == {"24 016 809", "24 000 184"}
    assert results["24 016 809"] == {"source": str(source / "24-016-809.txt"), "status": "added",
                                     "reference": "24 016 809", "reason": "", "paragraphs": 19}
    assert results["24 000 184"]["paragraphs"] == 14


def test_ingest_again_reports_unchanged(run, first_ingest):
    source, index, _ = first_ingest
    text = run("ingest", str(source), index=index)
    assert text.exit_code == 0, text.output
    assert text.stdout.strip().split("\n")[-1].startswith(
        "0 added, 0 replaced, 2 unchanged, 0 repaired, 0 removed, 0 failed in "
    )
    again = json.loads(run("ingest", str(source), "--json", index=index).stdout)
    assert (again["added"], again["unchanged"], again["embedded_paragraphs"]) == (0, 2, 0)
    assert {r["status"] for r in again["results"]} == {"unchanged"}
    assert {r["paragraphs"] for r in again["results"]} == {19, 14}


def test_ingest_without_paths_indexes_the_seeds(run, tmp_path, seeds_archive):
    # Copy the seeds index so that nothing needs embedding; the default PATH is seeds/.
    index = tmp_path / "index"
    shutil.copytree(seeds_archive.store_config.index_dir, index)
    result = run("ingest", "--json", index=index)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["unchanged"] == 2
    assert {r["source"] for r in report["results"]} == {str(SEEDS_DIR / "24-016-809.txt"),
                                                        str(SEEDS_DIR / "24-000-184.txt")}
