"""The Gradio app: a chat whose answers cite the paragraphs they rest on, filters, citation lookup,
a decision browser and the eval suite, over one opened ``Archive``.

``build_app(archive)`` makes the Blocks; ``serve(...)`` builds the index from seeds/ when there is
none and launches it. All markup comes from ``ui.render``, which escapes every piece of text.
Named API endpoints for ``gradio_client``: ``/ask`` (question -> answer JSON) and ``/cite``
(citation text -> lookup JSON).
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import os
import re
import tempfile
import threading
import time
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import Any

from index import config  # noqa: F401  (the offline environment, before gradio is imported)

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # never look up api.gradio.app or huggingface.co

import gradio as gr  # noqa: E402

from index.embedder import EmbedderError  # noqa: E402
from index.store import StoreError  # noqa: E402
from rag.question import MAX_QUESTION_CHARS, check_question  # noqa: E402
from rag.retriever import Filters  # noqa: E402
from ui import render  # noqa: E402

log = logging.getLogger(__name__)

CSS_PATH = Path(__file__).with_name("theme.css")
ANY = "Any"
EXAMPLES = (
    "Why was Mr X's complaint closed?",
    "Did the Council delay the strategy meeting?",
    "What did Dr X want from her complaint?",
    "When will the Ombudsman not investigate because someone could go to court?",
)
LOOKUP_EXAMPLES = ("24 016 809 para 15", "24-000-184", "section 26(6)(c)")
USER_ERRORS = (StoreError, EmbedderError, ValueError, KeyError)
LOOPBACK_NAMES = {"localhost", "ip6-localhost"}

# The newest text stays in view; markers link to cards in another component: scroll the card into
# view and flash it.
MARKER_JS = """
watch('value', () => { const box = element.closest('#conversation'); if (box) box.scrollTop = box.scrollHeight; });
element.addEventListener('click', (event) => {
  const link = event.target.closest('a.cite-marker');
  if (!link) return;
  event.preventDefault();
  const card = document.getElementById(link.dataset.target);
  if (!card) return;
  card.scrollIntoView({behavior: 'smooth', block: 'nearest'});
  card.classList.remove('flash');
  void card.offsetWidth;
  card.classList.add('flash');
});
"""


# The question box sends on Enter and takes a new line on Shift+Enter, as its placeholder says
# (Gradio does the opposite for a box of several lines). A capturing listener sees the key before
# Gradio's own handler on the text area.
PAGE_JS = """
() => {
  const inQuestion = (event) => event.key === 'Enter' && !event.isComposing && event.target.closest
    && event.target.closest('#question');
  // Gradio submits a box of several lines on Shift+Enter at keypress: keep every Enter from it.
  document.addEventListener('keypress', (event) => {
    if (!inQuestion(event)) return;
    event.stopPropagation();
    if (!event.shiftKey) event.preventDefault();
  }, true);
  document.addEventListener('keydown', (event) => {
    if (!inQuestion(event)) return;
    event.stopPropagation();
    if (event.shiftKey) return;  // the text area inserts the new line itself
    event.preventDefault();
    const send = document.querySelector('#ask-btn');
    if (send) send.click();
  }, true);
  // A click on a bar of the Explore chart selects that bar (the chart selects by dragging across
  // bars: a click becomes a drag across the one bar clicked).
  document.addEventListener('click', (event) => {
    const mark = event.target.closest && event.target.closest('#x-chart path[role="graphics-symbol"]');
    if (!mark) return;
    const r = mark.getBoundingClientRect();
    const y = r.top + r.height / 2;
    const send = (kind, x, up) => {
      mark.dispatchEvent(new PointerEvent('pointer' + kind, {bubbles: true, clientX: x, clientY: y, buttons: up ? 0 : 1,
                                                            pointerId: 1, isPrimary: true}));
      mark.dispatchEvent(new MouseEvent('mouse' + kind, {bubbles: true, clientX: x, clientY: y, buttons: up ? 0 : 1}));
    };
    send('down', r.left + 2, false);
    send('move', r.left + r.width / 2, false);
    send('move', r.right - 2, false);
    send('up', r.right - 2, true);
  });
}
"""

# A decision opened by a link to one of its paragraphs scrolls to that paragraph.
DECISION_JS = """
const reveal = () => {
  const focus = element.querySelector('.para-focus');
  if (!focus) return;
  let tries = 0;
  const step = () => {  // the Decisions tab may still be opening: wait until the paragraph is laid out
    if (focus.offsetParent !== null && focus.getBoundingClientRect().height > 0) {
      focus.scrollIntoView({block: 'center'});
    } else if (tries++ < 100) {
      setTimeout(step, 50);
    }
  };
  step();
};
watch('value', reveal);
reveal();
"""

# A new answer's cards go on top: show them.
SOURCES_JS = """
watch('value', () => { const box = element.closest('#sources'); if (box) box.scrollTop = 0; });
"""


def user_message(error: BaseException) -> str:
    """The message a user can act on (a KeyError's repr quotes are dropped)."""
    if isinstance(error, KeyError) and error.args:
        return str(error.args[0])
    text = str(error) or type(error).__name__
    return text[:1].upper() + text[1:]


def theme() -> gr.themes.Base:
    """Gradio's Default theme with fonts it serves itself plus system fallbacks: nothing remote.

    Regular and Bold only: the SemiBold files Gradio ships are glyph subsets (most letters would
    fall back to another font), so weight 600 resolves to Bold.
    """
    fonts = gr.themes.utils.fonts
    return gr.themes.Default(
        primary_hue="blue",
        secondary_hue="slate",
        neutral_hue="slate",
        font=(fonts.LocalFont("IBM Plex Sans", weights=(400, 700)), "system-ui", "Segoe UI", "Helvetica", "Arial",
              "sans-serif"),
        font_mono=(fonts.LocalFont("IBM Plex Mono", weights=(400, 700)), "ui-monospace", "Consolas", "monospace"),
    ).set(
        body_text_size="16px",
        block_radius="10px",
        button_large_radius="8px",
    )


# -- inputs ------------------------------------------------------------------------------------

def parse_day(text: str | None, label: str) -> date | None:
    """A ``YYYY-MM-DD`` date typed in a filter box, or None when empty; ValueError naming the box."""
    t = (text or "").strip()
    if not t:
        return None
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", t):
        try:
            return date.fromisoformat(t)
        except ValueError:
            pass
    raise ValueError(f"'{label}' must be a date written YYYY-MM-DD, e.g. 2025-04-09 (got {t!r})")


def make_filters(authority: str | None = "", category: str | None = "", outcome: str | None = "",
                 since: str | None = "", until: str | None = "") -> Filters:
    """Filters from the form; "Any" or empty means no restriction."""
    pick = lambda v: "" if not v or v == ANY else str(v)  # noqa: E731
    lo, hi = parse_day(since, "Decided since"), parse_day(until, "Decided until")
    if lo and hi and lo > hi:
        raise ValueError(f"'Decided since' ({lo}) is after 'Decided until' ({hi}); swap them")
    return Filters(authority=pick(authority), category=pick(category), outcome=pick(outcome), since=lo, until=hi)


def parse_auth(text: str | None) -> tuple[str, str] | None:
    """``user:password`` -> (user, password); None when not given; ValueError when malformed."""
    if not text:
        return None
    user, sep, password = text.partition(":")
    if not sep or not user or not password:
        raise ValueError("--auth (or OMBUDSMAN_AUTH) must be user:password, both parts non-empty")
    return user, password


def is_loopback(host: str) -> bool:
    h = (host or "").strip().strip("[]").lower()
    if h in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


def check_binding(host: str, auth: tuple[str, str] | None) -> None:
    """Refuse to serve beyond this machine without a password."""
    if not is_loopback(host) and not auth:
        raise ValueError(
            f"refusing to serve on {host} without a password: anyone who can reach this machine could use "
            "the app. Add --auth user:password (or set OMBUDSMAN_AUTH=user:password), or serve on 127.0.0.1"
        )


# -- the conversation ----------------------------------------------------------------------------

@dataclass
class Exchange:
    """One question and what came back (an Answer, or the error shown instead)."""

    question: str
    answer: Any = None
    error: str = ""


@dataclass
class Chat:
    exchanges: list[Exchange] = field(default_factory=list)


def _citation_line(c: Any) -> str:
    try:
        return c.to_json().get("citation", "")
    except Exception:  # a citation without a ready line still shows its card
        return ""


def answer_cards(index: int, answer: Any) -> str:
    """The sources group of one answer: its citation cards, the candidate decisions when several
    match, and the closest passages when nothing answers it."""
    parts = [
        render.card(c.hit, n=c.n, sentences=getattr(c, "sentences", ()) or (), anchor=f"cite-{index}-{c.n}",
                    citation_line=_citation_line(c))
        for c in (getattr(answer, "citations", None) or ())
    ]
    candidates = getattr(answer, "candidates", None) or ()
    if len(candidates) > 1:
        parts.append('<div class="sources-sub">Decisions that match this question</div>'
                     + render.candidates_html(candidates))
    closest = getattr(answer, "closest", None) or ()
    if closest and not getattr(answer, "citations", None):
        parts.append('<div class="sources-sub">Closest passages (they do not answer the question)</div>')
        parts += [render.card(h, kind="closest", anchor=f"near-{index}-{i}") for i, h in enumerate(closest, 1)]
    return "".join(parts)


def _meta(answer: Any) -> str:
    n = len(getattr(answer, "citations", None) or ())
    if getattr(answer, "found", True) is False:
        return ""
    return f"{n} paragraph{'s' if n != 1 else ''} cited" if n else ""


def render_chat(chat: Chat, pending: tuple[str, str] | None = None) -> tuple[str, str]:
    """(conversation HTML, sources HTML) for the exchanges so far, plus one being answered."""
    turns, groups = [], []
    total = len(chat.exchanges) + (1 if pending else 0)
    for i, ex in enumerate(chat.exchanges, start=1):
        a = ex.answer
        if ex.error or a is None:
            turns.append(render.turn_html(i, ex.question, "", error=ex.error or "No answer."))
            continue
        known = [c.n for c in (getattr(a, "citations", None) or ())]
        turns.append(render.turn_html(i, ex.question, a.text, found=getattr(a, "found", True),
                                      note=getattr(a, "note", "") or "", known=known, meta=_meta(a)))
        cards = answer_cards(i, a)
        if cards:
            heading = "Cited paragraphs" if known else "No paragraph answers this"
            groups.append(render.sources_group(i, ex.question, [cards], heading=heading, latest=i == total))
    if pending:
        turns.append(render.turn_html(total, pending[0], pending[1], pending=True))
    return render.conversation(turns), render.sources_panel(list(reversed(groups)))


# -- the app -------------------------------------------------------------------------------------

class App:
    """The functions behind the UI and the API, over one archive (testable without a browser)."""

    def __init__(self, archive) -> None:
        self.archive = archive
        self._answerer = None
        self._catalogue: dict[str, dict] | None = None

    # status and catalogue

    def status_html(self) -> str:
        try:
            return render.status_line(self.archive.status())
        except USER_ERRORS as e:
            return render.status_line(None, error=user_message(e))

    def header_html(self) -> str:
        return render.header(self.status_html())

    def index_problem(self) -> str:
        """Why questions cannot be answered right now ("" when they can). Asked before every
        answer, so it reads the loaded catalogue, not the store (counting the store cost a third
        of an answer's time under load, measured with `python -m eval.load`); decisions another
        process ingested since are loaded first."""
        try:
            if self.archive.refresh_if_changed():
                self._catalogue = None  # the decisions table too
            if self.archive.retriever.catalogue.decisions:
                return ""
        except USER_ERRORS as e:
            if self.archive.store.exists():
                return user_message(e)
        return (f"nothing is indexed in the {self.archive.store_config.description} yet. Run "
                "`ombudsman ingest [PATH]`, or restart `ombudsman serve`, which builds it from seeds/")

    def catalogue(self) -> dict[str, dict]:
        """Indexed decisions by reference, as the loaded catalogue has them (no store read: a
        whole archive's records take seconds to read from a server)."""
        if self._catalogue is None:
            try:
                self._catalogue = self.archive.retriever.catalogue.decisions if self.archive.store.exists() else {}
            except USER_ERRORS as e:
                log.warning("cannot read the indexed decisions: %s", e)
                return {}
        return self._catalogue

    def warm_up(self) -> None:
        """Load the model and the retriever now, so that the first question does not wait for them."""
        try:
            self.archive.retriever.catalogue  # noqa: B018
        except USER_ERRORS as e:
            log.warning("the archive cannot answer questions yet: %s", e)

    def filter_choices(self) -> tuple[list[str], list[str], list[str]]:
        decisions = self.catalogue().values()
        authorities = sorted({d["authority"] for d in decisions if d.get("authority")})
        categories: set[str] = set()
        for d in decisions:
            parts = [p.strip() for p in (d.get("category") or "").split(">") if p.strip()]
            for i in range(1, len(parts) + 1):
                categories.add(" > ".join(parts[:i]))
        outcomes = sorted({d["outcome"] for d in decisions if d.get("outcome")})
        return [ANY, *authorities], [ANY, *sorted(categories)], [ANY, *outcomes]

    def decision_rows(self, search: str = "") -> list[list[str]]:
        """Authority, reference, category, outcome, date of each indexed decision, newest first."""
        words = (search or "").lower().split()
        compact = re.sub(r"[^0-9a-z]", "", (search or "").lower())
        rows = []
        for ref, d in self.catalogue().items():
            row = [d.get("authority", ""), ref, d.get("category", ""), d.get("outcome", ""), d.get("decision_date") or ""]
            hay = " ".join(row).lower()
            if words and not all(w in hay for w in words) and not (compact and compact in ref.replace(" ", "")):
                continue
            rows.append(row)
        rows.sort(key=lambda r: (r[4], r[1]), reverse=True)
        return rows

    # chat

    @property
    def answerer(self):
        if self._answerer is None:
            from rag.answer import Answerer

            self._answerer = Answerer(self.archive)
        return self._answerer

    def _history(self, chat: Chat) -> list:
        from rag.answer import Turn

        return [Turn(ex.question, ex.answer) for ex in chat.exchanges if ex.answer is not None and not ex.error]

    def ask(self, question: str, filters: Filters | None = None, history: list | None = None):
        """The Answer to a question (errors raised as ValueError/StoreError/EmbedderError)."""
        q = check_question(question)
        problem = self.index_problem()
        if problem:
            raise ValueError(problem)
        return self.answerer.answer(q, history, filters)

    def chat_stream(self, question: str, chat: Chat | None, authority: str, category: str, outcome: str,
                    since: str, until: str):
        """The chat event: yields (conversation, sources, chat state, notice, question box, examples)."""
        chat = chat if isinstance(chat, Chat) else Chat()
        conv, sources = render_chat(chat)
        examples = gr.update(visible=not chat.exchanges)
        try:
            q = check_question(question)
            filters = make_filters(authority, category, outcome, since, until)
            problem = self.index_problem()
            if problem:
                raise ValueError(problem)
        except USER_ERRORS as e:
            yield conv, sources, chat, render.notice(user_message(e)), gr.skip(), examples
            return
        history = self._history(chat)
        text, answer = "", None
        conv, sources = render_chat(chat, pending=(q, ""))
        yield conv, sources, chat, "", "", gr.update(visible=False)
        try:
            for piece in self.answerer.stream(q, history, filters):
                if isinstance(piece, str):
                    text = piece  # the whole text so far (the final Answer's text replaces it)
                    conv, _ = render_chat(chat, pending=(q, text))
                    yield conv, sources, chat, "", gr.skip(), gr.skip()
                else:
                    answer = piece
        except USER_ERRORS as e:
            chat = Chat([*chat.exchanges, Exchange(q, None, user_message(e))])
        else:
            if answer is None:  # a stream that ended without its Answer: ask for it whole
                answer = self.answerer.answer(q, history, filters)
            chat = Chat([*chat.exchanges, Exchange(q, answer)])
        conv, sources = render_chat(chat)
        yield conv, sources, chat, "", gr.skip(), gr.skip()

    def new_chat(self):
        conv, sources = render_chat(Chat())
        return conv, sources, Chat(), "", "", gr.update(visible=True)

    # links and exports

    def open_link(self, request: gr.Request | None = None):
        """What a link opens: ``?q=...`` puts the question in the box (and ``chat_from_link`` asks
        it); ``?ref=...&para=...`` opens the Decisions tab at that decision and paragraph.
        Returns (question box, question to ask, tabs, decision view)."""
        self.archive.refresh_if_changed()
        params = dict(request.query_params) if request is not None else {}
        q = (params.get("q") or "").strip()
        ref = (params.get("ref") or "").strip()
        if ref:
            para = (params.get("para") or params.get("paragraph") or "").strip().lower()
            focus: int | str | None = int(para) if para.isdigit() else ("summary" if para == "summary" else None)
            return gr.skip(), "", gr.Tabs(selected="decisions"), self.decision_view(ref, focus)
        if q:
            return q, q, gr.Tabs(selected="ask"), gr.skip()
        return gr.skip(), "", gr.skip(), gr.skip()

    def chat_from_link(self, question: str, chat: Chat | None, *filters):
        """Ask the question a ``?q=`` link carried; nothing when the page was opened without one."""
        if not (question or "").strip():
            yield tuple(gr.skip() for _ in range(6))
            return
        yield from self.chat_stream(question, chat, *filters)

    def exports(self, chat: Chat | None):
        """The download buttons: the conversation as Markdown and its cited paragraphs as CSV,
        written afresh after every answer (hidden while there is nothing to take)."""
        from ui import export

        chat = chat if isinstance(chat, Chat) else Chat()
        done = [(ex.question, ex.answer, ex.error) for ex in chat.exchanges]
        if not done:
            return gr.update(visible=False, value=None), gr.update(visible=False, value=None)
        folder = Path(tempfile.mkdtemp(prefix="ombudsman-export-"))
        md = folder / export.file_name(done[0][0], ".md")
        md.write_text(export.conversation_markdown(done), encoding="utf-8")
        rows = export.citations_csv(done)
        csv_file = folder / export.file_name(done[0][0], "-citations.csv")
        csv_file.write_text(rows, encoding="utf-8")
        has_rows = rows.count("\n") > 1
        return gr.update(visible=True, value=str(md)), gr.update(visible=has_rows, value=str(csv_file))

    # API endpoints

    def ask_json(self, question: str, authority: str = "", category: str = "", outcome: str = "",
                 since: str = "", until: str = "") -> dict:
        """Answer a question from the indexed decisions; the answer's [n] markers refer to citations[n-1].

        Filters are optional: authority (substring), category (substring), outcome (exact),
        since/until (YYYY-MM-DD).
        """
        try:
            answer = self.ask(question, make_filters(authority, category, outcome, since, until))
        except USER_ERRORS as e:
            raise gr.Error(user_message(e), print_exception=False) from None
        return answer.to_json()

    def cite_json(self, text: str) -> dict:
        """Look up a citation: "24 016 809", "24-016-809 para 15" or "section 26(6)(c)"."""
        return self.lookup(text).to_json()

    # citation lookup

    def lookup(self, text: str):
        from rag.citation import lookup

        return lookup(self.archive, text)

    def lookup_view(self, text: str) -> tuple[str, str]:
        """(result HTML, copy-ready citation line) for the Citation lookup tab."""
        if not (text or "").strip():
            return render.notice("Type a reference (24 016 809), a paragraph (24 016 809 para 15) or a "
                                 "provision (section 26(6)(c))."), ""
        try:
            result = self.lookup(text)
        except USER_ERRORS as e:
            return render.notice(user_message(e)), ""
        return render_lookup(result, self.archive)

    # decisions

    def decision_view(self, reference: str, focus: int | str | None = None) -> str:
        ref = (reference or "").strip()
        if not ref:
            return render.EMPTY_DECISION
        try:
            d = self.archive.decision(ref)
        except USER_ERRORS as e:
            return render.notice(user_message(e))
        from index.facts import facts_of

        facts = facts_of(d)
        if isinstance(focus, int) and not 1 <= focus <= len(d.paragraphs):
            from rag.citation import available

            return (render.notice(f"{d.reference} has no paragraph {focus}; it has {available(d)}.", kind="warning")
                    + render.decision_view(d, None, facts))
        return render.decision_view(d, focus, facts)

    def open_first(self, search: str) -> str:
        rows = self.decision_rows(search)
        if not rows:
            return render.notice(f"No indexed decision matches {search!r}." if search else "Nothing is indexed yet.")
        return self.decision_view(rows[0][1])

    # the archive as a whole

    GROUPINGS = ("authority", "category", "outcome", "year", "remedy", "closed_because", "fault")

    def explore(self, by: str, authority: str = ANY, category: str = ANY, outcome: str = ANY, since: str = "",
                until: str = "", remedy: str = ANY, fault: str = ANY):
        """(summary, chart data, table rows, CSV download, the figures, decisions list) for the
        Explore tab: the stats grouped ``by``, under the filters."""
        from rag.query import Query
        from rag.stats import stats, to_csv

        try:
            self.index_problem()
            f = make_filters(authority, category, outcome, since, until)
            f = replace(f, remedy="" if remedy in (None, ANY) else remedy, fault="" if fault in (None, ANY) else fault)
            retriever = self.archive.retriever
            refs = retriever.allowed_refs(Query(text=""), f)
            result = stats(retriever.catalogue.decisions, by or "outcome", refs)
        except USER_ERRORS as e:
            return render.notice(user_message(e)), self.chart_frame([]), [], gr.update(visible=False), {}, ""
        groups = result["groups"]
        chart = self.chart_frame(groups[:25])
        rows = [[g["key"], g["count"], g["upheld"], f"{g['upheld_share']:.0%}", g["payments"]["count"],
                 render._money(g["payments"]["median"]), (f"{render._money(g['payments']['min'])} to "
                                                          f"{render._money(g['payments']['max'])}") if g["payments"]["count"] else ""]
                for g in groups]
        folder = Path(tempfile.mkdtemp(prefix="ombudsman-stats-"))
        path = folder / f"decisions-by-{by}.csv"
        path.write_text(to_csv(result), encoding="utf-8")
        return (render.stats_summary(result, by), chart,
                rows, gr.update(visible=True, value=str(path)), result, "")

    def group_decisions(self, result: dict, keys) -> str:
        """The decisions one group (or several) of the figures counts."""
        keys = [keys] if isinstance(keys, (str, int, float)) else list(keys or ())
        groups = [g for g in (result or {}).get("groups", ()) if str(g["key"]) in {str(k) for k in keys}]
        if not groups:
            return render.notice(f"No group {', '.join(map(str, keys)) or '(none chosen)'} in these figures.", kind="warning")
        refs = list(dict.fromkeys(r for g in groups for r in g["refs"]))
        decisions = self.archive.retriever.catalogue.decisions
        return render.decision_list(decisions, refs, f"{len(refs)} decisions: " + ", ".join(str(g["key"]) for g in groups))

    def similar_view(self, text: str) -> str:
        from rag.similar import similar

        try:
            q = check_question(text)
            self.index_problem()
            return render.similar_view(similar(self.archive.retriever, q, 5).to_json())
        except USER_ERRORS as e:
            return render.notice(user_message(e))

    def compare_view(self, text: str) -> str:
        from index.decision import find_references
        from rag.similar import compare

        refs = find_references(text or "")
        try:
            return render.compare_table(compare(self.archive, refs))
        except USER_ERRORS as e:
            return render.notice(user_message(e))

    @staticmethod
    def chart_frame(groups: list[dict]):
        """The bars of a chart: each group's name and how many decisions it counts."""
        import pandas as pd

        return pd.DataFrame({"group": [g["key"] for g in groups], "decisions": [g["count"] for g in groups]})

    def chart_of(self, chat: Chat | None):
        """The chart of the last answer when it counted decisions (hidden otherwise)."""
        chat = chat if isinstance(chat, Chat) else Chat()
        last = chat.exchanges[-1].answer if chat.exchanges else None
        figures = getattr(last, "figures", None)
        if not figures or not figures.get("groups"):
            return gr.update(visible=False)
        return gr.update(visible=True, value=self.chart_frame(figures["groups"][:20]))

    # eval

    def run_eval(self, progress=gr.Progress()) -> tuple[str, list[list[str]], str]:
        """(metrics table as Markdown, failing questions, notice)."""
        from eval.run import evaluate_archive, format_table, load_sets

        progress(0, desc="Running the eval suite…")
        try:
            started = time.perf_counter()
            report = evaluate_archive(self.archive, load_sets())
            seconds = time.perf_counter() - started
        except USER_ERRORS as e:
            return "", [], render.notice(user_message(e))
        table = format_table(replace(report, failures=[]))
        failures = [[f["id"], f["kind"], f["question"], ", ".join(f["gold"]), ", ".join(f["retrieved"])]
                    for f in report.failures]
        scored = ", ".join(f"{n} {split}" for split, n in report.scored.items())
        note = render.notice(
            f"{scored} questions scored in {seconds:.1f} s; {len(failures)} tuning questions with no gold "
            f"paragraph in the hybrid top 5 (and {report.unseen_failures} unseen ones, not listed).", kind="info")
        return table, failures, note


PROVISION_TEXTS = 60  # paragraphs whose text a provision lookup shows (the rest: number and citation)


def render_lookup(result, archive=None) -> tuple[str, str]:
    """(HTML, copy-ready citation lines) for a ``CitationResult``; provision lookups list every citing paragraph."""
    if result.kind == "provision":
        wanted = [f'{m["ref"]}#{p["paragraph"]}' for m in result.matches for p in m["paragraphs"]][:PROVISION_TEXTS]
        texts = {}
        if archive is not None and wanted:
            from index.decision import passage_id

            ids = {passage_id(*w.split("#")): w for w in wanted}
            try:
                texts = {ids[pid]: p.text for pid, p in archive.store.passages(list(ids)).items()}
            except USER_ERRORS as e:
                log.warning("cannot read citing paragraphs: %s", e)
        lines = [p["citation"] for m in result.matches for p in m["paragraphs"] if p.get("citation")]
        return render.lookup_result(result, texts), "\n".join(lines)
    return render.lookup_result(result), result.citation or ""


def build_app(archive) -> gr.Blocks:
    """The app over an opened archive (the index should already exist; errors show in the page)."""
    app = App(archive)
    authorities, categories, outcomes = app.filter_choices()
    empty_conv, empty_sources = render_chat(Chat())

    with gr.Blocks(title="Ombudsman decisions", analytics_enabled=False) as blocks:
        header = gr.HTML(app.header_html(), js_on_load=None, elem_id="top")

        link_question = gr.State("")
        with gr.Tabs(elem_id="tabs") as tabs:
            with gr.Tab("Ask", id="ask", elem_id="tab-ask"):
                chat_state = gr.State(Chat())
                with gr.Row(elem_id="ask-row"):
                    with gr.Column(scale=7, min_width=420, elem_id="chat-col"):
                        conversation = gr.HTML(empty_conv, js_on_load=MARKER_JS, elem_id="conversation")
                        answer_chart = gr.BarPlot(None, x="group", y="decisions", visible=False, height=240, y_lim=[0, None],
                                                  label="What the last answer counted", sort="-y", elem_id="answer-chart")
                        with gr.Row(elem_id="examples", visible=True) as examples:
                            example_buttons = [gr.Button(q, size="sm", variant="secondary", elem_classes=["example"])
                                               for q in EXAMPLES]
                        notice = gr.HTML("", js_on_load=None, elem_id="chat-notice")
                        with gr.Row(elem_id="ask-box", equal_height=True):
                            question = gr.Textbox(
                                show_label=False, lines=2, max_lines=6, scale=8, elem_id="question",
                                placeholder=f"Ask about the decisions, e.g. “{EXAMPLES[0]}” (Enter sends, "
                                            f"Shift+Enter starts a new line; up to {MAX_QUESTION_CHARS} characters)",
                            )
                            with gr.Column(scale=1, min_width=110):
                                ask_btn = gr.Button("Ask", variant="primary", elem_id="ask-btn")
                                new_btn = gr.Button("New chat", size="sm", variant="secondary", elem_id="new-chat")
                        with gr.Row(elem_id="exports"):
                            md_btn = gr.DownloadButton("Download the conversation (Markdown)", visible=False,
                                                       size="sm", variant="secondary", elem_id="export-md")
                            csv_btn = gr.DownloadButton("Download the cited paragraphs (CSV)", visible=False,
                                                        size="sm", variant="secondary", elem_id="export-csv")
                    with gr.Column(scale=5, min_width=360, elem_id="side-col"):
                        with gr.Accordion("Filters", open=False, elem_id="filters") as filters_box:
                            authority = gr.Dropdown(authorities, value=ANY, label="Authority", elem_id="f-authority")
                            category = gr.Dropdown(categories, value=ANY, label="Category", elem_id="f-category")
                            outcome = gr.Dropdown(outcomes, value=ANY, label="Outcome", elem_id="f-outcome")
                            with gr.Row():
                                since = gr.Textbox(label="Decided since", placeholder="YYYY-MM-DD", elem_id="f-since",
                                                   min_width=120)
                                until = gr.Textbox(label="Decided until", placeholder="YYYY-MM-DD", elem_id="f-until",
                                                   min_width=120)
                            clear_filters = gr.Button("Clear filters", size="sm", variant="secondary")
                        sources = gr.HTML(empty_sources, js_on_load=SOURCES_JS, elem_id="sources")

            with gr.Tab("Citation lookup", id="cite", elem_id="tab-cite"):
                with gr.Column(elem_id="cite-col"):
                    gr.HTML('<p class="tab-intro">Find a decision, one of its paragraphs, or every paragraph that '
                            "cites a provision. References may be written 24 016 809, 24-016-809 or 24016809.</p>",
                            js_on_load=None)
                    with gr.Row(equal_height=True):
                        cite_text = gr.Textbox(show_label=False, placeholder="24 016 809 para 15  ·  section 26(6)(c)",
                                               scale=6, elem_id="cite-text")
                        cite_btn = gr.Button("Look up", variant="primary", scale=1, min_width=110, elem_id="cite-btn")
                    with gr.Row(elem_classes=["lookup-examples"]):
                        lookup_buttons = [gr.Button(t, size="sm", variant="secondary") for t in LOOKUP_EXAMPLES]
                    cite_line = gr.Textbox(label="Cite as (copy and paste)", interactive=False, buttons=["copy"],
                                           lines=1, max_lines=8, elem_id="cite-line")
                    cite_out = gr.HTML("", js_on_load=None, elem_id="cite-out")

            with gr.Tab("Decisions", id="decisions", elem_id="tab-decisions"):
                with gr.Row():
                    with gr.Column(scale=5, min_width=400):
                        with gr.Row(equal_height=True):
                            dsearch = gr.Textbox(show_label=False, placeholder="Search authority, reference, category, outcome",
                                                 scale=5, elem_id="decision-search")
                            open_btn = gr.Button("Open", variant="primary", scale=1, min_width=90, elem_id="decision-open")
                        table = gr.Dataframe(
                            value=app.decision_rows(), headers=["Authority", "Reference", "Category", "Outcome", "Date"],
                            datatype="str", interactive=False, wrap=True, max_height=560, elem_id="decision-table",
                            column_widths=["27%", "19%", "24%", "16%", "14%"],
                        )
                    with gr.Column(scale=6, min_width=420):
                        decision = gr.HTML(render.EMPTY_DECISION, js_on_load=DECISION_JS, elem_id="decision-view")

            with gr.Tab("Explore", id="explore", elem_id="tab-explore"):
                gr.HTML('<p class="tab-intro">The archive as a whole: decisions counted by authority, category, '
                        "outcome, year, remedy, reason not investigated or finding on fault, counted exactly from "
                        "the decisions' metadata and the facts read from their text.</p>", js_on_load=None)
                with gr.Row(equal_height=True, elem_classes=["x-row"]):
                    x_by = gr.Dropdown(list(App.GROUPINGS), value="authority", label="Group by", elem_id="x-by", scale=2)
                    x_authority = gr.Dropdown(authorities, value=ANY, label="Authority", elem_id="x-authority", scale=3)
                    x_category = gr.Dropdown(categories, value=ANY, label="Category", elem_id="x-category", scale=3)
                    x_outcome = gr.Dropdown(outcomes, value=ANY, label="Outcome", elem_id="x-outcome", scale=2)
                with gr.Row(equal_height=True, elem_classes=["x-row"]):
                    x_remedy = gr.Dropdown([ANY, "apology", "payment", "reconsider", "service", "other"], value=ANY,
                                           label="Remedy", elem_id="x-remedy", scale=2)
                    x_fault = gr.Dropdown([ANY, "found", "not found", "partly"], value=ANY, label="Fault",
                                          elem_id="x-fault", scale=2)
                    x_since = gr.Textbox(label="Decided since", placeholder="YYYY-MM-DD", elem_id="x-since", scale=2)
                    x_until = gr.Textbox(label="Decided until", placeholder="YYYY-MM-DD", elem_id="x-until", scale=2)
                    x_btn = gr.Button("Count", variant="primary", elem_id="x-btn", scale=1)
                x_figures = gr.State({})
                x_summary = gr.HTML("", js_on_load=None, elem_id="x-summary")
                x_chart = gr.BarPlot(None, x="group", y="decisions", sort="-y", height=320, x_label_angle=-30, y_lim=[0, None],
                                     label="Decisions per group (click a bar, or drag across bars, to list them)", elem_id="x-chart")
                x_table = gr.Dataframe(headers=["Group", "Decisions", "Upheld", "Upheld share", "Payments",
                                                "Median payment", "Range"], datatype="str", interactive=False,
                                       wrap=True, max_height=360, elem_id="x-table")
                x_csv = gr.DownloadButton("Download this table (CSV)", visible=False, size="sm", variant="secondary",
                                          elem_id="x-csv")
                x_decisions = gr.HTML("", js_on_load=None, elem_id="x-decisions")
                with gr.Accordion("Cases like mine", open=True, elem_id="similar-box"):
                    with gr.Row(equal_height=True, elem_classes=["x-row"]):
                        s_text = gr.Textbox(show_label=False, lines=2, scale=6, elem_id="similar-text",
                                            placeholder="Describe the complaint in your own words, e.g. “the council "
                                                        "took a year to assess my son for an EHC plan”")
                        s_btn = gr.Button("Find similar decisions", variant="primary", scale=1, elem_id="similar-btn")
                    s_out = gr.HTML("", js_on_load=None, elem_id="similar-out")
                with gr.Accordion("Side by side", open=False, elem_id="compare-box"):
                    with gr.Row(equal_height=True, elem_classes=["x-row"]):
                        c_text = gr.Textbox(show_label=False, scale=6, elem_id="compare-text",
                                            placeholder="Two to five references, e.g. 24 016 809, 24-000-184")
                        c_btn = gr.Button("Compare", variant="primary", scale=1, elem_id="compare-btn")
                    c_out = gr.HTML("", js_on_load=None, elem_id="compare-out")

            with gr.Tab("Eval", id="eval", elem_id="tab-eval"):
                gr.HTML('<p class="tab-intro">Runs the retrieval eval suite against this index: the tuning '
                        "questions (eval/questions.jsonl) and the unseen ones (eval/unseen.jsonl) side by side, "
                        "BM25, dense and hybrid. Questions about decisions that are not indexed are skipped.</p>",
                        js_on_load=None)
                eval_btn = gr.Button("Run the eval suite", variant="primary", elem_id="eval-btn")
                eval_note = gr.HTML("", js_on_load=None)
                eval_table = gr.Markdown(elem_id="eval-table")
                eval_failures = gr.Dataframe(headers=["Question", "Kind", "Text", "Gold", "Retrieved (top 5)"],
                                             datatype="str", interactive=False, wrap=True, label="Failing questions",
                                             elem_id="eval-failures")

        # -- events -------------------------------------------------------------------------------
        filters = [authority, category, outcome, since, until]
        chat_outputs = [conversation, sources, chat_state, notice, question, examples]
        ask_args = dict(fn=app.chat_stream, inputs=[question, chat_state, *filters], outputs=chat_outputs,
                        api_visibility="private", show_progress="hidden")
        export_args = dict(fn=app.exports, inputs=chat_state, outputs=[md_btn, csv_btn], api_visibility="private",
                           show_progress="hidden")
        chart_args = dict(fn=app.chart_of, inputs=chat_state, outputs=answer_chart, api_visibility="private",
                          show_progress="hidden")
        question.submit(**ask_args).then(**export_args).then(**chart_args)
        ask_btn.click(**ask_args).then(**export_args).then(**chart_args)
        for b in example_buttons:
            b.click(functools.partial(lambda q: q, b.value), None, question, api_visibility="private",
                    show_progress="hidden").then(**ask_args).then(**export_args).then(**chart_args)
        new_btn.click(app.new_chat, None, chat_outputs, api_visibility="private").then(**export_args).then(**chart_args)

        x_inputs = [x_by, x_authority, x_category, x_outcome, x_since, x_until, x_remedy, x_fault]
        x_outputs = [x_summary, x_chart, x_table, x_csv, x_figures, x_decisions]
        x_btn.click(app.explore, x_inputs, x_outputs, api_visibility="private")
        x_by.change(app.explore, x_inputs, x_outputs, api_visibility="private", show_progress="hidden")

        def bar_chosen(figures: dict, evt: gr.SelectData) -> str:
            # The chart reports the groups under the selection (a list of their names).
            chosen = evt.value if isinstance(evt.value, (list, tuple)) else [evt.value]
            return app.group_decisions(figures, [c for c in chosen if c is not None])

        def row_chosen(figures: dict, evt: gr.SelectData) -> str:
            row = evt.row_value or []
            return app.group_decisions(figures, row[0] if row else "")

        x_chart.select(bar_chosen, x_figures, x_decisions, api_visibility="private")
        x_table.select(row_chosen, x_figures, x_decisions, api_visibility="private")
        s_btn.click(app.similar_view, s_text, s_out, api_visibility="private")
        s_text.submit(app.similar_view, s_text, s_out, api_visibility="private")
        c_btn.click(app.compare_view, c_text, c_out, api_visibility="private")
        c_text.submit(app.compare_view, c_text, c_out, api_visibility="private")
        clear_filters.click(lambda: (ANY, ANY, ANY, "", ""), None, filters, api_visibility="private")

        def filters_label(*values) -> dict:
            active = sum(1 for v in values if v and v != ANY and str(v).strip())
            return gr.update(label=f"Filters ({active} on)" if active else "Filters")

        for f in filters:
            f.change(filters_label, filters, filters_box, api_visibility="private", show_progress="hidden")

        cite_args = dict(fn=app.lookup_view, inputs=cite_text, outputs=[cite_out, cite_line], api_visibility="private")
        cite_text.submit(**cite_args)
        cite_btn.click(**cite_args)
        for b in lookup_buttons:
            b.click(functools.partial(lambda t: t, b.value), None, cite_text, api_visibility="private").then(**cite_args)

        dsearch.change(app.decision_rows, dsearch, table, api_visibility="private", show_progress="hidden")
        dsearch.submit(app.open_first, dsearch, decision, api_visibility="private")
        open_btn.click(app.open_first, dsearch, decision, api_visibility="private")

        def open_row(evt: gr.SelectData) -> str:
            row = evt.row_value or []
            return app.decision_view(row[1] if len(row) > 1 else "")

        table.select(open_row, None, decision, api_visibility="private")
        eval_btn.click(app.run_eval, None, [eval_table, eval_failures, eval_note], api_visibility="private")
        blocks.load(app.header_html, None, header, api_visibility="private", show_progress="hidden")
        blocks.load(app.explore, x_inputs, x_outputs, api_visibility="private", show_progress="hidden")
        # Links: ?q=... asks the question; ?ref=24-016-809&para=15 opens the decision at that paragraph.
        blocks.load(app.open_link, None, [question, link_question, tabs, decision], api_visibility="private",
                    show_progress="hidden").then(
            app.chat_from_link, [link_question, chat_state, *filters], chat_outputs, api_visibility="private",
            show_progress="hidden").then(**export_args)

        gr.api(app.ask_json, api_name="ask")
        gr.api(app.cite_json, api_name="cite")

    blocks.ombudsman = app  # the functions behind the page, for tests and tools
    blocks.page_js = PAGE_JS
    return blocks


def launch(blocks: gr.Blocks, host: str = "127.0.0.1", port: int = 7860, auth: tuple[str, str] | None = None,
           *, prevent_thread_lock: bool = False, quiet: bool = False):
    """Launch the app with its theme and CSS (Gradio 6 takes those at launch, not in Blocks)."""
    check_binding(host, auth)
    blocks.queue(default_concurrency_limit=4)
    return blocks.launch(
        server_name=host, server_port=port, auth=auth, share=False, prevent_thread_lock=prevent_thread_lock,
        quiet=quiet, theme=theme(), css=CSS_PATH.read_text(encoding="utf-8"), footer_links=["api"],
        js=getattr(blocks, "page_js", None),
        show_error=True, ssr_mode=False, inbrowser=False, mcp_server=False,
        auth_message="Sign in with the user name and password this app was started with." if auth else None,
    )


def serve(archive, host: str = "127.0.0.1", port: int = 7860, auth: tuple[str, str] | str | None = None,
          *, prevent_thread_lock: bool = False, quiet: bool = False) -> gr.Blocks:
    """Build the index from seeds/ if there is none, then serve the app (blocks unless told not to)."""
    auth = parse_auth(auth) if isinstance(auth, str) else auth
    check_binding(host, auth)  # before the slow part
    report = archive.ensure_index()
    if report is not None and not quiet:
        print(f"Built the index from seeds/: {report.summary()}", flush=True)
    blocks = build_app(archive)
    _, url, _ = launch(blocks, host, port, auth, prevent_thread_lock=True, quiet=True)
    if not quiet:
        print(f"Serving the app on {url} ({'sign-in required' if auth else 'no sign-in'}); Ctrl+C to stop.",
              flush=True)
    # The page is up before the model loads; a question asked sooner waits for it.
    threading.Thread(target=blocks.ombudsman.warm_up, name="warm-up", daemon=True).start()
    if not prevent_thread_lock:
        blocks.block_thread()
    return blocks
