"""The Gradio app: the functions behind the page and its API, safe rendering, errors shown in the
page, refusing to serve beyond this machine without a password, and the named API endpoints
called through gradio_client. (tests/test_browser.py drives the same app in a real browser.)
"""

from __future__ import annotations

from datetime import date

import pytest

from index.config import StoreConfig

pytestmark = pytest.mark.slow

gr = pytest.importorskip("gradio")

from index.decision import Decision, Paragraph  # noqa: E402
from rag.question import MAX_QUESTION_CHARS  # noqa: E402
from ui import render  # noqa: E402
from conftest import free_port  # noqa: E402
from ui.app import (  # noqa: E402
    Chat,
    build_app,
    check_binding,
    launch,
    make_filters,
    parse_auth,
    serve,
)

QUESTION = "why was the complaint by Mr X closed?"
PARA_15 = "The Council acknowledges it should have held the strategy meeting"
NO_FILTERS = ("Any", "Any", "Any", "", "")


@pytest.fixture(scope="module")
def seeds_app(seeds_archive):
    return build_app(seeds_archive)


@pytest.fixture(scope="module")
def app(seeds_app):
    return seeds_app.ombudsman


def run_chat(app, question, chat=None, filters=NO_FILTERS):
    """Every update the chat event sends, and the last one."""
    updates = list(app.chat_stream(question, chat or Chat(), *filters))
    return updates, updates[-1]


# -- the page over the seeds ----------------------------------------------------------------------

def test_app_builds_over_the_seeds_index_with_filters_from_the_index(seeds_app, app):
    assert isinstance(seeds_app, gr.Blocks)
    authorities, categories, outcomes = app.filter_choices()
    assert authorities == ["Any", "Leicestershire County Council"]
    assert "Children's care services" in categories
    assert "Children's care services > Child protection" in categories
    assert outcomes == ["Any", "Closed after initial enquiries"]


def test_status_line_counts_decisions_and_paragraphs_and_names_model_and_store(seeds_archive, app):
    header = app.header_html()
    assert "<b>2</b> decisions" in header
    assert "<b>33</b> paragraphs" in header
    assert "all-MiniLM-L6-v2" in header
    assert str(seeds_archive.store_config.index_dir) in header


def test_decisions_table_lists_and_searches_the_indexed_decisions(app):
    rows = app.decision_rows()
    assert [r[1] for r in rows] == ["24 016 809", "24 000 184"]  # newest first
    assert rows[0] == ["Leicestershire County Council", "24 016 809", "Children's care services > Child protection",
                       "Closed after initial enquiries", "2025-04-09"]
    assert [r[1] for r in app.decision_rows("24-000-184")] == ["24 000 184"]
    assert [r[1] for r in app.decision_rows("24000184")] == ["24 000 184"]
    assert app.decision_rows("Nowhere Borough") == []


def test_decision_view_has_the_summary_first_and_every_paragraph_addressable(app):
    view = app.decision_view("24-016-809")
    assert view.index('id="p-summary"') < view.index('id="p-1"')
    for n in range(1, 19):
        assert f'id="p-{n}"' in view
    assert 'id="p-19"' not in view
    assert PARA_15 in view
    assert "https://www.lgo.org.uk/decisions/children-s-care-services/child-protection/24-016-809" in view


def test_unknown_decision_is_a_plain_message(app):
    view = app.decision_view("99 999 999")
    assert 'class="notice notice-error"' in view and "99 999 999" in view


# -- the chat -----------------------------------------------------------------------------------

def test_chat_streams_an_answer_with_markers_linked_to_citation_cards(app):
    updates, (conversation, sources, chat, notice, _, _) = run_chat(app, QUESTION)
    assert len(updates) >= 2  # the pending state first, then the answer
    assert "Searching the decisions" in updates[0][0]
    assert notice == ""
    assert len(chat.exchanges) == 1
    answer = chat.exchanges[0].answer
    assert answer.found and answer.citations
    first = answer.citations[0]
    assert 'href="#cite-1-1"' in conversation
    assert 'id="cite-1-1"' in sources
    assert 'data-ref="24 016 809"' in sources
    label = "Summary" if first.hit.paragraph == "summary" else f"para {first.hit.paragraph}"
    assert f'<span class="card-para">{label}</span>' in sources
    assert "<mark>" in sources  # the supporting sentence is highlighted


def test_follow_up_questions_use_the_conversation(app):
    _, (_, _, chat, _, _, _) = run_chat(app, QUESTION)
    _, (conversation, sources, chat, notice, _, _) = run_chat(app, "what did the Council say about the strategy meeting?", chat)
    assert notice == ""
    assert len(chat.exchanges) == 2
    assert 'data-turn="2"' in conversation and 'data-turn="1"' in conversation
    assert sources.index('data-turn="2"') < sources.index('data-turn="1"')  # newest answer's cards on top
    assert chat.exchanges[1].answer.citations


def test_empty_question_is_an_error_shown_in_the_page(app):
    updates, (conversation, _, chat, notice, _, _) = run_chat(app, "   ")
    assert len(updates) == 1
    assert "The question is empty" in notice
    assert chat.exchanges == []


def test_over_long_question_is_refused_with_the_limit(app):
    _, (_, _, chat, notice, _, _) = run_chat(app, "why " * (MAX_QUESTION_CHARS // 4 + 1))
    assert f"the limit is {MAX_QUESTION_CHARS}" in notice
    assert chat.exchanges == []


def test_date_filters_are_validated(app):
    _, (_, _, _, notice, _, _) = run_chat(app, QUESTION, filters=("Any", "Any", "Any", "2025-13-01", ""))
    assert "Decided since" in notice and "YYYY-MM-DD" in notice
    with pytest.raises(ValueError, match="after"):
        make_filters(since="2025-05-01", until="2025-01-01")
    f = make_filters("Leicestershire County Council", "Any", "Upheld", "2024-01-01", "")
    assert (f.authority, f.category, f.outcome, f.since, f.until) == (
        "Leicestershire County Council", "", "Upheld", date(2024, 1, 1), None)


def test_filters_apply_to_the_chat(app):
    _, (_, sources, chat, notice, _, _) = run_chat(app, QUESTION, filters=("Any", "Any", "Upheld", "", ""))
    assert notice == ""
    answer = chat.exchanges[-1].answer
    assert not answer.found  # no seed decision is upheld
    assert 'id="cite-1-1"' not in sources


def test_a_question_is_shown_as_text(app):
    _, (conversation, _, _, _, _, _) = run_chat(app, 'why <img src=x onerror="alert(1)"> closed?')
    assert "<img" not in conversation
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in conversation


# -- errors: index missing, model mismatch, Chroma unreachable -------------------------------------

def test_empty_index_says_how_to_build_it(tmp_path, embedder):
    from rag.archive import Archive

    empty = build_app(Archive(StoreConfig(index_dir=tmp_path / "empty"), encoder=embedder.encoder)).ombudsman
    assert "<b>0</b> decisions" in empty.header_html()
    _, (_, _, chat, notice, _, _) = run_chat(empty, QUESTION)
    assert "Nothing is indexed" in notice and "ombudsman ingest" in notice
    assert chat.exchanges == []


def test_unreachable_chroma_server_is_reported_and_the_app_still_builds(tmp_path, embedder):
    from rag.archive import Archive

    archive = Archive(StoreConfig(index_dir=tmp_path / "srv", chroma_url=f"http://127.0.0.1:{free_port()}"),
                      encoder=embedder.encoder)
    app = build_app(archive).ombudsman
    _, (_, _, _, notice, _, _) = run_chat(app, QUESTION)
    for shown in (app.header_html(), notice, app.lookup_view("24 016 809")[0], app.decision_view("24 016 809")):
        assert "cannot reach the chroma server" in shown.lower()


def test_model_mismatch_is_reported_in_the_chat(seeds_archive):
    from rag.archive import Archive, encoder_of_label

    recorded = encoder_of_label(seeds_archive.store.model_label)
    other = "onnx" if recorded != "onnx" else "onnx-int8"
    app = build_app(Archive(seeds_archive.store_config, encoder=other)).ombudsman
    _, (_, _, _, notice, _, _) = run_chat(app, QUESTION)
    assert "was built with" in notice and "--rebuild" in notice


# -- citation lookup ------------------------------------------------------------------------------

def test_lookup_of_a_paragraph_shows_it_with_a_citation_line(app):
    html, line = app.lookup_view("24 016 809 para 15")
    assert PARA_15 in html
    assert 'data-paragraph="15"' in html
    assert line.startswith("Leicestershire County Council (24 016 809), para 15, 9 April 2025, https://www.lgo.org.uk/")


def test_lookup_of_a_provision_lists_the_citing_paragraphs(app):
    html, lines = app.lookup_view("section 26(6)(c)")
    assert "24 016 809" in html
    assert "para 3" in html
    assert "(24 016 809), para 3" in lines


def test_lookup_errors_are_plain_messages(app):
    html, line = app.lookup_view("99 999 999")
    assert "notice-error" in html and line == ""
    html, _ = app.lookup_view("24 016 809 para 40")
    assert "paragraphs 1-18" in html
    html, _ = app.lookup_view("")
    assert "notice-error" in html


# -- the API ------------------------------------------------------------------------------------

def test_ask_endpoint_returns_the_answer_json(app):
    out = app.ask_json(QUESTION)
    assert out["question"] == QUESTION and out["found"] is True
    assert out["citations"][0]["ref"] == "24 016 809"
    assert out["citations"][0]["n"] == 1
    assert "[1]" in out["answer"]


def test_ask_endpoint_errors_are_gradio_errors_with_the_message(app):
    with pytest.raises(gr.Error, match="question is empty"):
        app.ask_json("")
    with pytest.raises(gr.Error, match="YYYY-MM-DD"):
        app.ask_json(QUESTION, since="09/04/2025")


def test_cite_endpoint_returns_the_lookup_json(app):
    out = app.cite_json("24-016-809 para 15")
    assert out["kind"] == "paragraph"
    assert out["hit"]["paragraph"] == 15 and out["hit"]["text"].startswith(PARA_15)
    assert out["citation"].startswith("Leicestershire County Council (24 016 809), para 15")


def test_gradio_client_calls_ask_and_cite(seeds_archive):
    from gradio_client import Client

    blocks = build_app(seeds_archive)
    port = free_port()
    launch(blocks, "127.0.0.1", port, prevent_thread_lock=True, quiet=True)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
        assert {"/ask", "/cite"} <= set(endpoints)
        answer = client.predict(QUESTION, api_name="/ask")
        assert answer["found"] is True and answer["citations"][0]["ref"] == "24 016 809"
        cited = client.predict("24 016 809 para 15", api_name="/cite")
        assert cited["kind"] == "paragraph" and cited["hit"]["text"].startswith(PARA_15)
        filtered = client.predict(QUESTION, "", "", "Upheld", "", "", api_name="/ask")
        assert filtered["found"] is False
    finally:
        blocks.close(verbose=False)


def test_auth_protects_the_page_and_the_api(seeds_archive):
    import urllib.error
    import urllib.parse
    import urllib.request
    from http.cookiejar import CookieJar

    blocks = build_app(seeds_archive)
    port = free_port()
    launch(blocks, "127.0.0.1", port, ("alice", "s3cret"), prevent_thread_lock=True, quiet=True)
    base = f"http://127.0.0.1:{port}"
    try:
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{base}/config", timeout=10)
        assert refused.value.code == 401
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
        form = urllib.parse.urlencode({"username": "alice", "password": "s3cret"}).encode()
        assert opener.open(f"{base}/login", data=form, timeout=10).status == 200
        assert opener.open(f"{base}/config", timeout=10).status == 200
    finally:
        blocks.close(verbose=False)


# -- the eval tab ---------------------------------------------------------------------------------

def test_eval_tab_shows_the_metrics_table_and_the_failing_questions(app):
    table, failures, note = app.run_eval(progress=lambda *a, **k: None)
    assert "| hybrid |" in table and "recall@5" in table
    assert "Failed questions" not in table  # failures go to their own table
    assert all(len(row) == 5 for row in failures)
    assert "questions scored" in note


# -- serving ------------------------------------------------------------------------------------

@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_loopback_hosts_need_no_password(host):
    check_binding(host, None)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "example.org"])
def test_other_hosts_refuse_to_start_without_a_password(host):
    with pytest.raises(ValueError, match="--auth user:password"):
        check_binding(host, None)
    check_binding(host, ("alice", "s3cret"))


def test_serve_on_all_interfaces_without_auth_refuses_before_building_anything(tmp_path):
    from rag.archive import Archive

    archive = Archive(StoreConfig(index_dir=tmp_path / "never"))
    with pytest.raises(ValueError, match="refusing to serve on 0.0.0.0"):
        serve(archive, "0.0.0.0", free_port(), None)
    assert not (tmp_path / "never").exists()


def test_serve_command_refuses_all_interfaces_without_auth(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from ui.cli import main

    monkeypatch.delenv("OMBUDSMAN_AUTH", raising=False)
    result = CliRunner().invoke(main, ["--index", str(tmp_path / "idx"), "serve", "--host", "0.0.0.0"])
    assert result.exit_code == 1
    assert "refusing to serve on 0.0.0.0" in result.output and "--auth" in result.output
    result = CliRunner().invoke(main, ["--index", str(tmp_path / "idx"), "serve", "--host", "0.0.0.0", "--auth", "alice"])
    assert result.exit_code == 1 and "user:password" in result.output


def test_auth_is_user_colon_password():
    assert parse_auth("alice:s3:cret") == ("alice", "s3:cret")
    assert parse_auth("") is None
    for bad in ("alice", ":pw", "alice:"):
        with pytest.raises(ValueError):
            parse_auth(bad)


# -- safe rendering -------------------------------------------------------------------------------

EVIL = '<script>window.__xss=1</script> and <img src=x onerror="window.__xss=1">'


def test_decision_text_is_escaped_everywhere_it_is_shown():
    d = Decision(
        reference="23 999 001", authority="Evil <b>Borough</b>", category=("Cat <i>x</i>",), outcome="Upheld",
        decision_date=date(2024, 6, 4), url="javascript:alert(1)", summary=EVIL,
        paragraphs=(Paragraph(1, "The <complaint>", EVIL),),
    )
    html = render.decision_view(d)
    assert "<script" not in html and "<img" not in html and "<b>Borough" not in html
    assert "&lt;script&gt;window.__xss=1&lt;/script&gt;" in html
    assert "javascript:" not in html  # no link rather than a script link
    hit = {"ref": "23 999 001", "paragraph": 1, "section": "<s>", "authority": "<b>A</b>", "outcome": "Upheld",
           "decision_date": "2024-06-04", "url": "https://example.org/\"><script>", "text": EVIL}
    card = render.card(hit, n=1, sentences=["<script>window.__xss=1</script>"], anchor="cite-1-1",
                       citation_line='A (23 999 001), para 1 <script>')
    assert "<script" not in card and "<img" not in card and "<b>A" not in card
    assert "<mark>&lt;script&gt;window.__xss=1&lt;/script&gt;</mark>" in card
    assert render.safe_url('https://example.org/"><script>') == ""


def test_markers_link_to_cards_and_other_brackets_stay_text():
    html = render.link_markers("Closed [1]. Not <b>fault</b> [2, 3] [9]", 4, known=[1, 2, 3])
    assert 'href="#cite-4-1"' in html and 'href="#cite-4-2"' in html and 'href="#cite-4-3"' in html
    assert "#cite-4-9" not in html and "[9]" in html
    assert "&lt;b&gt;fault&lt;/b&gt;" in html


def test_supporting_sentences_are_highlighted_without_breaking_entities():
    html = render.highlight("A & B said so. C < D is false.", ["C < D is false."])
    assert html == "A &amp; B said so. <mark>C &lt; D is false.</mark>"
    assert render.highlight("one  two\nthree", ["one two three"]) == "<mark>one  two\nthree</mark>"


def test_nothing_remote_is_configured():
    import os

    from ui.app import CSS_PATH, theme

    t = theme()
    assert os.environ["GRADIO_ANALYTICS_ENABLED"] == "False"
    assert not any(type(f).__name__ == "GoogleFont" for f in (*t._font, *t._font_mono))
    assert not any(s for s in t._stylesheets if "://" in s)
    assert "://" not in CSS_PATH.read_text(encoding="utf-8")


def test_candidates_and_closest_passages_are_shown_when_there_is_no_single_answer():
    from types import SimpleNamespace

    from ui.app import answer_cards

    hit = {"ref": "24 000 184", "paragraph": 13, "section": "Final decision", "authority": "Leicestershire County Council",
           "outcome": "Closed after initial enquiries", "decision_date": "2024-06-04", "url": "", "text": "We will not."}
    ambiguous = SimpleNamespace(citations=[], closest=[], candidates=[
        {"ref": "24 000 184", "authority": "Leicestershire County Council", "decision_date": "2024-06-04", "outcome": "Closed"},
        {"ref": "24 016 809", "authority": "Leicestershire County Council", "decision_date": "2025-04-09", "outcome": "Closed"},
    ])
    html = answer_cards(1, ambiguous)
    assert "Decisions that match this question" in html and "24 000 184" in html and "24 016 809" in html
    not_found = SimpleNamespace(citations=[], candidates=[], closest=[hit])
    html = answer_cards(2, not_found)
    assert "Closest passages" in html and 'id="near-2-1"' in html and "card-closest" in html
