"""Which sentences of a decision answer a question: whole thoughts, scored for what they answer.

A paragraph is cut into *thoughts*: a sentence, or a list item quoted with the lead-in that
introduces it ("They complain the Council:" + "has not liaised enough with ..."). Every piece of
a thought is a verbatim substring of the paragraph, so citations and highlighting stay exact; a
bare item ("a) refused to pay ...") or a lead-in with no item is never quoted on its own.

Each thought gets named features (how close it is to the question, its section, whether it states
a finding, a reason, a remedy or only restates the complaint, and how those meet what the question
asks), and a linear model weighs them. The sentences most similar to a question are usually the
ones describing the complaint; the fitted weights, not similarity alone, decide. The weights are
fitted on the sentences the tuning questions' writers marked as answering
(``python -m eval.fit_sentences --write``) and read from ``rag/selection.json``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from index.lexical import tokenize
from index.passage import SUMMARY
from rag.evidence import section_role
from rag.parameters import SELECTION_FILE
from rag.ranker import Ranker, load_ranker
from rag.retriever import Hit
from rag.similarity import ITEM_MARKER, sentences

_ANAPHOR = re.compile(r"^(?:This|That|These|Those|It|Its|They|Their|He|His|She|Her|However|But|So|Therefore|Also|"
                      r"And|As a result|In addition|Because of this)\b")
# The vocabulary decisions use for each kind of statement (their weights are fitted, not set).
_FINDING = re.compile(
    r"\b(?:no (?:evidence of )?fault|not (?:at )?fault|(?:was|is|were|been) fault|at fault|fault (?:caus|which|that|by|in)"
    r"|find(?:ing)? (?:no )?fault|found (?:no )?fault|(?:did|do|does) not find|(?:I|we) (?:have )?f(?:i|ou)nd"
    r"|maladministration|not uphold|upheld|(?:will|shall|cannot|can ?not|did) not investigate|not to investigate"
    r"|discontinu\w*|acted (?:properly|correctly|reasonably|appropriately)|was entitled|(?:was|were) wrong)", re.I)
_REASON = re.compile(r"\b(?:because|as (?:the|it|he|she|they|there)|since|therefore|this means|so (?:we|I)\b|"
                     r"reasons?|due to|unless|(?:is|was) (?:late|out of time)|reasonable (?:for|to expect))", re.I)
_REMEDY = re.compile(r"\b(?:agree[sd]? to|(?:will|should|must|to) (?:pay|apologi[sz]e|review|reconsider|remind|train)"
                     r"|apologi[sz]\w*|remed\w*|recommend\w*|compensat\w*|symbolic payment|put (?:this|things|it) right)"
                     r"|£\s?\d", re.I)
_MONEY = re.compile(r"£\s?\d")
_COMPLAINT = re.compile(r"\b(?:complain\w*|says?|said|feels?|felt|believes?|unhappy|wants?|wanted|alleg\w*|"
                        r"(?:is|was) concerned|disputes?|objects?|objected)\b", re.I)
_UPHOLD = re.compile(r"\b(?:we|I) (?:uphold|do not uphold|have upheld)\b", re.I)
_CLAIM = re.compile(r"\b(?:complain(?:s|ed|ing)?|says?|said|alleg(?:es?|ed|ing|ations?)|feels?|believes?)\b", re.I)
_LAW = re.compile(r"\b(?:section \d|Act (?:19|20)\d\d|regulations?|statutory|guidance|the law\b|legislation)", re.I)
# What a question asks for, beyond "why" and "what was complained about" (``rag.query``).
_ASKS_REMEDY = re.compile(
    r"\b(?:pay|paid|payment|compensat\w*|money|£|remed\w*|put (?:it|things|this|matters) right|apolog\w*"
    r"|agree[ds]? to|(?:has|have|had) to do|asked to do|told to do|recommend\w*)\b|£", re.I)
_ASKS_FAULT = re.compile(
    r"\b(?:at fault|any fault|find (?:any )?fault|found (?:any )?fault|fault (?:found|was found)|(?:do|did|done|get|got)"
    r" (?:\w+ )?(?:anything |something )?wrong|uphold|upheld|maladministration)\b", re.I)

ROLES = ("summary", "decision", "assessment", "complaint", "background", "powers", "procedure")
FEATURES = (
    "similarity", "similarity_gap", "similarity_rank", "passage_weight", "lexical_overlap", "rare_word_overlap",
    "first_in_paragraph",
    *(f"role_{r}" for r in ROLES),
    "states_finding", "states_reason", "states_remedy", "states_money", "restates_complaint", "cites_law",
    "list_item", "short", "anaphor",
    "why_finding", "why_reason", "why_complaint", "outcome_finding", "outcome_summary_or_decision",
    "complaint_question_complaint", "complaint_question_complaint_section", "remedy_question_remedy",
    "remedy_question_money", "fault_question_finding", "law_question_law", "reference_summary",
)
INDEX = {name: i for i, name in enumerate(FEATURES)}


@dataclass(frozen=True)
class Thought:
    """One quotable unit of a paragraph: ``pieces`` are verbatim substrings of ``hit.text``."""

    hit: Hit
    index: int  # its place among the paragraph's thoughts
    pieces: tuple[str, ...]
    item: bool = False  # a list item with its lead-in

    @property
    def text(self) -> str:
        return " ".join(self.pieces)

    @property
    def main(self) -> str:
        """The piece that carries the thought (the item, not its lead-in)."""
        return self.pieces[-1]


def thoughts(hit: Hit) -> list[Thought]:
    """The whole thoughts of a paragraph, in its order. A line ending in ":" followed by list
    items is a lead-in: quoted with each item, never alone. An item with no lead-in in its
    paragraph, or a piece starting in lower case, is a fragment and not offered."""
    out: list[Thought] = []
    lead: str | None = None
    for line in hit.text.split("\n"):
        if not line.strip():
            continue
        marker = ITEM_MARKER.match(line)
        found = sentences(line[marker.end():] if marker else line)
        if not found:
            continue
        if marker:
            if lead is not None:
                out.append(Thought(hit, len(out), (lead, found[0]), item=True))
            elif found[0][:1].isupper():
                out.append(Thought(hit, len(out), (found[0],), item=True))
            found = found[1:]
        else:
            lead = None
            if found[-1].rstrip().endswith(":"):
                lead = found[-1]
                found = found[:-1]
        out.extend(Thought(hit, len(out) + i, (s,)) for i, s in enumerate(found) if s[:1].isupper() or s[:1] in "£\"“‘'(")
    return [Thought(t.hit, i, t.pieces, t.item) for i, t in enumerate(out)]


def leans_back(text: str) -> bool:
    """Whether a sentence leans on the one before it ("This is because ..."): quoted, it brings
    that one along."""
    return bool(_ANAPHOR.match(text))


def asks_remedy(question: str) -> bool:
    """Whether the question asks what was done or paid to put things right."""
    return bool(_ASKS_REMEDY.search(question))


def asks_fault(question: str) -> bool:
    """Whether the question asks if the authority was at fault (answered yes or no first)."""
    return bool(_ASKS_FAULT.search(question))


def states_finding(text: str) -> bool:
    """Whether a sentence states the Ombudsman's finding, not the complaint's claim of fault
    ("Mr B complains the Council was at fault" states no finding)."""
    return bool(_FINDING.search(text) or _UPHOLD.search(text)) and not _CLAIM.search(text)


@dataclass(frozen=True)
class Asked:
    """What the question asks, as the features need it."""

    why: bool = False
    outcome: bool = False  # about the outcome or its reasons
    complaint: bool = False  # what was complained about
    remedy: bool = False
    fault: bool = False
    law: bool = False
    reference: bool = False  # a reference with no paragraph: its Summary says what it decided
    words: frozenset[str] = frozenset()  # the question's distinctive words
    rarity: tuple[tuple[str, float], ...] = ()  # those words with their IDF in the archive


def features(pool: list[Thought], similarity: np.ndarray, asked: Asked) -> np.ndarray:
    """The feature matrix of ``pool`` (``similarity[i]``: cosine of thought i to the question)."""
    m = np.zeros((len(pool), len(FEATURES)), dtype=np.float64)
    best = float(similarity.max()) if len(pool) else 0.0
    place = np.empty(len(pool), dtype=np.int64)
    place[np.argsort(-similarity, kind="stable")] = np.arange(len(pool))
    rarity = dict(asked.rarity)
    total = sum(rarity.values())
    for i, (t, sim) in enumerate(zip(pool, similarity)):
        text, role = t.text, section_role(t.hit.section, t.hit.paragraph)
        finding, reason, remedy = bool(_FINDING.search(text)), bool(_REASON.search(text)), bool(_REMEDY.search(text))
        money, complaint, law = bool(_MONEY.search(text)), bool(_COMPLAINT.search(text)), bool(_LAW.search(text))
        row = m[i]
        row[INDEX["similarity"]] = float(sim)
        row[INDEX["similarity_gap"]] = float(sim) - best
        row[INDEX["similarity_rank"]] = 1.0 / (1.0 + place[i])
        row[INDEX["passage_weight"]] = t.hit.score
        if asked.words:
            words = set(tokenize(text))
            row[INDEX["lexical_overlap"]] = len(asked.words & words) / len(asked.words)
            if total:
                row[INDEX["rare_word_overlap"]] = sum(v for w, v in rarity.items() if w in words) / total
        row[INDEX["first_in_paragraph"]] = float(t.index == 0)
        if role in ROLES:
            row[INDEX[f"role_{role}"]] = 1.0
        row[INDEX["states_finding"]] = finding
        row[INDEX["states_reason"]] = reason
        row[INDEX["states_remedy"]] = remedy
        row[INDEX["states_money"]] = money
        row[INDEX["restates_complaint"]] = complaint
        row[INDEX["cites_law"]] = law
        row[INDEX["list_item"]] = t.item
        row[INDEX["short"]] = len(t.main.split()) < 6
        row[INDEX["anaphor"]] = leans_back(t.main) and t.index > 0
        row[INDEX["why_finding"]] = asked.why and finding
        row[INDEX["why_reason"]] = asked.why and reason
        row[INDEX["why_complaint"]] = asked.why and complaint
        row[INDEX["outcome_finding"]] = asked.outcome and finding
        row[INDEX["outcome_summary_or_decision"]] = asked.outcome and role in ("summary", "decision")
        row[INDEX["complaint_question_complaint"]] = asked.complaint and complaint
        row[INDEX["complaint_question_complaint_section"]] = asked.complaint and role == "complaint"
        row[INDEX["remedy_question_remedy"]] = asked.remedy and remedy
        row[INDEX["remedy_question_money"]] = asked.remedy and money
        row[INDEX["fault_question_finding"]] = asked.fault and finding
        row[INDEX["law_question_law"]] = asked.law and law
        row[INDEX["reference_summary"]] = asked.reference and t.hit.paragraph == SUMMARY
    return m


def load_selector() -> Ranker:
    """The fitted sentence weights (a missing or stale file names the command that writes it)."""
    return load_ranker(SELECTION_FILE, FEATURES, "python -m eval.fit_sentences --write")
