"""Retrieval behaviour: the right decision and paragraph first, what the question names restricts
the search, filters hold, boilerplate stays out, and no single decision crowds out the rest.

Uses the session indexes of the seeds and of seeds + corpus (built once, with the real model), and a
tiny index of four hand-written decisions about the same subject (bins) from councils whose names
are easily confused, so that only the authority can tell them apart.
"""

from __future__ import annotations

from collections import Counter
from datetime import date

import numpy as np
import pytest

from index import config
from rag.retriever import Filters

pytestmark = pytest.mark.slow

WHY_CLOSED = "why was the complaint by Mr X closed?"


# -- a tiny index of look-alike decisions ----------------------------------------------------------

# The same "role and powers" wording in every decision (boilerplate), then a decision of its own.
_ROLE = """The Ombudsman’s role and powers

  1. We look at complaints about ‘maladministration’ and ‘service failure’, together called ‘fault’. We also decide whether any fault caused the person complaining an ‘injustice’, and what the organisation should do to put that right. (Local Government Act 1974, sections 26(1) and 26A(1), as amended)
  2. We may decide not to start or to end an investigation when we believe a different outcome is unlikely or when there is no worthwhile outcome to achieve. (Local Government Act 1974, section 24A(6), as amended)

Back to top

How I considered this complaint

  1. I read what the complainant and the Council told us and the Council’s records of the collections.
"""


def _decision(authority, ref, outcome, when, summary, complaint, found, decision):
    return f"""{authority} ({ref})

Category : Environment and regulation > Refuse and recycling

Decision : {outcome}

Decision date : {when}

The Ombudsman's final decision:

Summary: {summary}

The complaint

  1. {complaint}

Back to top

{_ROLE}
Back to top

What I found

  1. {found}

Back to top

Final decision

  1. {decision}

Back to top

Investigator's decision on behalf of the Ombudsman
"""


LOOKALIKES = {
    "25-900-001.txt": _decision(
        "Kingston upon Hull City Council", "25 900 001", "Upheld", "10 Mar 2025",
        "The Council missed Mrs B’s bin collections for months and did not put this right. It has agreed to apologise and pay her £150.",
        "Mrs B complains the Council repeatedly missed her general waste bin collections between May and October 2024.",
        "The Council’s crew records show her street was skipped on eleven collection days. The Council promised to fix this twice but the bins were still missed. That is fault, and it caused Mrs B avoidable distress.",
        "I have found fault causing injustice. The Council will apologise to Mrs B and pay her £150 within one month.",
    ),
    "25-900-002.txt": _decision(
        "Leicester City Council", "25 900 002", "Not upheld", "01 Jun 2024",
        "The Council was not at fault when it suspended garden waste collections for six weeks during a shortage of drivers.",
        "Mr X complains the Council stopped collecting his garden waste bin during the summer but still charged him for the service.",
        "The Council suspended garden waste rounds for six weeks because it had too few drivers, told residents on its website and extended every subscription by six weeks. That was a reasonable decision which it was entitled to make.",
        "I have completed my investigation. There was no fault by the Council.",
    ),
    "25-900-003.txt": _decision(
        "Leicestershire County Council", "25 900 003", "Closed after initial enquiries", "20 Nov 2023",
        "We will not investigate this complaint about the booking system at a household waste recycling centre, because the injustice is not significant enough.",
        "Ms C complains she had to book a slot to take rubbish to the household waste recycling centre and could not get one for two weeks.",
        "The Council introduced bookings to cut queues at the recycling centre. Waiting two weeks for a slot is an inconvenience rather than a significant injustice.",
        "We will not investigate Ms C’s complaint because the injustice she claims is not significant enough to justify our involvement.",
    ),
    "25-900-004.txt": _decision(
        "London Borough of Lambeth", "25 900 004", "Upheld", "05 May 2022",
        "The Council failed to provide the assisted bin collection Mr D needs because of his disability. It has agreed to apologise and review its assisted collection list.",
        "Mr D complains the Council did not collect his bins from his doorstep even though he is registered for assisted collections.",
        "The assisted collection list given to the crews did not include Mr D’s address after a change of round. That is fault, and he had to drag heavy bins to the kerb.",
        "I have found fault causing injustice. The Council will apologise to Mr D and check its assisted collection list every month.",
    ),
}
HULL, LEICESTER, LEICESTERSHIRE, LAMBETH = "25 900 001", "25 900 002", "25 900 003", "25 900 004"


@pytest.fixture(scope="module")
def lookalikes(tmp_path_factory, embedder):
    from rag.archive import Archive

    folder = tmp_path_factory.mktemp("lookalike-decisions")
    for name, text in LOOKALIKES.items():
        (folder / name).write_text(text, encoding="utf-8")
    archive = Archive(config.StoreConfig(index_dir=tmp_path_factory.mktemp("lookalike-index")),
                      encoder=embedder.encoder)
    report = archive.ingest([folder])
    assert not report.failed, report.failed
    return archive.retriever


@pytest.fixture(scope="module")
def seeds(seeds_archive):
    return seeds_archive.retriever


@pytest.fixture(scope="module")
def corpus(corpus_archive):
    return corpus_archive.retriever


def refs(hits) -> list[str]:
    return [h.ref for h in hits]


def labels(hits) -> list[tuple[str, int | str]]:
    return [(h.ref, h.paragraph) for h in hits]


# -- the question the issue names -----------------------------------------------------------------

@pytest.mark.parametrize("which", ["seeds", "corpus"])
def test_why_was_mr_x_complaint_closed_finds_24_016_809_first(request, which):
    retriever = request.getfixturevalue(which)
    hits = retriever.search(WHY_CLOSED, k=10)
    first = retriever.catalogue.decisions[hits[0].ref]
    # Twenty corpus decisions closed a complaint by a Mr X: any of them may come first; the seeds have one.
    assert "Mr X" in first["aliases"] and first["outcome"] == "Closed after initial enquiries"
    if which == "seeds":
        assert hits[0].ref == "24 016 809"
        # The Final decision and the Summary give the reason: both lead the list.
        assert hits[0].paragraph in (18, "summary")
        assert {18, "summary"} <= {h.paragraph for h in hits[:5] if h.ref == "24 016 809"}, labels(hits[:5])
    else:
        assert hits[0].paragraph == "summary" or retriever.catalogue.passages[hits[0].id].section == "Final decision"


def test_why_question_does_not_lead_with_boilerplate(corpus):
    hits = corpus.search(WHY_CLOSED, k=10)
    assert not any(h.boilerplate for h in hits)
    assert "role and powers" not in hits[0].section.lower()


# -- references and paragraphs --------------------------------------------------------------------

@pytest.mark.parametrize("written", ["24 016 809", "24-016-809", "24016809", "24/016/809"])
def test_reference_in_any_form_restricts_to_that_decision(corpus, written):
    hits = corpus.search(f"what did {written} say about the Safety Plan?", k=10)
    assert hits
    assert set(refs(hits)) == {"24 016 809"}
    assert hits[0].paragraph in (8, 14)  # the two paragraphs about the Safety Plan


def test_reference_alone_returns_only_that_decision_with_room_for_all_its_paragraphs(corpus):
    hits = corpus.search("24 000 184", k=10)
    assert len(hits) == 10  # the per-decision cap does not apply when a decision is named
    assert set(refs(hits)) == {"24 000 184"}


def test_reference_with_a_paragraph_puts_that_paragraph_first(corpus):
    for question in ("24 016 809 para 15", "24-016-809 paragraph 15", "24016809 ¶15", "para 15 of 24/016/809"):
        hits = corpus.search(question, k=5)
        assert labels(hits)[0] == ("24 016 809", 15), question
        assert hits[0].text.startswith("The Council acknowledges it should have held the strategy meeting")
        assert set(refs(hits)) == {"24 016 809"}


def test_reference_with_summary_puts_the_summary_first(seeds):
    hits = seeds.search("24 000 184 summary", k=3)
    assert labels(hits)[0] == ("24 000 184", "summary")


def test_unknown_reference_finds_nothing(corpus):
    assert corpus.search("what did 99 999 999 decide?", k=5) == []


# -- authorities named in the question ------------------------------------------------------------

@pytest.mark.parametrize(
    "question, ref",
    [
        ("why were the bins missed in Hull?", HULL),
        ("why were the bins missed by Kingston upon Hull City Council?", HULL),
        ("what did Leicester do about bin collections?", LEICESTER),
        ("what did Leicester City Council do about bin collections?", LEICESTER),
        ("what did Leicestershire do about bin collections?", LEICESTERSHIRE),
        ("bin collections in Lambeth", LAMBETH),
    ],
)
def test_authority_named_in_the_question_restricts_to_that_authority(lookalikes, question, ref):
    hits = lookalikes.search(question, k=10)
    assert hits
    assert set(refs(hits)) == {ref}


def test_leicester_and_leicestershire_are_different_councils_in_the_corpus(corpus):
    city = corpus.search("what did Leicester City Council decide?", k=10)
    county = corpus.search("what did Leicestershire decide?", k=10)
    assert {h.authority for h in city} == {"Leicester City Council"}
    assert set(refs(city)) == {"22 014 452"}
    assert {h.authority for h in county} == {"Leicestershire County Council"}
    assert set(refs(county)) <= {"24 016 809", "24 000 184", "23 013 051"}
    assert set(refs(corpus.search("what did Leicestershire decide?", k=15))) == {"24 016 809", "24 000 184", "23 013 051"}


def test_question_naming_no_authority_searches_them_all(lookalikes):
    hits = lookalikes.search("why were bin collections missed?", k=20, per_decision=0)
    assert set(refs(hits)) == {HULL, LEICESTER, LEICESTERSHIRE, LAMBETH}


# -- complainant aliases and outcome words --------------------------------------------------------

def test_complainant_alias_favours_that_complainant_decision(lookalikes):
    assert lookalikes.search("why was Mrs B's complaint about bins upheld?", k=3)[0].ref == HULL
    assert lookalikes.search("why was Mr D's complaint about bins upheld?", k=3)[0].ref == LAMBETH


def test_a_why_question_naming_an_outcome_is_answered_from_decisions_with_that_outcome(lookalikes):
    assert lookalikes.search("why was the bin complaint not upheld?", k=3)[0].ref == LEICESTER
    assert lookalikes.search("why did the Ombudsman not investigate the bin complaint?", k=3)[0].ref == LEICESTERSHIRE
    assert lookalikes.search("why won’t you investigate the bin complaint?", k=3)[0].ref == LEICESTERSHIRE
    assert lookalikes.search("why was the bin complaint upheld?", k=3)[0].ref in (HULL, LAMBETH)
    # Not a filter: the decisions with other outcomes follow.
    hits = lookalikes.search("why was the bin complaint not upheld?", k=20, per_decision=0)
    assert set(refs(hits)) == {HULL, LEICESTER, LEICESTERSHIRE, LAMBETH}


# -- filters --------------------------------------------------------------------------------------

QUESTION = "the council delayed and communicated poorly"


def test_authority_filter_returns_only_that_authority(corpus):
    hits = corpus.search(QUESTION, k=10, filters=Filters(authority="Lambeth"))
    assert set(refs(hits)) == {"17 007 746", "21 010 520"}
    assert {h.authority for h in hits} == {"London Borough of Lambeth"}


def test_authority_filter_matches_whole_words_so_leicester_is_not_leicestershire(corpus):
    city = corpus.search(QUESTION, k=10, filters=Filters(authority="Leicester"))
    assert "22 014 452" in refs(city)  # Leicester City Council
    assert "Leicestershire County Council" not in {h.authority for h in city}
    assert {h.authority for h in corpus.search(QUESTION, k=10, filters=Filters(authority="Leicester City Council"))} == {
        "Leicester City Council"
    }
    county = corpus.search(QUESTION, k=10, filters=Filters(authority="Leicestershire County Council"))
    assert {h.authority for h in county} == {"Leicestershire County Council"}


def test_category_filter_returns_only_that_category(corpus):
    hits = corpus.search(QUESTION, k=20, filters=Filters(category="Disabled facilities grants"))
    assert set(refs(hits)) == {"18 010 988", "22 000 016", "23 020 952", "24 001 227", "24 016 431"}
    assert all(h.category == "Adult care services > Disabled facilities grants" for h in hits)
    education = corpus.search(QUESTION, k=20, filters=Filters(category="education"))  # part of the path, any case
    assert len(education) == 20 and all(h.category.startswith("Education > ") for h in education)


@pytest.mark.parametrize("outcome", ["Upheld", "Not upheld", "Closed after initial enquiries", "not upheld"])
def test_outcome_filter_returns_only_that_outcome(corpus, outcome):
    hits = corpus.search(QUESTION, k=10, filters=Filters(outcome=outcome))
    assert len(hits) == 10
    assert {h.outcome.lower() for h in hits} == {outcome.lower()}


def test_not_upheld_filter_never_returns_upheld_and_upheld_never_not_upheld(corpus):
    assert "Upheld" not in {h.outcome for h in corpus.search(QUESTION, k=20, filters=Filters(outcome="Not upheld"))}
    assert "Not upheld" not in {h.outcome for h in corpus.search(QUESTION, k=20, filters=Filters(outcome="Upheld"))}


def test_date_filters_are_inclusive_and_return_only_decisions_in_range(corpus):
    hits = corpus.search(QUESTION, k=20, filters=Filters(since=date(2025, 1, 1)))
    assert hits and all(h.decision_date >= "2025-01-01" for h in hits)
    hits = corpus.search(QUESTION, k=20, filters=Filters(until=date(2018, 12, 31)))
    assert hits and all(h.decision_date <= "2018-12-31" for h in hits)
    # 24 016 809 is dated 9 April 2025: a one-day window finds it and nothing else.
    day = date(2025, 4, 9)
    assert set(refs(corpus.search(QUESTION, k=10, filters=Filters(since=day, until=day)))) == {"24 016 809"}


@pytest.mark.parametrize("written", ["24 000 184", "24-000-184", "24000184", "24/000/184"])
def test_ref_filter_returns_only_that_decision(corpus, written):
    hits = corpus.search(WHY_CLOSED, k=10, filters=Filters(ref=written))
    assert hits and set(refs(hits)) == {"24 000 184"}


def test_filters_combine(corpus):
    hits = corpus.search(QUESTION, k=10, filters=Filters(authority="Lancashire", outcome="Upheld"))
    assert hits
    assert {(h.authority, h.outcome) for h in hits} == {("Lancashire County Council", "Upheld")}


@pytest.mark.parametrize(
    "filters",
    [
        Filters(authority="Nowhere Borough Council"),
        Filters(category="Space travel"),
        Filters(outcome="Partly upheld"),
        Filters(since=date(2030, 1, 1)),
        Filters(ref="24 016 809", outcome="Upheld"),  # it was closed after initial enquiries
        Filters(authority="Lambeth", category="Child protection"),
        Filters(since=date(2025, 1, 1), until=date(2024, 1, 1)),
    ],
)
def test_impossible_filter_returns_nothing(corpus, filters):
    assert corpus.search(QUESTION, k=10, filters=filters) == []


def test_filter_and_a_reference_in_the_question_must_both_hold(corpus):
    assert corpus.search("24 016 809 safety plan", k=10, filters=Filters(authority="Lambeth")) == []


# -- boilerplate ----------------------------------------------------------------------------------

NOT_ABOUT_POWERS = [
    WHY_CLOSED,
    "complaints about Leicestershire",
    "missed bin collections",
    "the council delayed and communicated poorly",
    "I considered the Ombudsman's Assessment Code",  # the words of the commonest repeated paragraph
]
ABOUT_POWERS = [
    "what are the Ombudsman's role and powers?",
    "when can the Ombudsman investigate late complaints?",
    "can the Ombudsman investigate if I could go to court?",
    "section 26(6)(c)",
]


def test_corpus_has_boilerplate_and_the_hits_flag_it(corpus):
    cat = corpus.catalogue
    assert cat.boilerplate, "ingest found no repeated paragraphs"
    key = cat.passages["24-016-809#3"][4]  # "The law says we cannot normally investigate ... court"
    assert key in cat.boilerplate and cat.boilerplate[key] >= 10
    assert corpus.is_boilerplate("24-016-809#3")
    assert not corpus.is_boilerplate("24-016-809#15")


@pytest.mark.parametrize("question", NOT_ABOUT_POWERS)
def test_question_not_about_powers_never_returns_boilerplate(corpus, question):
    hits = corpus.search(question, k=20)
    assert hits
    assert [h.id for h in hits if h.boilerplate] == []
    assert not any(corpus.catalogue.passages[h.id][4] in corpus.catalogue.boilerplate for h in hits)


@pytest.mark.parametrize("question", ABOUT_POWERS)
def test_question_about_powers_returns_at_most_one_copy_of_each_repeated_paragraph(corpus, question):
    hits = corpus.search(question, k=20)
    cat = corpus.catalogue
    keys = [cat.passages[h.id][4] for h in hits if cat.passages[h.id][4] in cat.boilerplate]
    assert keys, "a question about the Ombudsman's powers should find the standard wording"
    assert len(keys) == len(set(keys)), Counter(keys).most_common(3)
    assert all(h.boilerplate == (cat.passages[h.id][4] in cat.boilerplate) for h in hits)


def test_boilerplate_in_a_small_index_is_kept_out_too(lookalikes):
    cat = lookalikes.catalogue
    shared = {cat.passages[f"{r.replace(' ', '-')}#2"][4] for r in (HULL, LEICESTER, LEICESTERSHIRE, LAMBETH)}
    assert len(shared) == 1 and shared <= set(cat.boilerplate)  # the same words in four decisions
    assert not any(h.boilerplate for h in lookalikes.search("why were the bins missed?", k=20))
    powers = lookalikes.search("what are the Ombudsman's powers to investigate?", k=20)
    keys = [cat.passages[h.id][4] for h in powers if h.boilerplate]
    assert keys and len(keys) == len(set(keys))


# -- grouping by decision -------------------------------------------------------------------------

@pytest.mark.parametrize("question", [WHY_CLOSED, "safeguarding and child protection", QUESTION])
def test_no_decision_takes_more_than_three_of_the_top_ten(corpus, question):
    hits = corpus.search(question, k=10, per_decision=3)
    assert len(hits) == 10
    assert max(Counter(refs(hits)).values()) <= 3


def test_without_the_cap_one_decision_may_fill_the_list(corpus):
    capped = corpus.search("Safety Plan strategy meeting Mr X son", k=10, per_decision=3)
    uncapped = corpus.search("Safety Plan strategy meeting Mr X son", k=10, per_decision=0)
    assert Counter(refs(capped))["24 016 809"] == 3
    assert Counter(refs(uncapped))["24 016 809"] > 3


def test_when_fewer_decisions_match_the_list_is_still_filled(seeds):
    hits = seeds.search(WHY_CLOSED, k=10, per_decision=3)
    assert len(hits) == 10  # two decisions: 3 each first, then the rest in score order
    first = Counter(refs(hits[:6]))
    assert first == {"24 016 809": 3, "24 000 184": 3}


def test_every_hit_names_its_decision_and_paragraph(corpus):
    for h in corpus.search(WHY_CLOSED, k=10):
        assert h.id == f"{h.ref.replace(' ', '-')}#{h.paragraph}"
        assert h.authority and h.url.endswith(h.ref.replace(" ", "-")) and h.section
        assert h.paragraph == "summary" or isinstance(h.paragraph, int)


# -- retrieval modes ------------------------------------------------------------------------------

@pytest.mark.parametrize("mode,within", [("hybrid", 1), ("dense", 3), ("bm25", 3)])
def test_every_mode_finds_24_016_809_for_the_closed_question(seeds, mode, within):
    hits = seeds.search(WHY_CLOSED, k=10, mode=mode)
    assert len(hits) == 10
    assert "24 016 809" in [h.ref for h in hits[:within]]
    assert all(h.score > 0 for h in hits)
    assert [h.score for h in hits[:3]] == sorted((h.score for h in hits[:3]), reverse=True)


def test_modes_report_their_own_scores(corpus):
    dense = corpus.search("Disabled Facilities Grant", k=5, mode="dense")
    bm25 = corpus.search("Disabled Facilities Grant", k=5, mode="bm25")
    assert all(h.dense > 0 and h.lexical == 0 for h in dense)
    assert all(h.lexical > 0 and h.dense == 0 for h in bm25)


def test_unknown_mode_is_an_error(seeds):
    with pytest.raises(ValueError, match="hybrid"):
        seeds.search(WHY_CLOSED, mode="sparse")


def test_modes_respect_filters(corpus):
    for mode in ("hybrid", "dense", "bm25"):
        hits = corpus.search(QUESTION, k=10, mode=mode, filters=Filters(authority="Lambeth"))
        assert hits and set(refs(hits)) <= {"17 007 746", "21 010 520"}, mode


# -- exact words ----------------------------------------------------------------------------------

DFG = {"22 000 016", "24 016 431", "23 020 952"}  # the decisions whose paragraphs say "Disabled Facilities Grant"


@pytest.mark.parametrize("mode", ["hybrid", "bm25"])
def test_exact_words_find_the_decisions_that_use_them(corpus, mode):
    hits = corpus.search("Disabled Facilities Grant", k=10, mode=mode)
    first_refs = list(dict.fromkeys(refs(hits)))[:3]
    assert set(first_refs) == DFG
    assert "disabled facilities grant" in hits[0].text.lower()


def test_safety_plan_finds_the_seed_that_uses_the_words(corpus):
    hits = corpus.search("Safety Plan", k=3)
    assert labels(hits)[:2] in ([("24 016 809", 8), ("24 016 809", 14)], [("24 016 809", 14), ("24 016 809", 8)])


def test_a_provision_finds_the_paragraphs_that_cite_it(corpus):
    hits = corpus.search("section 26(6)(c)", k=10)
    # Ten decisions share the standard paragraph that cites it (one copy is shown, whichever ranks
    # first); 24 014 083 words it its own way.
    sharing = {"24 016 809", "20 000 751", "20 014 423", "21 008 119", "21 015 835", "22 000 919",
               "24 003 642", "24 008 039", "24 011 699", "24 019 271"}
    first_two = {h.ref: h for h in hits[:2]}
    assert ("24 014 083", 3) in labels(hits[:2]) and not first_two["24 014 083"].boilerplate
    shared = [h for h in hits[:2] if h.ref != "24 014 083"]
    assert shared and shared[0].ref in sharing and shared[0].boilerplate
    for h in hits[:2]:
        assert "26(6)(c)" in h.text
        assert "Local Government Act 1974, section 26(6)(c)" in h.statutes
    key = corpus.catalogue.passages["24-016-809#3"][4]
    assert sum(corpus.catalogue.passages[h.id][4] == key for h in hits) == 1


def test_a_kept_filter_scores_its_gathered_windows_as_exact_search_does(corpus):
    # A filter of few passages keeps its windows gathered for the next questions; the dense
    # candidates are those exact search over its passages finds, in the same order.
    from index.catalogue import WindowBlock

    retriever = corpus
    cat = retriever.catalogue
    authority = max(cat.by_authority, key=lambda a: len(cat.by_authority[a]))
    allowed = retriever.allowed_passages(retriever.understand("what went wrong"), Filters(authority=authority))
    assert isinstance(allowed.block, WindowBlock) and len(allowed.block.positions) == len(allowed)
    for question in ("the council did not reply to the complaint", "delay in the care assessment"):
        vector = retriever.question_vector(question)
        assert allowed.block.nearest(vector, 10) == cat.exact_nearest(vector, allowed.positions(), 10)
    again = retriever.allowed_passages(retriever.understand("why was it closed"), Filters(authority=authority))
    assert again is allowed  # kept: the next question reuses it


def test_a_new_question_is_embedded_beside_its_search_with_the_same_result(corpus, embedder):
    # The first search of a question embeds it in another thread while BM25 searches; the
    # vector kept is the question's own, and the same question searched again (vector kept,
    # no thread) and from several threads at once finds the same passages with the same scores.
    import threading

    question = "the council took months to assess my father's care needs after his stroke"
    with corpus._lock:
        corpus._vectors.pop(question, None)
    first = [(h.id, h.score) for h in corpus.search(question, k=10)]
    assert np.array_equal(corpus._vectors[question], embedder.embed_query(question))
    assert [(h.id, h.score) for h in corpus.search(question, k=10)] == first
    with corpus._lock:
        corpus._vectors.pop(question, None)
    got: list = [None] * 4

    def search(i: int) -> None:
        got[i] = [(h.id, h.score) for h in corpus.search(question, k=10)]

    threads = [threading.Thread(target=search, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got == [first] * 4 and len(first) == 10
