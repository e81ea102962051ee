"""The archive as a whole: statistics that equal counts made from the files, every figure with the
references it counts; aggregate questions answered with the number first and each decision cited;
cases like mine; decisions side by side."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from click.testing import CliRunner

from index.config import SEEDS_DIR
from index.parse import parse_file
from rag.stats import stats
from ui.cli import main

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def parsed(corpus_dir):
    files = sorted(SEEDS_DIR.glob("*.txt")) + sorted(corpus_dir.glob("*.txt"))
    return {d.reference: d for d in map(parse_file, files)}


def cli(archive, *args):
    result = CliRunner().invoke(main, [*args, "--index", str(archive.store_config.index_dir)])
    assert result.exit_code == 0, result.output
    return result.output


def test_counts_by_outcome_and_authority_equal_counts_made_from_the_files(corpus_archive, parsed):
    for by, key in (("outcome", lambda d: d.outcome or "unknown"), ("authority", lambda d: d.authority),
                    ("year", lambda d: str(d.decision_date.year) if d.decision_date else "unknown")):
        body = json.loads(cli(corpus_archive, "stats", "--by", by, "--json"))
        assert body["total"] == len(parsed)
        mine = Counter(key(d) for d in parsed.values())
        assert {g["key"]: g["count"] for g in body["groups"]} == dict(mine), by
        for g in body["groups"]:  # every figure comes with the references it counts
            assert sorted(g["refs"]) == sorted(r for r, d in parsed.items() if key(d) == g["key"])
            assert g["upheld"] == sum(parsed[r].outcome == "Upheld" for r in g["refs"])


def test_filters_narrow_the_counts_as_they_narrow_a_search(corpus_archive, parsed):
    body = json.loads(cli(corpus_archive, "stats", "--by", "authority", "--outcome", "upheld", "--since", "2023-01-01",
                          "--json"))
    expected = {r for r, d in parsed.items() if d.outcome == "Upheld" and d.decision_date and d.decision_date.year >= 2023}
    assert body["total"] == len(expected) and set(body["refs"]) == expected


def test_payments_are_counted_with_their_median_and_range(corpus_archive):
    body = json.loads(cli(corpus_archive, "stats", "--by", "remedy", "--remedy", "payment", "--json"))
    p = body["payments"]
    assert p["count"] >= 10 and p["min"] <= p["median"] <= p["max"]
    paying = {g["key"]: g for g in body["groups"]}["payment"]
    assert paying["count"] == body["total"]  # the filter kept only decisions with a payment
    csv_out = cli(corpus_archive, "stats", "--by", "remedy", "--remedy", "payment", "--csv")
    assert csv_out.splitlines()[0] == "remedy,count,upheld,upheld_share,payments,median_payment,min_payment,max_payment,refs"


def test_stats_of_a_small_made_up_archive_are_exact():
    decisions = {
        "1": {"authority": "A", "outcome": "Upheld", "decision_date": "2024-01-01",
              "facts": {"remedies": [{"kind": "payment", "amount": 300}, {"kind": "apology", "amount": None}]}},
        "2": {"authority": "A", "outcome": "Not upheld", "decision_date": "2023-01-01", "facts": {}},
        "3": {"authority": "B", "outcome": "Upheld", "decision_date": "2024-05-01",
              "facts": {"remedies": [{"kind": "payment", "amount": 100}, {"kind": "payment", "amount": 500}]}},
    }
    got = stats(decisions, "authority")
    assert got["total"] == 3 and got["upheld"] == 2
    assert [(g["key"], g["count"], g["upheld"], g["refs"]) for g in got["groups"]] == [("A", 2, 1, ["1", "2"]), ("B", 1, 1, ["3"])]
    assert got["payments"]["median"] == 300 and (got["payments"]["min"], got["payments"]["max"]) == (100, 500)
    assert [g["key"] for g in stats(decisions, "remedy")["groups"]] == ["payment", "apology", "none"]
    with pytest.raises(ValueError, match="cannot group by 'colour'"):
        stats(decisions, "colour")


def test_an_aggregate_question_is_answered_with_the_number_first_and_each_decision_cited(corpus_archive, parsed):
    from rag.answer import Answerer

    answerer = Answerer(corpus_archive, llm=None)
    a = answerer.answer("how many upheld complaints against Cornwall Council are there?")
    expected = sorted(r for r, d in parsed.items() if d.authority == "Cornwall Council" and d.outcome == "Upheld")
    assert a.text.startswith(f"{len(expected)} of the {len(parsed)} indexed decisions")
    assert sorted(c.hit.ref for c in a.citations) == expected
    assert all(c.hit.paragraph == "summary" for c in a.citations)
    assert a.figures["total"] == len(expected)
    most = answerer.answer("which councils had the most upheld complaints about school transport since 2020?")
    transport = [r for r, d in parsed.items() if d.category_path == "Education > School transport" and d.outcome == "Upheld"
                 and d.decision_date and d.decision_date.year >= 2020]
    assert most.text.startswith(f"Among the {len(transport)} indexed decision")
    assert {c.hit.ref for c in most.citations} == set(transport)


def test_a_question_that_only_looks_aggregate_gets_the_ordinary_answer(corpus_archive):
    from rag.answer import Answerer

    a = Answerer(corpus_archive, llm=None).answer("how did the council handle Mr X's complaint?")
    assert a.figures is None and not a.text[:1].isdigit()


def test_cases_like_mine_come_with_outcomes_remedies_and_the_paragraph_that_matched(corpus_archive):
    body = json.loads(cli(corpus_archive, "similar", "the carers kept arriving late to put my mum to bed", "--k", "3",
                          "--json"))
    assert len(body["decisions"]) == 3 and len({d["ref"] for d in body["decisions"]}) == 3
    first = body["decisions"][0]
    assert set(first) >= {"ref", "authority", "outcome", "decision_date", "url", "remedies", "paragraph", "text", "score"}
    assert sum(body["outcomes"].values()) == 3
    like = json.loads(cli(corpus_archive, "similar", "--ref", "24-016-809", "--k", "2", "--json"))
    assert "24 016 809" not in {d["ref"] for d in like["decisions"]}


def test_decisions_side_by_side(corpus_archive):
    rows = json.loads(cli(corpus_archive, "compare", "24 016 809", "24-000-184", "--json"))
    assert [r["ref"] for r in rows] == ["24 016 809", "24 000 184"]
    assert all(set(r) >= {"authority", "decision_date", "category", "outcome", "fault", "remedies", "closed_because",
                          "summary"} for r in rows)
    result = CliRunner().invoke(main, ["compare", "24 016 809", "--index", str(corpus_archive.store_config.index_dir)])
    assert result.exit_code == 1 and "two to five references" in result.output


def test_show_json_carries_the_facts(corpus_archive):
    body = json.loads(cli(corpus_archive, "show", "24-016-809", "--json"))
    assert body["fault"] is None and {c["reason"] for c in body["closed_because"]} >= {"no_evidence_of_fault"}
    assert all(set(r) == {"kind", "amount", "for", "paragraph", "text"} for r in body["remedies"])
