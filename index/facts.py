"""Facts read from a decision's own words, each with the paragraph it comes from: whether the
Ombudsman found fault and injustice, the remedies (apology, payment with its amount, a fresh
decision, service changes, other actions), and why a complaint was not investigated.

Rules over the parsed paragraphs, no model: a sentence states a finding ("there was no fault",
"that is fault"), a remedy (what the council agreed, was asked or had already done to put things
right) or a reason for not investigating ("we will not investigate ... because the complaint is
late"). Sums of money count as payments only in a sentence about the remedy: a fee, a bill or a
grant in dispute is not one. Measured against hand labels by ``python -m eval.facts``.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from functools import lru_cache

from index.decision import Decision
from index.passage import SUMMARY
from index.sentence import split_sentences

FOUND, NOT_FOUND, PARTLY = "found", "not found", "partly"
REMEDY_KINDS = ("apology", "payment", "reconsider", "service", "other")
CLOSED_REASONS = ("late", "appeal_or_court", "no_evidence_of_fault", "injustice_not_significant", "could_not_add",
                  "no_worthwhile_outcome", "premature", "outside_jurisdiction", "other")


@dataclass(frozen=True)
class Remedy:
    kind: str  # one of REMEDY_KINDS
    amount: int | None  # pounds, payments only
    for_: str  # what it is for, in the decision's words ("" when it does not say)
    paragraph: int | str  # number or "summary"
    text: str  # the sentence

    def to_json(self) -> dict:
        return {"kind": self.kind, "amount": self.amount, "for": self.for_, "paragraph": self.paragraph,
                "text": self.text}


@dataclass(frozen=True)
class Reason:
    reason: str  # one of CLOSED_REASONS
    paragraph: int | str
    text: str

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Facts:
    fault: str | None = None  # found, not found, partly; None: no finding (e.g. not investigated)
    fault_paragraph: int | str | None = None
    injustice: str | None = None  # found, not found; None: the decision does not say
    remedies: tuple[Remedy, ...] = ()
    closed_because: tuple[Reason, ...] = ()
    investigated: bool = True

    def to_json(self) -> dict:
        return {"fault": self.fault, "fault_paragraph": self.fault_paragraph, "injustice": self.injustice,
                "remedies": [r.to_json() for r in self.remedies],
                "closed_because": [r.to_json() for r in self.closed_because]}

    @classmethod
    def from_json(cls, data: dict) -> "Facts":
        return cls(data.get("fault"), data.get("fault_paragraph"), data.get("injustice"),
                   tuple(Remedy(r["kind"], r.get("amount"), r.get("for", ""), r["paragraph"], r["text"])
                         for r in data.get("remedies", ())),
                   tuple(Reason(r["reason"], r["paragraph"], r["text"]) for r in data.get("closed_because", ())),
                   data.get("fault") is not None or not data.get("closed_because"))


def _sentences(d: Decision) -> list[tuple[int | str, str, str]]:
    """(paragraph, section, sentence) in the decision's order, the Summary first; list items are
    read with their lead-in, so "The Council should: • apologise" is one remedy sentence."""
    out = []
    passages = ([(SUMMARY, "Summary", d.summary)] if d.summary else []) + \
        [(p.number, p.section, p.text) for p in d.paragraphs]
    for number, section, text in passages:
        for s in split_sentences(text):
            out.append((number, section, s))
    return out


# -- fault and injustice ---------------------------------------------------------------------------

_NO_FAULT = re.compile(
    r"\b(?:no|not\s+find\s+(?:any\s+)?|did\s+not\s+find\s+(?:any\s+)?|finds?\s+no|found\s+no|cannot\s+find\s+(?:any\s+)?"
    r"|not\s+found\s+(?:any\s+)?|not\s+seen\s+(?:any\s+)?)\s*(?:evidence\s+of\s+)?fault\b"
    r"|\bnot\s+at\s+fault\b|\b(?:was|were|is)\s+not\s+fault\b|\bwithout\s+fault\b"
    r"|\bnot\s+(?:found|find)\s+(?:that\s+)?the\s+council\s+(?:acted\s+with|was\s+at)\s+fault\b", re.I)
_FAULT = re.compile(
    r"\b(?:was|were|is|are|there\s+was|there\s+were|amounts?\s+to|amounted\s+to|this\s+was|that\s+was|that\s+is|this\s+is)"
    r"\s+(?:also\s+)?(?:some\s+)?(?:at\s+)?fault\b|\bfound\s+(?:\w+\s+){0,3}?fault\b|\bfault\s+(?:by|in|on\s+the\s+part|causing|which|that)\b"
    r"|\baccept(?:s|ed)?\s+(?:it\s+was\s+at\s+|there\s+was\s+|its\s+)?fault\b|\bat\s+fault\b|\bwas\s+fault\b", re.I)
# Sentences that speak of fault without finding it: the complaint's own claims, the definition.
_NOT_A_FINDING = re.compile(r"evidence\s+of\s+fault|whether\s+(?:there\s+was\s+)?(?:any\s+)?fault|if\s+there\s+was\s+fault"
                            r"|we\s+call\s+.fault|word\s+.fault|fault.\s+to\s+refer|referred\s+to\s+as\s+.fault"
                            r"|consider\s+whether|decide\s+whether|look\s+at\s+whether|\bcomplain(?:s|ed|ing)?\b|\bsays?\b|\bsaid\b"
                            r"|\bbelieves?\b|\bfeels?\b|\bthinks?\b|\balleg", re.I)
_CLAIMED = re.compile(r"\bcomplain(?:s|ed|ing)?\b|\bsays?\b|\bsaid\b|\bwhether\b|\bbelieves?\b|\balleg", re.I)
_CLAIMS = re.compile(r"\bcomplain(?:s|ed|ing)?\b|\bsays?\b|\bsaid\b|\bbelieves?\b|\balleg|\bwants?\b", re.I)
_NO_INJUSTICE = re.compile(
    r"\b(?:did\s+not|does\s+not|has\s+not|not|no|without)\s+(?:\w+\s+){0,3}?(?:cause[ds]?\s+)?(?:any\s+|significant\s+|an?\s+)?injustice\b"
    r"|\bno\s+(?:significant\s+)?injustice\b|\binjustice\s+is\s+not\s+significant", re.I)
_HARM = (r"(?:injustice|distress|uncertainty|frustration|inconvenience|anxiety|loss|time\s+and\s+trouble|avoidable|worry"
         r"|stress|upset|delay|hardship|missed)")
_INJUSTICE = re.compile(
    rf"\b(?:caus\w*|led\s+to|resulted\s+in|suffered|experienced|put\s+\w+\s+to)\s+(?:\([^)]*\)\s+|\w+\s+){{0,4}}?{_HARM}\b"
    r"|\bfault\s+causing\s+injustice\b|\binjustice\s+(?:to|for|caused)\b|\bremedy\s+(?:this|the|that|any|her|his|their)\s+injustice"
    rf"|\bto\s+(?:reflect|acknowledge|recognise)\s+(?:the\s+|his\s+|her\s+|their\s+)?(?:\w+\s+){{0,2}}?{_HARM}",
    re.I)
_NOT_INVESTIGATED = re.compile(
    r"\b(?:will|shall|would|did|could|can)\s*(?:not|n[o']t)\s+(?:be\s+)?investigat\w*|\bdecided\s+not\s+to\s+investigate"
    r"|\bdiscontinu\w*\s+(?:our|the|my|this)\s+investigation|\b(?:ended|stopped|ceased)\s+(?:our|the|my)\s+investigation"
    r"|\bwill\s+not\s+(?:start|continue)\s+an\s+investigation|\bcannot\s+(?:consider|look\s+at)\s+(?:this|the|mr|mrs|ms|miss)"
    r"|\b(?:no|not\s+have)\s+grounds\s+to\s+investigate", re.I)
_ROLE_SECTIONS = re.compile(r"role and powers|the law|legal|how i considered|what i have|guidance", re.I)
# Every pattern of a finding of fault names the word: a sentence without it (most) is passed over
# without trying them (with ``_role_section``, finding the facts of the corpus's 150 decisions took
# 0.063 s instead of 0.082 s).
_MENTIONS_FAULT = re.compile(r"fault", re.I)


@lru_cache(maxsize=4096)
def _role_section(section: str) -> bool:
    """Whether a section explains the Ombudsman's role or the law rather than this case's facts
    (asked of every sentence; a decision has a few sections)."""
    return _ROLE_SECTIONS.search(section) is not None


@lru_cache(maxsize=4096)
def _complaint_section(section: str) -> bool:
    """Whether a section sets out the complaint (what the complainant says, not what was found)."""
    return section.lower().startswith("the complaint")


def _first(a, b):
    return min((a, b), key=lambda x: -1 if x == SUMMARY else int(x))


def _fault(d: Decision, sentences) -> tuple[str | None, int | str | None, bool]:
    """(fault, its paragraph, whether the complaint was investigated)."""
    summary = [s for n, _, s in sentences if n == SUMMARY]
    closed = d.outcome.lower().startswith("closed") or any(_NOT_INVESTIGATED.search(s) for s in summary[:2])
    if closed and not d.outcome.lower().startswith(("upheld", "not upheld")):
        return None, None, False
    found = no = None
    for n, section, s in sentences:
        if _role_section(section) or not _MENTIONS_FAULT.search(s):
            continue
        if _NO_FAULT.search(s) and not _CLAIMED.search(s):
            no = no if no is not None else n
            if _FAULT.search(_NO_FAULT.sub(" ", s)) and found is None:
                found = n
        elif _FAULT.search(s) and not _NOT_A_FINDING.search(s):
            found = found if found is not None else n
    if found is not None and no is not None:
        return PARTLY, _first(found, no), True
    if found is not None:
        return FOUND, found, True
    if no is not None:
        return NOT_FOUND, no, True
    outcome = d.outcome.lower()
    if outcome.startswith("upheld"):
        return FOUND, SUMMARY if d.summary else None, True
    if outcome.startswith("not upheld"):
        return NOT_FOUND, SUMMARY if d.summary else None, True
    return None, None, True


def _injustice(sentences, fault: str | None) -> str | None:
    if fault is None:
        return None
    found = no = False
    for _, section, s in sentences:
        if _role_section(section) or _CLAIMS.search(s):
            continue
        if _NO_INJUSTICE.search(s) and not _INJUSTICE.search(_NO_INJUSTICE.sub(" ", s)):
            no = True
        elif _INJUSTICE.search(s):
            found = True
    if found and fault != NOT_FOUND:
        return FOUND
    if no and fault != NOT_FOUND:
        return NOT_FOUND
    return None


# -- remedies -------------------------------------------------------------------------------------

_REMEDY_CONTEXT = re.compile(
    r"\bagree[sd]?\b|\bagreement\b|\brecommend\w*|\bshould\b|\bwill\b|\bto\s+remedy\b|\bas\s+a\s+remedy\b|\bremed(?:y|ies)\b"
    r"|\bto\s+put\s+(?:this|things|matters|it)\s+right\b|\boffer(?:s|ed)?\b|\bhas\s+(?:now\s+|already\s+)?(?:apologised|paid|refunded|reimbursed|waived)"
    r"|\bhad\s+(?:already\s+)?(?:apologised|paid|refunded|reimbursed|waived)|\bapologised\b|\bwithin\s+(?:one|two|three|four|\d+)\s+(?:month|week)",
    re.I)
_NOT_REMEDY = re.compile(r"\bcomplain\w*\s+(?:that|about)\b|\bwants?\b|\bwanted\b|\basks?\s+(?:for|that)\b|\bwould\s+like\b"
                         r"|\b(?:no|not)\s+(?:\w+\s+){0,10}?(?:warrant|need|require)\w*\s+(?:a\s+|any\s+)?(?:\w+\s+)?remedy|\bno\s+(?:further\s+)?remedy\b|\bnot\s+(?:the\s+)?(?:ombudsman|our)\S*\s+role\b"
                         r"|\bcannot\s+(?:make|order|tell|require)\b|\bwe\s+(?:do\s+not|cannot|can\s+not)\b|\bpowers?\b", re.I)
_APOLOGY = re.compile(r"\bapolog", re.I)
_PAYMENT = re.compile(r"(?<!it\s)(?<!which\s)(?<!they\s)\bpa(?:y|ys|id|ying|yments?)\b|\brefund|\breimburs|\bwaiv|\bcompensat|\bfinancial\s+remedy\b"
                      r"|\bmeet\s+(?:\w+\s+){0,4}?costs?\b"
                      r"|\b(?:remove|cancel|write\s+off|wrote\s+off)\w*\s+(?:\w+\s+){0,4}?(?:fees?|charges?|costs?|debt|arrears)\b", re.I)
_RECONSIDER = re.compile(r"\breconsider|\bre-?assess|\bfresh\s+(?:decision|assessment|review|look)|\bnew\s+(?:decision|assessment)"
                         r"|\blook\s+again\b|\breview\s+(?:\w+\s+){0,2}?(?:decision|case|assessment|application|claim|needs|what\s+happened|eligibility|banding)\b"
                         r"|\bproperly\s+consider\b|\bnow\s+consider\b|\bconsider\s+(?:a|whether)\s+(?:\w+\s+)?remedy\b|\bconsider\s+(?:\w+\s+){0,3}?(?:again|afresh)\b|\bre-?decide|\bredetermin", re.I)
_SERVICE = re.compile(r"\btraining\b|\bremind\w*\b|\bguidance\b|\bpolic(?:y|ies)\b|\bprocedures?\b|\bprocesses\b|\bprocess\b"
                      r"|\bpractice\b|\bservice\s+improvements?\b|\bimprove\w*\b|\baction\s+plan\b|\bshare\s+(?:the|this|our)\s+(?:findings|decision|learning)"
                      r"|\blessons?\b|\blearning\b|\bmonitor\w*\s+(?:its|the)\s+(?:contractor|provider|care|service)"
                      r"|\bservice\s+provision\b|\b(?:take|taking)\s+action\s+to\s+(?:address|improve|prevent)|\bimprove\s+its\s+services?"
                      r"|\bprevent\s+(?:a\s+|any\s+)?re-?(?:occurrence|currence)|\bprevent\s+(?:this|it|similar)\s+(?:\w+\s+)?happening", re.I)
_OTHER_ACTION = re.compile(r"\b(?:agree[sd]?|will|should|recommend\w*|also)\s+(?:\w+\s+){0,4}?(?:to\s+)?(?:provide|complete|carry\s+out|arrange|remove|inform|explain|tell|address|addresses|provides|sends"
                           r"|send|update|amend|correct|repair|meet|write|issue|make|put|give|offer|install|set\s+up|backdate|finish)\b", re.I)
_CLAUSE_ACTION = re.compile(
    r"^\s*(?:and\s+|to\s+|it\s+will\s+)?(?:provides?|address(?:es)?|sends?|arranges?|organises?|completes?|carr(?:y|ies)\s+out"
    r"|informs?|explains?|updates?|amends?|corrects?|repairs?|meets?\s+(?!\w+\s+costs)|writes?|issues?|makes?\s+(?!a\s+payment)"
    r"|puts?|gives?|installs?|sets?\s+up|backdates?|finish(?:es)?|removes?)\b", re.I)
_AMOUNT = re.compile(r"£\s?(\d{1,3}(?:,\d{3})+|\d+)(?:\.\d{2})?")
_FOR = re.compile(r"\b(?:for|in\s+recognition\s+of|to\s+acknowledge|to\s+reflect|to\s+recognise|towards)\s+(?:the\s+)?([^.;:£()]{3,80})", re.I)


def _for(clause: str) -> str:
    m = _FOR.search(clause)
    if not m:
        return ""
    text = re.split(r",|\band\s+(?:to|will|should|pay|apologise)\b|\bwithin\b|\b(?:provides?|is|was|are|were|would|will|should)\b",
                    m.group(1))[0].strip()
    return re.sub(r"\s+(?:and|or|the|a|of|to)$", "", text).strip()


def _payments(sentence: str, n, clause_text: str) -> list[Remedy]:
    """One payment per sum named near a paying word, or one without a sum."""
    out = []
    first = _PAYMENT.search(sentence)
    for m in _AMOUNT.finditer(sentence):
        window = sentence[max(0, m.start() - 90): m.end() + 20]
        wide = sentence[max(0, m.start() - 90): m.end() + 90]
        # a sum after the paying word ("pay her £500 for ..., £3,000 for ... and £100 for ..."), or
        # close to a word of the remedy
        after = first is not None and m.start() > first.start()
        near = re.search(r"\bremedy\b|\bfinancial\b|\bsymbolic\b|\bagreed\s+action\b|\bin\s+recognition\b|\backnowledg"
                         r"|\brecognis|\bto\s+reflect\b|\bfor\s+(?:the\s+|her\s+|his\s+|their\s+)?(?:distress|time\s+and\s+trouble"
                         r"|uncertainty|frustration|inconvenience)", wide, re.I)
        disputed = re.search(r"(?:fee|bill|charge|cost|grant|arrears|liability|debt|rent|limit|invoice)s?\s+(?:of|was|were|is)\s*$",
                             sentence[max(0, m.start() - 30): m.start()], re.I)
        waived = re.search(r"\b(?:remov|refund|waiv|cancel|reimburs|writ\w*\s+off)\w*\s+(?:[\w’']+\s+){0,5}$",
                           sentence[max(0, m.start() - 60): m.start()].replace("£", ""), re.I)
        if (not disputed or waived) and (after or _PAYMENT.search(window) or near):
            amount = int(m.group(1).replace(",", ""))
            tail = sentence[m.end(): m.end() + 120]
            out.append(Remedy("payment", amount, _for(tail) or _for(window), n, clause_text))
    if not out and _PAYMENT.search(sentence):
        out.append(Remedy("payment", None, _for(sentence[_PAYMENT.search(sentence).end():]), n, clause_text))
    return out


def _remedies(sentences, fault: str | None) -> list[Remedy]:
    found: list[Remedy] = []
    kinds: set[str] = set()
    amounts: set[int] = set()
    for n, section, s in sentences:
        if _role_section(section) or _complaint_section(section):  # before the patterns: cheaper
            continue
        if not _REMEDY_CONTEXT.search(s) or _NOT_REMEDY.search(s):
            continue
        new: list[Remedy] = []
        if _APOLOGY.search(s):
            new.append(Remedy("apology", None, "", n, s))
        for p in _payments(s, n, s):
            if p.amount is not None and p.amount in amounts:
                continue
            if p.amount is None and "payment" in kinds:
                continue
            new.append(p)
        if _RECONSIDER.search(s):
            new.append(Remedy("reconsider", None, "", n, s))
        if _SERVICE.search(s):
            new.append(Remedy("service", None, "", n, s))
        # Any other action agreed: a clause of its own that is none of the kinds above.
        for clause in re.split(r";|:|,|\band\s+(?=take|make|provide|review|arrange|organise|carry)", s):
            if (_OTHER_ACTION.search(clause) or _CLAUSE_ACTION.search(clause)) and not (_APOLOGY.search(clause) or _PAYMENT.search(clause)
                                                     or _RECONSIDER.search(clause) or _SERVICE.search(clause)):
                new.append(Remedy("other", None, "", n, s))
                break
        for r in new:
            if r.kind == "payment":
                if r.amount is not None:
                    amounts.add(r.amount)
                    # a sum found later replaces a payment first stated without one
                    found = [f for f in found if not (f.kind == "payment" and f.amount is None)]
                found.append(r)
                kinds.add("payment")
            elif r.kind not in kinds:
                found.append(r)
                kinds.add(r.kind)
    if fault == NOT_FOUND:
        return [r for r in found if r.kind != "payment" or r.amount is not None]
    return found


# -- why a complaint was not investigated ------------------------------------------------------------

_REASONS: list[tuple[str, re.Pattern[str]]] = [
    ("late", re.compile(r"\blate\b|\bmore\s+than\s+(?:twelve|12)\s+months|\btime\s+limit|\btoo\s+long\s+ago|\bout\s+of\s+time", re.I)),
    ("appeal_or_court", re.compile(
        r"\bright\s+(?:of|to)\s+appeal|\bappeal\w*\s+to\b|\b(?:go|gone|went|take\s+\w+)\s+to\s+(?:court|a\s+tribunal|the\s+tribunal)"
        r"|\breasonable\s+(?:for\s+(?:\w+\s+){1,3})?to\s+(?:appeal|use|go|take|seek|apply)|\b(?:the\s+)?courts?\b|\btribunal\b"
        r"|\blegal\s+(?:action|remedy|proceedings)|\bmagistrates", re.I)),
    ("no_evidence_of_fault", re.compile(r"\b(?:not\s+enough|insufficient|no|little|not\s+sufficient)\s+(?:evidence|sign)\s+of\s+(?:\w+\s+)?fault"
                                        r"|\bnot\s+(?:seen|found)\s+(?:enough\s+)?evidence\s+of\s+(?:\w+\s+)?fault"
                                        r"|\bunlikely\s+to\s+(?:find|result\s+in\s+a\s+finding\s+of)\s+(?:\w+\s+)?fault", re.I)),
    ("injustice_not_significant", re.compile(r"injustice\s+(?:\w+\s+){0,4}?(?:is\s+)?not\s+(?:\w+\s+)?significant"
                                             r"|not\s+(?:\w+\s+)?significant\s+enough|not\s+warranted\s+by\s+the\s+(?:claimed\s+)?injustice"
                                             r"|\bno\s+(?:significant\s+)?(?:personal\s+)?injustice|\bnot\s+caused\s+(?:\w+\s+)?(?:significant\s+)?injustice"
                                             r"|\b(?:not|no)\s+(?:\w+\s+){0,3}?evidence\s+of\s+(?:any\s+)?injustice", re.I)),
    ("could_not_add", re.compile(r"\b(?:could|can|would)\s*(?:not|n[o']t)\s+add\b|\badd\s+(?:anything|to\s+the\s+council)", re.I)),
    ("no_worthwhile_outcome", re.compile(r"worthwhile\s+outcome|meaningful\s+outcome|seek\s+the\s+remedy|different\s+outcome|achieve\s+(?:anything|the\s+outcome|more|what)"
                                         r"|unlikely\s+(?:to\s+)?(?:lead|achieve|result)|\bnot\s+lead\s+to", re.I)),
    ("premature", re.compile(r"\bpremature|\bnot\s+(?:yet\s+)?(?:had|been\s+given)\s+(?:the|a|an)\s+(?:proper\s+)?(?:opportunity|chance)"
                             r"|\bcomplete\s+(?:its|the\s+council'?s?)\s+complaints?\s+procedure", re.I)),
    ("outside_jurisdiction", re.compile(r"\boutside\s+(?:the\s+)?(?:ombudsman|our|my|his|her)\w*\s+(?:jurisdiction|remit)"
                                        r"|\bjurisdiction\b|\b(?:law|legislation)\s+(?:says|prevents|does\s+not\s+allow)"
                                        r"|\bnot\s+(?:able|allowed|permitted)\s+to\s+investigate|\bcannot\s+investigate"
                                        r"|\binternal\s+(?:management|affairs)|\bpersonnel\b|\bschedule\s+5\b|\bthe\s+start\s+of\s+court", re.I)),
]


def _closed_because(sentences) -> list[Reason]:
    out: list[Reason] = []
    seen: set[str] = set()
    for n, section, s in sentences:
        if _role_section(section) or _complaint_section(section):
            continue
        if not re.search(r"\bbecause\b|\bas\b|\bsince\b|\binvestigat|\bthis\s+is\b|\breasonable\b|\bunlikely\b|\bwould\b|\bcould\b"
                         r"|\bcannot\b|\bnot\s+enough\b|\binsufficient\b|\bnot\s+warranted\b", s, re.I):
            continue
        for reason, pattern in _REASONS:
            if reason not in seen and pattern.search(s):
                seen.add(reason)
                out.append(Reason(reason, n, s))
    if not out:
        first = next(((n, s) for n, _, s in sentences if _NOT_INVESTIGATED.search(s)), None) or \
            next(((n, s) for n, _, s in sentences), None)
        if first:
            out.append(Reason("other", first[0], first[1]))
    return out


def facts_of(d: Decision) -> Facts:
    """The facts of a decision, read from its text."""
    sentences = _sentences(d)
    fault, where, investigated = _fault(d, sentences)
    closed = _closed_because(sentences) if not investigated else []
    return Facts(fault, where, _injustice(sentences, fault), tuple(_remedies(sentences, fault)), tuple(closed), investigated)
