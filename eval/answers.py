"""Answer-level checks: what a reader of the answers would notice, over a question set.

- ``why_first_citation_right``: share of "why" questions whose answer's first citation is from a
  gold decision (the answer is about the right decision);
- ``outcome_questions_citing_gold_decision``: share of outcome questions ("why", or with an
  outcome) whose answer cites a gold decision anywhere;
- ``citations_containing_their_sentence``: share of citations whose paragraph contains every
  sentence it is cited for (must be 1.0);
- ``negatives_refused``: share of negative questions answered "not found", and the same per kind
  of negative (``council``: a council not indexed, ``topic``: a subject nothing covers,
  ``mismatch``: a complainant or detail no decision has), with how each was refused (by the
  council rule, by relevance alone, by the alias check);
- ``positives_answered``: share of questions with gold that got an answer, and the shares lost to
  each way of refusing;
- ``answer_contains_line``: share of answerable questions with a marked answering line (the
  sentence of the decision that best answers it, marked by the question's writer) whose answer
  quotes that line, overall and per kind (``answer_contains_line_why`` ...); a question not
  answered counts as not containing it;
- ``answers_opening_with_fragment``: how many answers open with a piece of a thought rather than
  a whole one (a list item without its lead-in, a lead-in without its item, a sentence begun
  mid-way); a count, not a share: it should be 0.
"""

from __future__ import annotations

import re
from collections import Counter

from rag.similarity import ITEM_MARKER

_MARKER = re.compile(r"\s*\[\d+\]")
_FRAGMENT_START = re.compile(r"^(?:\(?[a-z]{1,3}\)|\(?\d{1,2}[.)]|[•\-–·*]|[a-z,;:)])")
KINDS = ("why", "fact", "paraphrase", "reference", "law")


def gold_refs(question) -> set[str]:
    return {g.split("#")[0].replace("-", " ") for g in question.gold}


def scorable(questions, indexed: set[str]) -> list:
    """The questions whose gold decisions are all indexed, and the negatives."""
    return [q for q in questions if not q.gold or gold_refs(q) <= indexed]


def answer_all(archive, questions) -> dict:
    """Extractive answers to the scorable ``questions``, by id."""
    from rag.answer import Answerer

    answerer = Answerer(archive, llm=None)
    usable = scorable(questions, set(answerer.retriever.catalogue.decisions))
    return {q.id: answerer.answer(q.question) for q in usable}


def answer_checks(archive, questions) -> dict[str, float]:
    """``score_answers`` of the extractive answers to ``questions``."""
    answers = answer_all(archive, questions)
    return score_answers([q for q in questions if q.id in answers], answers)


def normalised(text: str) -> str:
    """Text compared for containment: citation markers gone, quotes straightened, spacing and case
    made uniform, so that a line quoted across two adjacent sentences still matches."""
    text = _MARKER.sub("", text).replace("’", "'").replace("‘", "'").replace("“", '"').replace("”", '"')
    return " ".join(text.lower().split())


def line_key(line: str) -> str:
    """A marked line as compared: without a list item's bullet or letter, normalised, without its
    full stop."""
    return normalised(ITEM_MARKER.sub("", line)).rstrip(".")


def contains_line(answer, line: str) -> bool:
    """Whether the answer quotes the marked line: the line (without a list item's bullet or
    letter) appears in the answer's text, as written or across the sentences quoted for its
    citations in their order."""
    want = line_key(line)
    if not want or not answer.found:
        return False
    quoted = " ".join(s for c in answer.citations for s in c.sentences)
    return want in normalised(answer.text) or want in normalised(quoted)


def fragment(sentence: str) -> bool:
    """Whether a quoted piece is not a whole thought: a list item with no lead-in ("a) refused
    ..."), a lead-in with no item ("Mr X complained the Council:"), or a piece begun mid-sentence. An item ending in ";" or
    ", or" is whole: that is how lists are punctuated."""
    s = sentence.strip()
    return bool(s) and (bool(_FRAGMENT_START.match(s)) or s.endswith(":"))


def opens_with_fragment(answer) -> bool:
    """Whether the first thought an answer quotes is a fragment (answers quote in citation order):
    a lead-in ending in ":" is whole when its item is quoted with it."""
    if not answer.found or not answer.citations or not answer.citations[0].sentences:
        return False
    pieces = answer.citations[0].sentences
    first = pieces[0].strip()
    if first.endswith(":") and len(pieces) > 1:
        return bool(_FRAGMENT_START.match(first))
    return fragment(first)


def share(k: int, n: int) -> float:
    return round(k / n, 4) if n else 1.0


def score_answers(questions, answers: dict) -> dict[str, float]:
    """The checks of the module docstring from answers already made (``answers[q.id]``)."""
    why = why_ok = outcome = outcome_ok = citations = contained = positives = positives_ok = 0
    negatives: Counter = Counter()
    refused: Counter = Counter()
    how: Counter = Counter()
    lost: Counter = Counter()
    lined: Counter = Counter()
    contains: Counter = Counter()
    fragments = 0
    for q in questions:
        a = answers[q.id]
        fragments += opens_with_fragment(a)
        if q.answer and not q.negative:
            lined[q.kind] += 1
            contains[q.kind] += contains_line(a, q.answer)
        for c in a.citations:
            citations += 1
            contained += bool(c.sentences) and all(s in c.hit.text for s in c.sentences)
        if q.negative:
            kind = q.negative_kind or "topic"
            negatives[kind] += 1
            if not a.found:
                refused[kind] += 1
                how[a.refused or "topic"] += 1
            continue
        positives += 1
        positives_ok += a.found
        if not a.found:
            lost[a.refused or "topic"] += 1
        refs = gold_refs(q)
        if q.kind == "why":
            why += 1
            why_ok += bool(a.citations) and a.citations[0].hit.ref in refs
        if q.kind == "why" or q.outcome:
            outcome += 1
            outcome_ok += any(c.hit.ref in refs for c in a.citations)
    out = {
        "why_first_citation_right": share(why_ok, why),
        "outcome_questions_citing_gold_decision": share(outcome_ok, outcome),
        "citations_containing_their_sentence": share(contained, citations),
        "negatives_refused": share(sum(refused.values()), sum(negatives.values())),
    }
    for kind in ("council", "topic", "mismatch"):
        out[f"negatives_refused_{kind}"] = share(refused[kind], negatives[kind]) if negatives[kind] else None
    for reason, name in (("council", "council_rule"), ("topic", "relevance"), ("mismatch", "alias_check")):
        out[f"negatives_refused_by_{name}"] = share(how[reason], sum(negatives.values()))
    out["answer_contains_line"] = share(sum(contains.values()), sum(lined.values()))
    for kind in KINDS:
        out[f"answer_contains_line_{kind}"] = share(contains[kind], lined[kind]) if lined[kind] else None
    out["answers_opening_with_fragment"] = fragments
    out["positives_answered"] = share(positives_ok, positives)
    for reason, name in (("council", "council_rule"), ("topic", "relevance"), ("mismatch", "alias_check")):
        out[f"positives_refused_by_{name}"] = share(lost[reason], positives)
    return out
