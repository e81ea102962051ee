"""Query understanding: what a question says about which decisions and paragraphs it wants.

Users name decisions by reference in any form, councils by short names ("Leicestershire",
"Hull"), complainants by alias ("Mr X"), outcomes in their own words ("closed", "not upheld"),
and provisions ("section 26(6)(c)"). Each becomes a structured field the retriever can act on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable

from index.decision import REFERENCE_PATTERN, find_references
from index.statute import Provision, parse_provision_query
from rag.parameters import FUZZY_MIN_LETTERS

UPHELD, NOT_UPHELD, CLOSED = "Upheld", "Not upheld", "Closed after initial enquiries"

_OUTCOME_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    (NOT_UPHELD, re.compile(r"\bnot\s+upheld\b|\bno\s+fault\b|\bfound\s+no\s+fault\b|\b(?:was|were|is)\s*n['’]?t\s+(?:\w+\s+){0,2}upheld\b|\brejected\b", re.I)),
    (CLOSED, re.compile(
        r"\bclosed\b|\bclose\b|\bnot\s+(?:be\s+)?investigat\w*|\b(?:won|wouldn|didn)['’]?t\s+(?:(?:the\s+)?ombudsman\s+|you\s+|we\s+|they\s+)?investigat\w*"
        r"|\brefus\w*\s+to\s+investigate|\bdeclin\w*\s+to\s+investigate|\binitial\s+enquiries\b"
        r"|\bdecided\s+not\s+to\b", re.I)),
    (UPHELD, re.compile(r"(?<!not\s)\bupheld\b|\bfound\s+(?:the\s+council\s+)?at\s+fault\b|\bfault\s+found\b", re.I)),
]
_WHY_RE = re.compile(
    r"^\s*(?:why|how\s+come|for\s+what\s+reason|on\s+what\s+(?:basis|grounds))\b|\breasons?\b|\bwhy\b|\bexplain\b", re.I
)
_LAW_RE = re.compile(
    r"\b(?:ombudsman'?s?|ombudsmen'?s?)\s+(?:role|powers?|jurisdiction)|\bpowers?\b|\bthe\s+law\b|\blegal\b|\bsection\s+\d"
    r"|\bs\.?\s?\d+[A-Z]?\(|\bact\s+\d{4}\b|\bschedule\s+\d|\bjurisdiction\b|\btime\s+limit|\blate\s+complaints?\b"
    r"|\bcan(?:not|'t)?\s+(?:the\s+)?ombudsman\b|\bwhen\s+(?:can|will|does|do)\s+(?:the\s+)?(?:ombudsman|you|we)\b"
    r"|\bwhat\s+(?:can|does)\s+the\s+ombudsman\b|\bgo(?:ing)?\s+to\s+court\b|\btribunal\b|\bright\s+of\s+appeal\b",
    re.I,
)
# A question about the Ombudsman in general, not about one complaint (no reference, no "Mr X").
_GENERAL_RE = re.compile(
    r"\b(?:ombudsm[ae]n|lgo|lgsco)\s+(?:\w+\s+)?(?:is|are|can|could|will|would|does|do|should|won'?t|use[sd]?|decides?|"
    r"looks?|investigates?|considers?|expects?|steps?|shares?|needs?)\b"
    r"|\b(?:can|could|will|would|does|do|should|when|how)\s+(?:the\s+)?(?:ombudsm[ae]n|lgo|lgsco)\b"
    r"|\bappeals?\b|\bcomplain\s+to\b", re.I)
_ALIAS_RE = re.compile(
    r"\b(Mr|Mrs|Ms|Miss|Mx|Dr)\.?\s+(?:and\s+(Mr|Mrs|Ms|Miss|Mx|Dr)\.?\s+)?([A-Za-z])\b(?!['’]?[a-z]{2})", re.I
)
_YEAR_RE = re.compile(r"(?<![\d£$.,/-])(?:19[89]\d|20[0-4]\d)(?![\d,.]\d)")
_COMPLAINT_RE = re.compile(
    r"\bwhat\s+(?:did|does|do|was|were|is)\s+(?:\w+\s+){0,4}?(?:complain\w*|unhappy|object\w*|upset)\b"
    r"|\bwhat\s+(?:was|were|is)\s+(?:the\s+|(?:(?:mr|mrs|ms|miss|dr|mx)\.?\s+)?\w+['’]s\s+|his\s+|her\s+|their\s+)?"
    r"complaints?\s+(?:about|over)\b"
    r"|\bwhat\s+(?:\w+\s+)?(?:complained|complains)\b", re.I)
_ASKS_OUTCOME_RE = re.compile(
    r"\b(?:outcome|result|decid\w*|decision|conclu\w*|find|finding|found|fault|upheld|uphold|closed|close"
    r"|investigat\w*|side[sd]?\s+with|agreed?|ruled?|verdict)\b", re.I)
_PARAGRAPH_RE = re.compile(r"(?:\bparagraphs?|\bparas?\.?|¶|\bp\.?)\s*(\d{1,4})\b", re.I)
_OUTCOME_WORDING = {CLOSED: "not investigate", NOT_UPHELD: "no fault", UPHELD: "at fault"}
_SUMMARY_RE = re.compile(r"\bsummary\b", re.I)
_REFERENCE_WORDS = {"decision", "ref", "reference", "show", "me", "the", "case", "complaint", "lgo", "lgsco", "about",
                    "ombudsman", "what", "is", "was", "open", "find", "read", "no", "number", "a", "of"}

# Words that name a kind of authority rather than which one; stripped to get the short name.
_GENERIC = re.compile(
    r"\b(?:metropolitan\s+)?(?:borough|county|city|district|town|parish)?\s*council\b|\bthe\b|\bcouncil\s+of\b"
    r"|\blondon\s+borough\s+of\b|\broyal\s+borough\s+of\b|\bcity\s+of\b|\bcombined\s+authority\b",
    re.I,
)


def short_name(authority: str) -> str:
    """``Leicestershire County Council`` -> ``leicestershire``; ``London Borough of Lambeth`` -> ``lambeth``."""
    s = _GENERIC.sub(" ", authority.lower().replace("&", " and "))
    return re.sub(r"\s+", " ", re.sub(r"[^a-z0-9 ]", " ", s)).strip()


def _norm(text: str) -> str:
    return " " + re.sub(r"\s+", " ", re.sub(r"[^a-z0-9 ]", " ", text.lower().replace("&", " and "))).strip() + " "


# Councils whose short name is also an everyday word ("can I bury my mother here?", "reading the
# decision", "a bath adaptation"): see ``names_place``.
ORDINARY_WORD_PLACES = frozenset({
    "barrow", "bath", "boston", "brent", "bury", "craven", "derby", "dover", "eden", "harrow", "hart",
    "lincoln", "mole valley", "newport", "preston", "reading", "richmond", "rugby", "stafford", "stoke",
    "sutton", "swale", "test valley",
})
_COUNCIL_AFTER_RE = re.compile(r"\s+(?:(?:borough|city|district|county|metropolitan)\s+)*council\b", re.I)


def names_place(text: str, place: str) -> bool:
    """Whether ``text`` uses ``place`` as the name of a council, not as an everyday word.

    A place whose name is an ordinary word counts only where it is followed by "council" (or
    "borough council", ...) or written with capitals somewhere other than a sentence's first word;
    other places always count (their matching is the caller's).
    """
    if place.lower() not in ORDINARY_WORD_PLACES:
        return True
    for m in re.finditer(rf"\b{re.escape(place)}\b", text, flags=re.I):
        if _COUNCIL_AFTER_RE.match(text, m.end()):
            return True
        capitalised = all(w[:1].isupper() for w in m.group(0).split())
        starts_sentence = not text[: m.start()].strip() or re.search(r"[.!?]\s*$", text[: m.start()])
        if capitalised and not starts_sentence:
            return True
    return False


def within_one_edit(a: str, b: str) -> bool:
    """Whether ``a`` becomes ``b`` by at most one insertion, deletion, substitution or swap of
    neighbours: the slips of a hurried typist ("nottinghamshre", "leicstershire", "hartlepoole")."""
    if a == b:
        return True
    if abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        return len(diff) == 1 or (len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]]
                                  and a[diff[1]] == b[diff[0]])
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    i = next((k for k in range(len(short)) if short[k] != long_[k]), len(short))
    return short[i:] == long_[i + 1:]


@dataclass
class AuthorityNames:
    """The names users may give each indexed authority, longest first so the most specific wins.

    ``is_word`` tells words the archive's own text uses: a question word that is one of them is
    never read as a misspelt council name.
    """

    names: list[tuple[str, str]] = field(default_factory=list)  # (normalised name, authority)
    is_word: Callable[[str], bool] | None = None
    _index: dict | None = field(default=None, repr=False, compare=False)

    @classmethod
    def of(cls, authorities: list[str], is_word: Callable[[str], bool] | None = None) -> "AuthorityNames":
        names: dict[str, set[str]] = {}
        for a in authorities:
            forms = {_norm(a).strip(), short_name(a)}
            core = short_name(a)
            for joiner in (" upon ", " on "):  # Kingston upon Hull -> Hull; Stoke on Trent -> Stoke
                if joiner in core:
                    head, tail = core.split(joiner, 1)
                    forms.update({head, tail} if joiner == " upon " else {head})
            if "council" in a.lower() and re.search(r",| and | & ", a):  # Bournemouth, Christchurch and Poole
                forms.update(short_name(part) for part in re.split(r",| and | & ", a) if len(short_name(part)) >= 4)
            for f in forms:
                if f and len(f) >= 3:
                    names.setdefault(f, set()).add(a)
        pairs = [(n, a) for n, auths in names.items() for a in sorted(auths)]
        pairs.sort(key=lambda na: -len(na[0]))
        return cls(pairs, is_word)

    def _by_first_word(self) -> dict[str, list[tuple[list[str], str, str]]]:
        if self._index is None:
            index: dict[str, list[tuple[list[str], str, str]]] = {}
            for name, authority in self.names:
                words = name.split()
                index.setdefault(words[0], []).append((words, name, authority))
            self._index = index
        return self._index

    def find(self, text: str) -> list[str]:
        """Authorities named in ``text``; a longer name hides a shorter one inside it."""
        hay = _norm(text)
        words = hay.split()
        index = self._by_first_word()
        matches = []  # (name length, first word, after last word, name, authority)
        for i, w in enumerate(words):
            for name_words, name, authority in index.get(w, ()):
                if words[i : i + len(name_words)] == name_words:
                    matches.append((len(name), i, i + len(name_words), name, authority))
        matches.sort(key=lambda m: -m[0])
        found: list[str] = []
        taken: list[tuple[int, int]] = []
        for _, start, end, name, authority in matches:
            if not names_place(text, name):
                continue  # "can I bury my mother" is not about Bury Council
            if any(s <= start and end <= e for s, e in taken):
                continue  # these words already named a longer authority
            taken.append((start, end))
            if authority not in found:
                found.append(authority)
        if not found and self.is_word is not None:
            found = self._misspelt(hay)
        return found

    def _misspelt(self, hay: str) -> list[str]:
        """Authorities whose one-word name is one slip from a word of the question that the
        archive's text never uses (so "nottinghamshre" is Nottinghamshire, "reading" is never
        a misspelling of anything)."""
        words = [w for w in hay.split() if len(w) >= FUZZY_MIN_LETTERS and not self.is_word(w)]
        found: list[str] = []
        for w in words:
            for name, authority in self.names:
                if " " not in name and len(name) >= FUZZY_MIN_LETTERS and name not in ORDINARY_WORD_PLACES \
                        and name[0] == w[0] and within_one_edit(w, name) and authority not in found:
                    found.append(authority)
        return found


_TITLE_GROUP = {"Mrs": "Ms", "Miss": "Ms"}  # titles users swap for one another


def alias_fits(named: str, used: str) -> bool:
    """Whether a complainant named ``named`` ("Mrs D") can be the one a decision calls ``used``:
    the same letter, and the same title, except that a user may write Mrs, Ms or Miss for any of
    them (never Mr for Mrs, nor Mr for Dr)."""
    t1, _, l1 = named.partition(" ")
    t2, _, l2 = used.partition(" ")
    return l1.upper() == l2.upper() and _TITLE_GROUP.get(t1, t1) == _TITLE_GROUP.get(t2, t2)


def aliases_fit(named: tuple[str, ...] | list[str], used: tuple[str, ...] | list[str]) -> bool:
    """Whether any complainant the question names fits one the decision names."""
    return any(alias_fits(n, u) for n in named for u in used)


@dataclass(frozen=True)
class Query:
    """A question with what it says about decisions pulled out."""

    text: str
    references: tuple[str, ...] = ()
    paragraph: int | str | None = None  # "paragraph 15" / "summary" alongside a reference
    authorities: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    outcomes: tuple[str, ...] = ()
    provision: Provision | None = None
    why: bool = False
    law: bool = False
    years: tuple[int, ...] = ()  # years named ("in 2021", "since 2019"), not those inside references
    complaint: bool = False  # asks what was complained about
    asks_outcome: bool = False  # asks what was decided or found ("was the council at fault?", "outcome")

    @property
    def reference_only(self) -> bool:
        """The question names a decision and asks nothing else ("24 016 809", "show me 24-016-809")."""
        if not self.references or self.paragraph is not None:
            return False
        rest = re.sub(REFERENCE_PATTERN, " ", self.text).lower()
        words = set(re.findall(r"[a-z]+", rest)) - _REFERENCE_WORDS
        return not words

    @property
    def lexical_content(self) -> str:
        """The words for BM25: the content, plus the words decisions use for the outcomes users name
        ("closed" is written "we will not investigate")."""
        extra = " ".join(_OUTCOME_WORDING[o] for o in self.outcomes if o in _OUTCOME_WORDING)
        return f"{self.content} {extra}".strip()

    @property
    def content(self) -> str:
        """The words to search with: the question without references (they match nothing in text)."""
        text = re.sub(REFERENCE_PATTERN, " ", self.text)
        return re.sub(r"\s+", " ", text).strip() or self.text


def understand(text: str, authorities: AuthorityNames | None = None) -> Query:
    """Read a question into a ``Query``."""
    refs = tuple(find_references(text))
    paragraph: int | str | None = None
    if refs:
        m = _PARAGRAPH_RE.search(re.sub(REFERENCE_PATTERN, " ", text))
        if m:
            paragraph = int(m.group(1))
        elif _SUMMARY_RE.search(text):
            paragraph = "summary"
    aliases: list[str] = []
    for m in _ALIAS_RE.finditer(text):
        for title in filter(None, (m.group(1), m.group(2))):  # "Mr and Mrs B" names both
            alias = f"{title.capitalize()} {m.group(3).upper()}"
            if alias not in aliases:
                aliases.append(alias)
    outcomes: list[str] = []
    for outcome, pattern in _OUTCOME_PATTERNS:
        if pattern.search(text) and outcome not in outcomes:
            if outcome == UPHELD and NOT_UPHELD in outcomes:
                continue
            outcomes.append(outcome)
    plain = re.sub(r"(?<=\w)['’]s\b", "", text)  # "Mr X's 2 children", "it's 3 years": not section 2 or 3
    provision = parse_provision_query(plain) if re.search(r"\bs(?:ections?|s?\.)?\s*\d|\bschedule\s+\d", plain, re.I) else None
    return Query(
        text=text,
        references=refs,
        paragraph=paragraph,
        authorities=tuple(authorities.find(text)) if authorities else (),
        aliases=tuple(aliases),
        outcomes=tuple(outcomes),
        provision=provision,
        why=bool(_WHY_RE.search(text)),
        years=tuple(dict.fromkeys(int(y) for y in _YEAR_RE.findall(re.sub(REFERENCE_PATTERN, " ", text)))),
        complaint=bool(_COMPLAINT_RE.search(text)),
        asks_outcome=bool(_WHY_RE.search(text) or _ASKS_OUTCOME_RE.search(text)),
        law=bool(_LAW_RE.search(text)) or provision is not None
        or bool(_GENERAL_RE.search(text) and not refs and not aliases and not _WHY_RE.search(text)),
    )


_OUTCOME_NAMES = {o.lower(): o for o in (UPHELD, NOT_UPHELD, CLOSED)} | {
    "closed": CLOSED, "not investigated": CLOSED, "no investigation": CLOSED, "not upheld": NOT_UPHELD,
    "upheld": UPHELD,
}


def outcome_named(text: str) -> str | None:
    """The outcome a filter names, in full or as users shorten it ("closed"); None for anything else
    (so "Partly upheld", which is no outcome of these decisions, matches nothing)."""
    return _OUTCOME_NAMES.get(re.sub(r"\s+", " ", text.strip().lower()))
