"""The ranking function: its weights are fitted by one command that prints cross-validated figures
and writes them, with the command and the date, to the one file the retriever reads; a missing
or stale file is an error that says what to run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rag.evidence import FEATURES, INDEX, section_role
from rag.ranker import Ranker, RankerError, load_ranker


def test_the_shipped_weights_cover_every_feature_and_say_how_they_were_made():
    ranker = load_ranker()
    assert ranker.features == FEATURES
    assert ranker.meta["command"].startswith("python -m eval.fit_ranker")
    assert ranker.meta["date"] and ranker.meta["cross_validated"]["mrr@10"] > 0.5


def test_weights_of_other_features_are_refused_with_the_command_to_run(tmp_path):
    stale = load_ranker().to_json()
    stale["features"] = stale["features"][:-1] + ["a_feature_no_longer_computed"]
    path = tmp_path / "ranker.json"
    path.write_text(json.dumps(stale))
    with pytest.raises(RankerError, match="eval.fit_ranker"):
        load_ranker(path)
    with pytest.raises(RankerError, match="eval.fit_ranker"):
        load_ranker(tmp_path / "missing.json")


def test_scores_are_probabilities_that_grow_with_a_positively_weighted_feature():
    n = len(FEATURES)
    weights = np.zeros(n)
    weights[INDEX["dense"]] = 2.0
    ranker = Ranker(FEATURES, np.zeros(n), np.ones(n), weights, -1.0)
    rows = np.zeros((3, n))
    rows[:, INDEX["dense"]] = [0.1, 0.5, 0.9]
    p = ranker.probability(rows)
    assert np.all((0 < p) & (p < 1)) and list(np.argsort(p)) == [0, 1, 2]
    assert p[1] == pytest.approx(1 / (1 + np.exp(0.0)))  # 2 * 0.5 - 1 = 0


@pytest.mark.parametrize("section, paragraph, role", [
    ("Summary", "summary", "summary"), ("The complaint", 1, "complaint"), ("My assessment", 5, "assessment"),
    ("What I found", 5, "assessment"), ("Final decision", 9, "decision"), ("Agreed action", 9, "decision"),
    ("The Ombudsman’s role and powers", 2, "powers"), ("The law and guidance", 2, "powers"),
    ("How I considered this complaint", 3, "procedure"), ("What I have investigated", 3, "procedure"),
    ("Background", 4, "background"), ("What happened", 4, "background"), ("Nothing like a heading", 4, "other"),
])
def test_a_section_heading_says_what_the_section_does(section, paragraph, role):
    assert section_role(section, paragraph) == role


SEED_QUESTIONS = [  # written for this test, about the two seed decisions
    ("t1", "why", "for what reason would the ombudsman not look at Mr X's complaint", "24-016-809", ["summary", 18]),
    ("t2", "why", "why is Dr X's complaint not being investigated", "24-000-184", ["summary", 13]),
    ("t3", "fact", "when did the council hold the strategy meeting about Mr X's son", "24-016-809", [15]),
    ("t4", "fact", "what did the council apologise to Dr X about", "24-000-184", [7]),
    ("t5", "fact", "what did Dr X say was wrong in the assessment", "24-000-184", [9]),
    ("t6", "fact", "what was the safety plan for Mr X's children", "24-016-809", [8]),
    ("t7", "paraphrase", "they made me leave my home and my children's mother stayed", "24-016-809", [7]),
    ("t8", "paraphrase", "the taxi they promised me never came", "24-000-184", [7]),
    ("t9", "why", "how come the ombudsman would not add to Leicestershire's own investigation for Dr X", "24-000-184", ["summary"]),
    ("t10", "fact", "what did Mr X's children say happened at home", "24-016-809", [9]),
]


@pytest.mark.slow
def test_the_fitting_command_prints_cross_validated_figures_and_writes_the_weights(seeds_archive, tmp_path, capsys):
    from eval.fit_ranker import main

    qset = tmp_path / "tuning.jsonl"
    with qset.open("w") as f:
        for i, (qid, kind, question, slug, paragraphs) in enumerate(SEED_QUESTIONS):
            gold = [{"ref": slug.replace("-", " "), "paragraph": p} for p in paragraphs]
            f.write(json.dumps({"id": qid, "kind": kind, "question": question, "gold": gold, "set": "seeds",
                                "outcome": "Closed after initial enquiries" if kind == "why" else "",
                                "writer": "ab"[i % 2]}) + "\n")
    out = tmp_path / "weights.json"
    assert main(["--index", str(seeds_archive.store_config.index_dir), "--set", str(qset), "--folds", "2",
                 "--write", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "10 tuning questions ranked by the function" in printed
    assert "| rrf | - |" in printed and "| pairwise | 0.01 |" in printed and "across writers" in printed
    written = json.loads(out.read_text())
    assert written["command"] == "python -m eval.fit_ranker --write --folds 2"
    assert written["fitted_on"].startswith("10 questions of tuning.jsonl")
    assert written["features"] == list(FEATURES) and len(written["weights"]) == len(FEATURES)
    assert load_ranker(out).features == FEATURES


def test_the_unseen_questions_are_never_fitted_on(tmp_path):
    from eval.fit_ranker import main

    with pytest.raises(SystemExit):
        main(["--set", str(Path("eval") / "unseen.jsonl")])
