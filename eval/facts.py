"""How well the facts read from decisions (``index.facts``) agree with hand labels.

    python -m eval.facts [--labels eval/facts.jsonl] [--corpus DIR] [--show]

``facts.jsonl`` holds the labels of 150 decisions, written by someone who had not seen the rules.
They are split in two by reference (``split_of``): the rules were written and corrected looking
at the ``development`` half only (``--show`` lists its disagreements); the ``held-out`` half
measures them. Per field, precision and recall of the labelled items: fault and injustice (the
value of each decision that has one), remedy kinds (one item per decision and kind), payment
amounts (decision and sum), and reasons a complaint was not investigated (decision and reason).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

from eval.check_questions import corpus_dir
from index.config import SEEDS_DIR
from index.facts import facts_of
from index.parse import parse_file

LABELS = Path(__file__).resolve().parent / "facts.jsonl"
FIELDS = ("fault", "injustice", "remedy kinds", "payment amounts", "closed because")


def split_of(ref: str) -> str:
    """``development`` or ``held-out``, fixed by the reference (half each, whatever the order)."""
    return "development" if int(hashlib.sha1(ref.encode()).hexdigest(), 16) % 2 == 0 else "held-out"


def items(facts: dict, ref: str) -> dict[str, set]:
    """The labelled items of one decision's facts (the ``to_json`` shape), per field."""
    return {
        "fault": {(ref, facts["fault"])} if facts.get("fault") else set(),
        "injustice": {(ref, facts["injustice"])} if facts.get("injustice") else set(),
        "remedy kinds": {(ref, r["kind"]) for r in facts.get("remedies", ())},
        "payment amounts": {(ref, r["amount"]) for r in facts.get("remedies", ())
                            if r["kind"] == "payment" and r.get("amount") is not None},
        "closed because": {(ref, r["reason"]) for r in facts.get("closed_because", ())},
    }


def measure(labels: list[dict], decisions: dict) -> dict[str, dict[str, dict[str, float]]]:
    """{split: {field: {"precision", "recall", "labelled", "extracted"}}} plus disagreements."""
    tallies: dict[str, dict[str, list[set]]] = {}
    wrong: dict[str, list] = {}
    for label in labels:
        ref = label["ref"]
        split = split_of(ref)
        got = items(facts_of(decisions[ref]).to_json(), ref)
        want = items(label, ref)
        for f in FIELDS:
            t = tallies.setdefault(split, {}).setdefault(f, [set(), set()])
            t[0] |= got[f]
            t[1] |= want[f]
            if got[f] != want[f]:
                wrong.setdefault(split, []).append((ref, f, sorted(got[f] - want[f], key=str), sorted(want[f] - got[f], key=str)))
    out = {}
    for split, fields in sorted(tallies.items()):
        out[split] = {}
        for f, (got, want) in fields.items():
            hit = len(got & want)
            out[split][f] = {"precision": round(hit / len(got), 3) if got else 1.0,
                             "recall": round(hit / len(want), 3) if want else 1.0,
                             "labelled": len(want), "extracted": len(got)}
    out["_wrong"] = wrong
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=Path, default=LABELS)
    parser.add_argument("--corpus", type=Path, default=corpus_dir())
    parser.add_argument("--show", action="store_true", help="list the development half's disagreements")
    args = parser.parse_args(argv)
    files = sorted(SEEDS_DIR.glob("*.txt")) + sorted(args.corpus.glob("*.txt"))
    decisions = {d.reference: d for d in map(parse_file, files)}
    labels = [json.loads(line) for line in args.labels.read_text(encoding="utf-8").splitlines() if line.strip()]
    result = measure(labels, decisions)
    wrong = result.pop("_wrong")
    counts = {s: sum(split_of(lab["ref"]) == s for lab in labels) for s in result}
    print("| field | " + " | ".join(f"{s} ({counts[s]} decisions) precision / recall" for s in result) + " |")
    print("|---|" + "---|" * len(result))
    for f in FIELDS:
        print(f"| {f} | " + " | ".join(f"{result[s][f]['precision']:.3f} / {result[s][f]['recall']:.3f} "
                                        f"({result[s][f]['extracted']} of {result[s][f]['labelled']})" for s in result) + " |")
    if args.show:
        print("\ndevelopment disagreements (extracted but not labelled / labelled but not extracted):")
        for ref, f, extra, missing in wrong.get("development", []):
            print(f"- {ref} {f}: +{extra} -{missing}")
    out = Path(__file__).resolve().parent / "results" / "facts.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
