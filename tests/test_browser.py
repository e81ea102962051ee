"""The app in a real headless Chromium (Debian's /usr/bin/chromium driven by Playwright, no browser
download): a question answered with cited paragraph cards, the citation lookup, the decision
browser, no request leaving 127.0.0.1 (the network is cut for the page), and a decision carrying
``<script>`` and ``onerror=`` shown as text with nothing run. Screenshots go to each test's tmp_path.

Without /usr/bin/chromium these tests skip and say so; CI sets OMBUDSMAN_REQUIRE_BROWSER=1 so that
they fail instead.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

import pytest

from index.config import SEEDS_DIR, StoreConfig
from conftest import free_port, stop

pytestmark = [pytest.mark.slow, pytest.mark.browser]

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
QUESTION = "why was the complaint by Mr X closed?"
PARA_15 = "The Council acknowledges it should have held the strategy meeting"
TIMEOUT = 90_000  # ms; the machines are shared and slow
EVIL_SCRIPT = "<script>window.__xss=1</script>"
EVIL_IMG = '<img src=x onerror="window.__xss=1">'


def _browser_missing(reason: str):
    if os.environ.get("OMBUDSMAN_REQUIRE_BROWSER"):
        pytest.fail(f"{reason} (OMBUDSMAN_REQUIRE_BROWSER is set, so browser tests must run)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        _browser_missing(f"{CHROMIUM} is missing: apt-get install chromium to run the browser tests")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _browser_missing("the playwright package is not installed: pip install -e '.[test]'")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        yield b
        b.close()


@contextmanager
def served(archive):
    """The app over ``archive`` on a free loopback port, closed afterwards."""
    from ui.app import build_app, launch

    blocks = build_app(archive)
    port = free_port()
    launch(blocks, "127.0.0.1", port, prevent_thread_lock=True, quiet=True)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        blocks.close(verbose=False)


@pytest.fixture(scope="module")
def seeds_url(seeds_archive):
    with served(seeds_archive) as url:
        yield url


class Visit:
    """A page with the network cut: any request not to 127.0.0.1 is recorded and aborted."""

    def __init__(self, browser, url: str, size=(1366, 768)) -> None:
        self.context = browser.new_context(viewport={"width": size[0], "height": size[1]})
        self.outside: list[str] = []
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.page.on("dialog", self._dialog)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.set_default_timeout(TIMEOUT)
        self.page.goto(url, wait_until="load")
        self.page.wait_for_selector("#question textarea", state="attached")

    def _route(self, route):
        u = urlparse(route.request.url)
        if u.scheme in ("data", "blob") or u.hostname == "127.0.0.1":
            route.continue_()
        else:
            self.outside.append(route.request.url)
            route.abort()

    def _dialog(self, dialog):
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def tab(self, name: str) -> None:
        self.page.get_by_role("tab", name=name).click()

    def type(self, elem_id: str, text: str) -> None:
        self.page.locator(f"#{elem_id} textarea, #{elem_id} input").first.fill(text)

    def ask(self, question: str, turn: int) -> None:
        self.type("question", question)
        self.page.click("#ask-btn")
        # finished: the exchange is in the conversation and no longer pending
        self.page.wait_for_selector(f'#conversation section.turn[data-turn="{turn}"] .msg-answer:not(:has(.caret, .thinking))')

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def visit(browser):
    opened: list[Visit] = []

    def open_(url: str, size=(1366, 768)) -> Visit:
        v = Visit(browser, url, size)
        opened.append(v)
        return v

    yield open_
    for v in opened:
        v.close()


def test_question_answered_with_cards_citation_lookup_and_decision(visit, seeds_url, tmp_path):
    v = visit(seeds_url)
    page = v.page
    assert page.locator("#examples button").count() >= 3  # example questions on an empty chat
    assert "2 decisions" in page.inner_text("#top")
    page.screenshot(path=str(tmp_path / "empty.png"))

    v.ask(QUESTION, 1)
    answer = page.inner_text('#conversation section.turn[data-turn="1"] .answer-text')
    assert "We will not investigate Mr X" in answer
    assert "not enough evidence of fault" in answer
    assert "[1]" in answer

    card = page.locator('#sources .card[data-ref="24 016 809"]').first
    card.wait_for()
    label = card.locator(".card-para").inner_text()
    number = card.get_attribute("data-paragraph")
    assert re.fullmatch(r"para \d+|Summary", label)
    if number != "summary":
        assert label == f"para {number}" and 1 <= int(number) <= 18
    card_text = card.inner_text()
    assert "Leicestershire County Council" in card_text and "24 016 809" in card_text
    assert "Closed after initial enquiries" in card_text and "9 Apr 2025" in card_text
    assert card.locator("a.card-link").get_attribute("href").endswith("/child-protection/24-016-809")
    highlighted = card.locator("mark").first.inner_text()
    assert highlighted and highlighted.split()[0] in answer  # the quoted sentence is the one highlighted

    # a marker brings its card into view inside the sources panel
    page.click('#conversation a.cite-marker[data-target="cite-1-1"]')
    page.wait_for_function(
        """() => { const c = document.getElementById('cite-1-1'), box = document.getElementById('sources');
                   const a = c.getBoundingClientRect(), b = box.getBoundingClientRect();
                   return a.top >= b.top - 1 && a.top < b.bottom && a.top < window.innerHeight; }""")
    page.screenshot(path=str(tmp_path / "answer.png"))

    v.tab("Citation lookup")
    v.type("cite-text", "24 016 809 para 15")
    page.click("#cite-btn")
    page.wait_for_selector('#cite-out .card[data-paragraph="15"]')
    assert PARA_15 in page.inner_text("#cite-out")
    line = page.locator("#cite-line textarea, #cite-line input").first.input_value()
    assert line.startswith("Leicestershire County Council (24 016 809), para 15, 9 April 2025, https://www.lgo.org.uk/")
    page.screenshot(path=str(tmp_path / "lookup.png"))

    v.tab("Decisions")
    v.type("decision-search", "24-016-809")
    page.click("#decision-open")
    page.wait_for_selector("#decision-view #p-15")
    assert " ".join(page.inner_text("#decision-view #p-15").split()).startswith("15 " + PARA_15)
    assert page.locator("#decision-view #p-summary").count() == 1
    page.screenshot(path=str(tmp_path / "decision.png"))
    v.type("decision-search", "")  # the whole table again; choosing a row opens it
    page.locator("#decision-table").get_by_text("24 000 184").click()
    page.wait_for_selector('#decision-view article.decision[data-ref="24 000 184"]')

    assert v.outside == [], f"requests left 127.0.0.1: {v.outside}"
    assert v.errors == [], v.errors
    print(f"\nscreenshots in {tmp_path}")


def _answered(page, turn: int) -> str:
    page.wait_for_selector(f'#conversation section.turn[data-turn="{turn}"] .msg-answer:not(:has(.caret, .thinking))')
    return page.inner_text(f'#conversation section.turn[data-turn="{turn}"] .answer-text')


def test_enter_sends_the_question_and_shift_enter_starts_a_new_line(visit, seeds_url, tmp_path):
    v = visit(seeds_url)
    page = v.page
    box = page.locator("#question textarea")
    box.click()
    box.press_sequentially("why was the complaint")
    box.press("Shift+Enter")
    box.press_sequentially("by Mr X closed?")
    assert box.input_value() == "why was the complaint\nby Mr X closed?"
    page.wait_for_timeout(300)
    assert page.locator("#conversation section.turn").count() == 0  # Shift+Enter sent nothing
    box.press("Enter")
    assert "We will not investigate Mr X" in _answered(page, 1)
    assert box.input_value() == ""  # sent, and the box is ready for the next question
    page.screenshot(path=str(tmp_path / "enter.png"))
    assert v.outside == [] and v.errors == []


def test_a_link_with_a_question_asks_it_and_a_link_to_a_paragraph_opens_it(visit, seeds_url, tmp_path):
    from urllib.parse import quote

    v = visit(seeds_url + "?q=" + quote(QUESTION))
    assert "We will not investigate Mr X" in _answered(v.page, 1)
    share = v.page.locator('#conversation section.turn[data-turn="1"] a.share-link').get_attribute("href")
    assert share == "?q=" + quote(QUESTION)
    v.page.screenshot(path=str(tmp_path / "link-question.png"))

    w = visit(seeds_url + "?ref=24-016-809&para=15")
    page = w.page
    focus = page.locator("#decision-view #p-15.para-focus")
    focus.wait_for()
    assert PARA_15 in focus.inner_text()
    assert page.get_by_role("tab", name="Decisions").get_attribute("aria-selected") == "true"
    page.wait_for_function("""() => { const r = document.querySelector('#decision-view #p-15').getBoundingClientRect();
                                      return r.top >= 0 && r.bottom <= window.innerHeight; }""")
    page.screenshot(path=str(tmp_path / "link-paragraph.png"))
    # A card's "Open in the decision" link is such a link.
    assert page.locator("#decision-view #p-15 a.para-n").get_attribute("href") == "?ref=24-016-809&para=15"
    assert w.outside == [] and w.errors == []


def test_the_conversation_downloads_as_markdown_and_its_citations_as_csv(visit, seeds_url, tmp_path):
    v = visit(seeds_url)
    page = v.page
    assert not page.locator("#export-md").is_visible()  # nothing to take yet
    v.ask(QUESTION, 1)
    page.locator("#export-md").wait_for(state="visible")
    with page.expect_download() as got:
        page.click("#export-md")
    markdown = Path(got.value.path()).read_text(encoding="utf-8")
    assert markdown.startswith("# Questions about LGSCO decisions")
    assert f"## 1. {QUESTION}" in markdown and "We will not investigate Mr X" in markdown
    assert re.search(r"^\[1\] Leicestershire County Council \(24 016 809\), (para \d+|Summary), 9 April 2025, "
                     r"https://www\.lgo\.org\.uk/decisions/children-s-care-services/child-protection/24-016-809$",
                     markdown, re.M)
    with page.expect_download() as got:
        page.click("#export-csv")
    rows = Path(got.value.path()).read_text(encoding="utf-8").splitlines()
    assert rows[0] == "question,n,authority,ref,paragraph,section,outcome,decision_date,url,citation,quoted,text"
    assert len(rows) >= 2 and "24 016 809" in rows[1]
    page.screenshot(path=str(tmp_path / "exports.png"))


@pytest.fixture(scope="module")
def corpus_url(corpus_archive):
    with served(corpus_archive) as url:
        yield url


def test_a_phone_width_window_never_scrolls_sideways_on_the_ask_and_explore_tabs(visit, corpus_url, tmp_path):
    """At 420 px the tabs that do not fit go under the tab bar's menu, the Explore fields wrap, and
    the chart and the table scroll inside their boxes: the page itself is no wider than the window."""
    v = visit(corpus_url, size=(420, 900))
    page = v.page
    page.wait_for_selector("#question textarea")
    assert page.evaluate("document.documentElement.scrollWidth") <= 420
    page.screenshot(path=str(tmp_path / "narrow-ask.png"))
    page.get_by_role("button", name="More tabs").click()  # Explore did not fit on the bar
    page.locator("#tabs .overflow-dropdown button", has_text="Explore").click()
    page.wait_for_selector("#x-summary .stats-summary")
    page.locator('#x-chart path[role="graphics-symbol"]').first.wait_for()
    assert page.evaluate("document.documentElement.scrollWidth") <= 420
    page.screenshot(path=str(tmp_path / "narrow-explore.png"), full_page=True)
    print(f"\nscreenshots in {tmp_path}")


def test_the_explore_tab_charts_the_archive_and_a_bar_lists_its_decisions(visit, corpus_url, tmp_path):
    v = visit(corpus_url, size=(1366, 1000))
    page = v.page
    v.tab("Explore")
    page.wait_for_selector("#x-summary .stats-summary")
    assert page.inner_text("#x-summary").startswith("150 decisions")
    bars = page.locator('#x-chart path[role="graphics-symbol"]')
    bars.first.wait_for()
    assert bars.count() >= 10
    page.screenshot(path=str(tmp_path / "explore.png"), full_page=True)

    # Group by outcome, then click the bar of upheld decisions: the decisions behind it are listed.
    page.locator("#x-by input").click()
    page.get_by_role("option", name="outcome", exact=True).click()
    page.wait_for_function("document.querySelector('#x-summary').innerText.includes('Grouped by outcome')")
    page.wait_for_function("""() => [...document.querySelectorAll('#x-chart path[role="graphics-symbol"]')]
                               .some(e => (e.getAttribute('aria-label') || '').includes(': Upheld;'))""")
    labels = page.locator('#x-chart path[role="graphics-symbol"]').evaluate_all("els => els.map(e => e.getAttribute('aria-label'))")
    counts = {}
    for label in labels:  # e.g. "outcome: Upheld; decisions: 56"
        m = re.search(r"^[^:]+: (.*?); decisions: (\d+)", label or "")
        if m:
            counts[m.group(1)] = int(m.group(2))
    assert counts.get("Upheld") == 56 and sum(counts.values()) == 150, labels
    upheld_bar = None
    for i in range(bars.count()):
        bar = page.locator('#x-chart path[role="graphics-symbol"]').nth(i)
        if ": Upheld;" in (bar.get_attribute("aria-label") or ""):
            upheld_bar = bar
    assert upheld_bar is not None
    upheld_bar.click()
    page.wait_for_function("document.querySelector('#x-decisions').innerText.includes('56 decisions: Upheld')")
    assert page.locator("#x-decisions tbody tr").count() == 56
    page.screenshot(path=str(tmp_path / "explore-bar.png"), full_page=True)

    with page.expect_download() as got:
        page.click("#x-csv")
    lines = Path(got.value.path()).read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("outcome,count,upheld") and any(line.startswith("Upheld,56,56") for line in lines)

    v.type("similar-text", "the carers kept arriving late to put my mum to bed")
    page.click("#similar-btn")
    page.wait_for_selector("#similar-out .card")
    assert page.locator("#similar-out .card").count() == 5 and "similar decisions" in page.inner_text("#similar-out")
    page.get_by_text("Side by side").click()
    v.type("compare-text", "24 016 809, 24-000-184")
    page.click("#compare-btn")
    page.wait_for_selector("#compare-out table.compare")
    assert "Not investigated because" in page.inner_text("#compare-out")
    page.screenshot(path=str(tmp_path / "explore-similar.png"), full_page=True)
    assert v.outside == [] and v.errors == []


def test_an_aggregate_question_in_the_chat_comes_with_a_chart(visit, corpus_url, tmp_path):
    v = visit(corpus_url)
    page = v.page
    v.ask("how many upheld complaints against Cornwall Council are there?", 1)
    answer = page.inner_text('#conversation section.turn[data-turn="1"] .answer-text')
    assert answer.startswith("2 of the 150 indexed decisions")
    page.locator('#answer-chart path[role="graphics-symbol"]').first.wait_for()
    page.screenshot(path=str(tmp_path / "aggregate.png"))
    assert v.outside == []


def test_errors_show_in_the_page_and_it_stays_usable(visit, seeds_url, tmp_path):
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    v = visit(seeds_url)
    page = v.page
    page.click("#ask-btn")  # empty question
    page.wait_for_selector("#chat-notice .notice-error")
    assert "The question is empty" in page.inner_text("#chat-notice")
    page.click("#filters button.label-wrap, #filters > button")
    v.type("f-since", "9 April 2025")
    v.type("question", QUESTION)
    # Gradio drops a click on Ask while the previous ask's later steps (export, chart) still run,
    # which a loaded machine can make last past the first error's display: asked again until heard.
    for _ in range(10):
        page.click("#ask-btn")
        try:
            page.wait_for_function("document.querySelector('#chat-notice').innerText.includes('YYYY-MM-DD')", timeout=9000)
            break
        except PlaywrightTimeout:
            continue
    assert "YYYY-MM-DD" in page.inner_text("#chat-notice")
    v.type("f-since", "2025-01-01")
    v.ask(QUESTION, 1)  # the same page answers once the filter is fixed
    assert page.locator('#sources .card[data-ref="24 016 809"]').count() >= 1
    assert page.inner_text("#chat-notice").strip() == ""
    page.screenshot(path=str(tmp_path / "errors.png"))
    assert v.outside == []


def _evil_decision(folder: Path) -> Path:
    """A seed decision renamed, with markup in its authority and first paragraph."""
    text = (SEEDS_DIR / "24-000-184.txt").read_text(encoding="utf-8")
    text = text.replace("Leicestershire County Council (24 000 184)", "Testshire <b>Borough</b> Council (23 999 001)")
    first = "Dr X complains about how the Council dealt with child protection matters relating to her child."
    assert first in text
    text = text.replace(first, f"{first} Her email said {EVIL_SCRIPT} and {EVIL_IMG} in full.")
    folder.mkdir(parents=True)
    path = folder / "23-999-001.txt"
    path.write_text(text, encoding="utf-8")
    return path


def test_decision_text_with_markup_is_shown_as_text_and_runs_nothing(visit, tmp_path, embedder):
    from rag.archive import Archive

    archive = Archive(StoreConfig(index_dir=tmp_path / "index"), encoder=embedder.encoder)
    report = archive.ingest([_evil_decision(tmp_path / "decisions")])
    assert not report.failed, report.failed

    with served(archive) as url:
        v = visit(url)
        page = v.page

        v.tab("Decisions")
        assert "Testshire <b>Borough</b> Council" in page.inner_text("#decision-table")
        v.type("decision-search", "23 999 001")
        page.click("#decision-open")
        page.wait_for_selector("#decision-view #p-1")
        shown = page.inner_text("#decision-view #p-1")
        assert EVIL_SCRIPT in shown and EVIL_IMG in shown
        assert "Testshire <b>Borough</b> Council" in page.inner_text("#decision-view")
        page.screenshot(path=str(tmp_path / "decision.png"))

        v.tab("Ask")
        v.ask('what did Dr X\'s email say? <img src=y onerror="window.__xss=2">', 1)
        assert '<img src=y onerror="window.__xss=2">' in page.inner_text('#conversation section.turn[data-turn="1"] .msg-user')
        v.tab("Citation lookup")
        v.type("cite-text", "23 999 001 para 1")
        page.click("#cite-btn")
        page.wait_for_selector('#cite-out .card[data-paragraph="1"]')
        assert EVIL_SCRIPT in page.inner_text("#cite-out") and EVIL_IMG in page.inner_text("#cite-out")
        page.screenshot(path=str(tmp_path / "lookup.png"))

        page.wait_for_timeout(500)  # let any injected handler fire, if one had got in
        assert page.evaluate("typeof window.__xss") == "undefined"
        assert page.locator("#decision-view script, #decision-view img, #cite-out script, #cite-out img, "
                            "#conversation img, #sources script, #sources img").count() == 0
        assert v.dialogs == []
        assert v.outside == []


# -- how long `ombudsman serve` takes to a ready page ------------------------------------------------

def _serve_until_ready(index: Path, port: int, log: Path) -> float:
    """Seconds from starting ``ombudsman serve`` to the first HTTP 200 of its page; then stop it."""
    cmd = [sys.executable, "-m", "ui.cli", "--index", str(index), "serve", "--port", str(port)]
    started = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=Path(__file__).resolve().parent.parent)
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"ombudsman serve exited with {proc.returncode}:\n{log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
                    if r.status == 200:
                        return time.perf_counter() - started
            except OSError:
                pass
            if time.perf_counter() - started > 300:
                pytest.fail(f"no page after 300 s:\n{log.read_text()[-2000:]}")
            time.sleep(0.1)
    finally:
        stop(proc)


def test_serve_to_ready_page_times(tmp_path):
    """Printed, not asserted: from `ombudsman serve` to the first HTTP 200, index built from seeds/ and already there."""
    index = tmp_path / "index"
    cold = _serve_until_ready(index, free_port(), tmp_path / "cold.log")
    assert (index / "chroma").is_dir()
    warm = _serve_until_ready(index, free_port(), tmp_path / "warm.log")
    print(f"\nombudsman serve -> first HTTP 200: {cold:.1f} s building the seeds index, {warm:.1f} s with it built")
