"""The ``ombudsman`` command line: ingest, show, search, ask, cite, stats, similar, compare, eval, serve.

Only this module and the Gradio app print; everything below them logs. Options shared by every
command (``--index``, ``--chroma-url``, ``--encoder``) may come from environment variables.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import click

from index import config
from index.parse import DecisionError

log = logging.getLogger("ombudsman")


def _echo_json(obj) -> None:
    click.echo(json.dumps(obj, ensure_ascii=False, indent=2))


class Settings:
    """What the common options chose; the archive is opened on first use."""

    def __init__(self, index_dir: str | None, chroma_url: str | None, encoder: str) -> None:
        self.index_dir, self.chroma_url = index_dir, chroma_url
        self.store_config = config.StoreConfig.from_env(index_dir, chroma_url)
        self.encoder = encoder
        self._archive = None

    def override(self, name: str, value) -> None:
        """A common option given after the command (``ombudsman ingest seeds --index DIR``)."""
        if name == "verbose":
            _logging(True)
            return
        setattr(self, name, value)
        self.store_config = config.StoreConfig.from_env(self.index_dir, self.chroma_url)
        self._archive = None

    @property
    def archive(self):
        if self._archive is None:
            from rag.archive import Archive

            self._archive = Archive(self.store_config, self.encoder)
        return self._archive


pass_settings = click.make_pass_decorator(Settings)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--index", "index_dir", envvar="OMBUDSMAN_INDEX", type=click.Path(file_okay=False),
              help="Folder of the local index (env OMBUDSMAN_INDEX; default: data/index in the project).")
@click.option("--chroma-url", envvar="OMBUDSMAN_CHROMA_URL", default="",
              help="Use a Chroma server (e.g. http://127.0.0.1:8000) instead of the local index (env OMBUDSMAN_CHROMA_URL).")
@click.option("--encoder", envvar="OMBUDSMAN_ENCODER", default="auto", show_default=True,
              type=click.Choice(["auto", "torch", "onnx", "onnx-int8"]),
              help="Embedding backend (env OMBUDSMAN_ENCODER); the index records which one built it.")
@click.option("-v", "--verbose", is_flag=True, help="Log what happens (model loads, store, timings).")
@click.pass_context
def main(ctx: click.Context, index_dir: str | None, chroma_url: str, encoder: str, verbose: bool) -> None:
    """Ask questions of LGSCO decisions and get answers that cite the paragraphs they rest on.

    The options above may also follow the command: `ombudsman ingest seeds --index DIR`."""
    _logging(verbose)
    ctx.obj = Settings(index_dir, chroma_url, encoder)


def _logging(verbose: bool) -> None:
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", force=True,
                        level=logging.INFO if verbose else logging.WARNING)
    for noisy in ("bm25s", "httpx", "chromadb", "sentence_transformers", "transformers"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _late(name: str):
    def callback(ctx: click.Context, param: click.Parameter, value) -> None:
        if value not in (None, False, ()):
            ctx.find_object(Settings).override(name, value)
    return callback


def common_options(fn):
    """The group's options, accepted after the command too (they override those before it)."""
    for decorator in reversed([
        click.option("--index", "late_index", type=click.Path(file_okay=False), expose_value=False,
                     callback=_late("index_dir"), help="As before the command: the local index folder."),
        click.option("--chroma-url", "late_chroma_url", expose_value=False, callback=_late("chroma_url"),
                     help="As before the command: a Chroma server instead of the local index."),
        click.option("--encoder", "late_encoder", expose_value=False, callback=_late("encoder"),
                     type=click.Choice(["auto", "torch", "onnx", "onnx-int8"]), help="As before the command."),
        click.option("-v", "--verbose", "late_verbose", is_flag=True, expose_value=False,
                     callback=_late("verbose"), help="As before the command: log what happens."),
    ]):
        fn = decorator(fn)
    return fn


def _fail(message: str, code: int = 1) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def _guard(fn):
    """Turn the errors users can act on into one clear line and a non-zero exit."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from index.embedder import EmbedderError
        from index.store import StoreError

        try:
            return fn(*args, **kwargs)
        except (StoreError, EmbedderError, DecisionError) as e:
            _fail(str(e))
        except KeyError as e:
            _fail(str(e.args[0]) if e.args else "not found")
        except ValueError as e:
            _fail(str(e))

    return wrapper


@main.command()
@common_options
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--prune", is_flag=True, help="Also remove indexed decisions whose files are gone.")
@click.option("--rebuild", is_flag=True, help="Drop the index and build it again from these files.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@pass_settings
@_guard
def ingest(settings: Settings, paths: tuple[Path, ...], prune: bool, rebuild: bool, as_json: bool) -> None:
    """Index decision files (.txt exports or saved .html pages) or folders of them; default: seeds/.

    Unchanged decisions are skipped, changed ones replaced; bad files are reported and the rest
    still go in. Exits 1 when any file failed.
    """
    from tqdm import tqdm

    from index.ingest import FAILED

    targets = list(paths) or [config.SEEDS_DIR]
    archive = settings.archive
    bar = None

    def progress(done: int, total: int, paragraphs: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, unit="decision", disable=as_json or total < 2, file=sys.stderr,
                       dynamic_ncols=True)
        bar.n = done
        elapsed = bar.format_dict["elapsed"]
        rate = paragraphs / elapsed if elapsed > 0.5 else 0.0
        bar.set_postfix_str(f"{paragraphs} paragraphs embedded, {rate:.1f} paragraphs/s", refresh=False)
        bar.refresh()

    report = archive.ingest(targets, prune=prune, rebuild=rebuild, progress=progress)
    if bar is not None:
        bar.close()
    if as_json:
        _echo_json(report.to_json())
    else:
        for r in report.results:
            if r.status == FAILED:
                click.echo(f"failed: {r.source}: {r.reason}", err=True)
            elif r.status != "unchanged" or r.reason:
                extra = f" ({r.reason})" if r.reason else ""
                click.echo(f"{r.status}: {r.reference} {r.source}{extra}")
        click.echo(report.summary())
    if report.failed:
        sys.exit(1)


@main.command()
@common_options
@click.argument("reference")
@click.option("--json", "as_json", is_flag=True, help="Print the parsed decision as JSON.")
@pass_settings
@_guard
def show(settings: Settings, reference: str, as_json: bool) -> None:
    """Print an indexed decision with its official paragraph numbers (REFERENCE in any form)."""
    from index.facts import facts_of

    d = settings.archive.decision(reference)
    facts = facts_of(d)
    if as_json:
        _echo_json({**d.to_json(), **facts.to_json()})
        return
    click.echo(f"{d.authority} ({d.reference})")
    click.echo(f"Category: {d.category_path}\nDecision: {d.outcome}")
    click.echo(f"Decision date: {d.decision_date.isoformat() if d.decision_date else 'unknown'}\n{d.url}\n")
    click.echo(f"Summary: {d.summary}")
    click.echo("\n" + "\n".join(facts_lines(facts)))
    for heading, paragraphs in d.by_heading(" > "):
        click.echo(f"\n{heading}")
        for p in paragraphs:
            click.echo(f"  {p.number}. {p.text}")


def facts_lines(facts) -> list[str]:
    """The facts read from a decision, a line each, each naming the paragraph it comes from."""
    def where(p) -> str:
        return "Summary" if p == "summary" else f"para {p}"

    lines = [f"Fault: {facts.fault or 'no finding'}" + (f" ({where(facts.fault_paragraph)})" if facts.fault_paragraph else ""),
             f"Injustice: {facts.injustice or 'not stated'}"]
    for r in facts.remedies:
        amount = f" £{r.amount:,}" if r.amount is not None else ""
        lines.append(f"Remedy: {r.kind}{amount}" + (f" for {r.for_}" if r.for_ else "") + f" ({where(r.paragraph)})")
    for c in facts.closed_because:
        lines.append(f"Not investigated because: {c.reason.replace('_', ' ')} ({where(c.paragraph)})")
    return lines


def _filters(authority: str, category: str, outcome: str, since, until, ref: str = "", remedy: str = "",
             fault: str = ""):
    from rag.retriever import Filters

    return Filters(
        authority=authority or "", category=category or "", outcome=outcome or "",
        since=since.date() if since else None, until=until.date() if until else None, ref=ref or "",
        remedy=remedy or "", fault=fault or "",
    )


def filter_options(fn):
    """The filters shared by ``search`` and ``ask``."""
    for opt in reversed([
        click.option("--authority", default="", help="Only decisions of authorities whose name contains these whole words."),
        click.option("--category", default="", help="Only decisions whose category path contains this."),
        click.option("--outcome", default="", help="Only this outcome: Upheld, Not upheld, Closed after initial enquiries (or closed, not upheld, upheld)."),
        click.option("--since", type=click.DateTime(["%Y-%m-%d"]), help="Only decisions dated on or after (YYYY-MM-DD)."),
        click.option("--until", type=click.DateTime(["%Y-%m-%d"]), help="Only decisions dated on or before (YYYY-MM-DD)."),
        click.option("--ref", default="", help="Only this decision (reference in any form)."),
        click.option("--remedy", default="", type=click.Choice(["", "apology", "payment", "reconsider", "service", "other"]),
                     help="Only decisions recording this kind of remedy."),
        click.option("--fault", default="", type=click.Choice(["", "found", "not found", "partly"]),
                     help="Only decisions with this finding on fault."),
    ]):
        fn = opt(fn)
    return fn


def _questions(question: str | None, queries: Path | None) -> tuple[str | None, list[dict]]:
    """The one QUESTION (checked) or the items of --queries, before any model is loaded."""
    from rag.question import check_question

    if queries:
        return question, read_queries(queries)
    if question is None:
        _fail("give a QUESTION or --queries FILE")
    return check_question(question), []


def read_queries(path: Path) -> list[dict]:
    """JSONL questions ({"id", "question"}); a bad line is an error naming the file and line."""
    out = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise ValueError(f"{path}: cannot be read ({e.strerror})") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not UTF-8 text") from None
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            question = item["question"]
            if not isinstance(question, str) or not question.strip():
                raise ValueError("empty question")
        except (ValueError, KeyError, TypeError) as e:
            raise ValueError(f"{path}, line {n}: expected {{\"id\": ..., \"question\": \"...\"}} ({e})") from None
        out.append({"id": item.get("id", n), "question": question})
    return out


@main.command()
@common_options
@click.argument("question", required=False)
@click.option("--k", default=10, show_default=True, type=click.IntRange(1, 100), help="How many paragraphs.")
@click.option("--mode", default="hybrid", show_default=True, type=click.Choice(["hybrid", "dense", "bm25"]),
              help="Retriever: hybrid (dense + BM25 fused), dense only, or BM25 only.")
@click.option("--queries", type=click.Path(path_type=Path, dir_okay=False),
              help="A JSONL file of {\"id\", \"question\"}; prints one JSON line of hits per question.")
@click.option("--json", "as_json", is_flag=True, help="Print hits as JSON.")
@click.option("--csv", "as_csv", is_flag=True,
              help="Print hits as CSV (a row per paragraph: question, rank, citation fields, the line to paste, text).")
@filter_options
@pass_settings
@_guard
def search(settings: Settings, question: str | None, k: int, mode: str, queries: Path | None, as_json: bool,
           as_csv: bool, authority: str, category: str, outcome: str, since, until, ref: str, remedy: str, fault: str) -> None:
    """Find the paragraphs that best match QUESTION (or every question in --queries)."""
    from rag.question import check_question

    filters = _filters(authority, category, outcome, since, until, ref, remedy, fault)
    question, items = _questions(question, queries)
    retriever = settings.archive.retriever
    if as_csv:
        from ui.export import hits_csv

        asked = items if queries else [{"id": 1, "question": question}]
        for i, item in enumerate(asked):
            hits = retriever.search(check_question(item["question"]), k=k, filters=filters, mode=mode)
            rows = hits_csv(hits, item["question"])
            click.echo(rows if i == 0 else rows.split("\n", 1)[1], nl=False)
        return
    if queries:
        for item in items:
            try:
                hits = retriever.search(check_question(item["question"]), k=k, filters=filters, mode=mode)
                click.echo(json.dumps({"id": item["id"], "hits": [h.to_json() for h in hits]}, ensure_ascii=False))
            except ValueError as e:
                click.echo(json.dumps({"id": item["id"], "error": str(e), "hits": []}, ensure_ascii=False))
        return
    hits = retriever.search(question, k=k, filters=filters, mode=mode)
    if as_json:
        _echo_json([h.to_json() for h in hits])
        return
    if not hits:
        click.echo("No indexed paragraph matches.")
    for i, h in enumerate(hits, start=1):
        click.echo(f"[{i}] {h.authority} ({h.ref}), {h.label} — {h.section}  score {h.score:.3f}")
        click.echo(f"    {h.outcome}, {h.decision_date}  {h.url}")
        click.echo("    " + h.text.replace("\n", "\n    ") + "\n")


def _stat_filters(authority, category, outcome, since, until, remedy, fault):
    return _filters(authority, category, outcome, since, until, "", remedy, fault)


@main.command()
@common_options
@click.option("--by", "by", default="outcome", show_default=True,
              type=click.Choice(["authority", "category", "outcome", "year", "remedy", "closed_because", "fault"]),
              help="What to group the decisions by.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON, every group with its references.")
@click.option("--csv", "as_csv", is_flag=True, help="Print the groups as CSV.")
@filter_options
@pass_settings
@_guard
def stats(settings: Settings, by: str, as_json: bool, as_csv: bool, authority: str, category: str, outcome: str,
          since, until, ref: str, remedy: str, fault: str) -> None:
    """Count decisions, upheld shares and payments, grouped BY a field; every figure with the
    references it counts (filters as for search)."""
    from rag.query import Query
    from rag.stats import pounds, stats as count, to_csv

    retriever = settings.archive.retriever
    filters = _filters(authority, category, outcome, since, until, ref, remedy, fault)
    refs = retriever.allowed_refs(Query(text=""), filters)
    result = count(retriever.catalogue.decisions, by, refs)
    if as_json:
        _echo_json(result)
        return
    if as_csv:
        click.echo(to_csv(result), nl=False)
        return
    p = result["payments"]
    click.echo(f"{result['total']} decisions, {result['upheld']} upheld; {p['count']} payments with a sum stated"
               + (f" (median {pounds(p['median'])}, {pounds(p['min'])} to {pounds(p['max'])})" if p["count"] else ""))
    for g in result["groups"]:
        gp = g["payments"]
        paid = f"; payments {gp['count']}, median {pounds(gp['median'])}" if gp["count"] else ""
        refs_shown = ", ".join(g["refs"][:6]) + (" …" if len(g["refs"]) > 6 else "")
        click.echo(f"  {g['key']}: {g['count']} (upheld {g['upheld']}, {g['upheld_share']:.0%}){paid}  [{refs_shown}]")


@main.command()
@common_options
@click.argument("text", required=False)
@click.option("--ref", "reference", default="", help="Find decisions like this indexed one instead of a description.")
@click.option("--k", default=5, show_default=True, type=click.IntRange(1, 50), help="How many decisions.")
@click.option("--json", "as_json", is_flag=True, help="Print the decisions and the split of outcomes as JSON.")
@pass_settings
@_guard
def similar(settings: Settings, text: str | None, reference: str, k: int, as_json: bool) -> None:
    """The decisions most like a complaint described in everyday words (TEXT), or like --ref REF:
    each with its outcome, remedies and the paragraph that matched, and the split of outcomes."""
    from index.decision import normalise_reference
    from rag.question import check_question
    from rag.similar import description_of, remedies_text, similar as find
    from rag.stats import pounds

    retriever = settings.archive.retriever
    exclude = ""
    if reference:
        exclude = normalise_reference(reference)
        if exclude not in retriever.catalogue.decisions:
            raise KeyError(f"decision {exclude} is not indexed")
        text = description_of(retriever, exclude)
    if not text:
        raise ValueError("describe the complaint (TEXT) or give --ref REF")
    result = find(retriever, text if reference else check_question(text), k, exclude=exclude)
    if as_json:
        _echo_json(result.to_json())
        return
    split = ", ".join(f"{o}: {n}" for o, n in result.outcomes.items())
    p = result.payments
    click.echo(f"{len(result.decisions)} similar decisions ({split})"
               + (f"; payments: {p['count']}, median {pounds(p['median'])}" if p["count"] else ""))
    for i, d in enumerate(result.decisions, 1):
        where = "Summary" if d["paragraph"] == "summary" else f"para {d['paragraph']}"
        click.echo(f"[{i}] {d['authority']} ({d['ref']}), {d['decision_date']}, {d['outcome'] or 'outcome unknown'}"
                   f"  score {d['score']:.3f}")
        click.echo(f"    remedies: {remedies_text(d['remedies'])}")
        click.echo(f"    {where}: {d['text'][:300]}" + ("…" if len(d["text"]) > 300 else ""))


@main.command()
@common_options
@click.argument("references", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON.")
@pass_settings
@_guard
def compare(settings: Settings, references: tuple[str, ...], as_json: bool) -> None:
    """Two to five decisions side by side: authority, date, category, outcome, fault, remedies,
    reasons not investigated, Summary."""
    from rag.similar import compare as side_by_side, remedies_text

    rows = side_by_side(settings.archive, list(references))
    if as_json:
        _echo_json(rows)
        return
    for r in rows:
        reasons = ", ".join(c["reason"].replace("_", " ") for c in r["closed_because"]) or "-"
        click.echo(f"{r['ref']}  {r['authority']}, {r['decision_date']}, {r['category']}")
        click.echo(f"    outcome: {r['outcome'] or 'unknown'}; fault: {r['fault'] or 'no finding'}; "
                   f"not investigated because: {reasons}")
        click.echo(f"    remedies: {remedies_text(r['remedies'])}")
        click.echo(f"    summary: {r['summary']}\n")


@main.command("eval")
@common_options
@click.option("--set", "question_sets", multiple=True, type=click.Path(path_type=Path, dir_okay=False),
              help="Question set (JSONL, repeatable); default: the tuning and the unseen questions, side by side.")
@click.option("--retriever", "retrievers", multiple=True, type=click.Choice(["bm25", "dense", "hybrid"]),
              help="Run only this retriever (repeatable); default: all, side by side.")
@click.option("--no-answers", is_flag=True, help="Skip the answer-level checks (retrieval metrics only).")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@pass_settings
@_guard
def eval_command(settings: Settings, question_sets: tuple[Path, ...], retrievers: tuple[str, ...], no_answers: bool,
                 as_json: bool) -> None:
    """Run the retrieval eval suite: Recall@1/3/5/10, Success@1, MRR@10, nDCG@10, Hit@1 per retriever,
    split (tuning, unseen) and kind, the failing tuning questions, and the answer-level checks."""
    from eval.run import RETRIEVERS, SETS, evaluate_archive, format_table, load_sets

    questions = load_sets(question_sets or SETS)
    report = evaluate_archive(settings.archive, questions, retrievers or RETRIEVERS, answers=not no_answers)
    if as_json:
        _echo_json(report.to_json())
    else:
        click.echo(format_table(report))


def _print_answer(answer) -> None:
    """The answer, then each cited paragraph whole (or the closest passages when not found)."""
    from rag.citation import format_date

    click.echo(answer.text)
    if answer.note:
        click.echo(f"\nNote: {answer.note}" + (f" [{answer.mode}]" if answer.mode != "extractive" else ""))
    shown = [(f"[{c.n}]", c.hit, c.citation) for c in answer.citations]
    if not answer.found and answer.closest:
        click.echo("\nClosest passages (not an answer):")
        shown = [("-", h, "") for h in answer.closest]
    for mark, h, line in shown:
        click.echo(f"\n{mark} {h.authority} ({h.ref}), {h.label} — {h.section}" + (f" > {h.subsection}" if h.subsection else ""))
        click.echo(f"    {h.outcome or 'outcome unknown'}, {format_date(h.decision_date) or 'date unknown'}  {h.url}")
        click.echo("    " + h.text.replace("\n", "\n    "))
        if line:
            click.echo(f"    Cite as: {line}")


@main.command()
@common_options
@click.argument("question", required=False)
@click.option("--queries", type=click.Path(path_type=Path, dir_okay=False),
              help="A JSONL file of {\"id\", \"question\"}; prints one JSON answer per line.")
@click.option("--json", "as_json", is_flag=True, help="Print the answer as JSON (ARCHITECTURE.md's ask shape).")
@filter_options
@pass_settings
@_guard
def ask(settings: Settings, question: str | None, queries: Path | None, as_json: bool,
        authority: str, category: str, outcome: str, since, until, ref: str, remedy: str, fault: str) -> None:
    """Answer QUESTION from the indexed decisions, citing the paragraphs it quotes.

    Extractive and offline by default; with OMBUDSMAN_LLM_URL and OMBUDSMAN_LLM_MODEL set, a
    language model writes the answer (checked, with the extractive answer as fallback). Exits 1
    when the question names a reference or paragraph that does not exist.
    """
    from rag.answer import Answerer

    filters = _filters(authority, category, outcome, since, until, ref, remedy, fault)
    question, items = _questions(question, queries)
    answerer = Answerer(settings.archive)
    if queries:
        for item in items:
            try:
                body = answerer.answer(item["question"], filters=filters).to_json()
            except ValueError as e:
                body = {"question": item["question"], "error": str(e), "answer": "", "found": False, "citations": []}
            click.echo(json.dumps({"id": item["id"], **body}, ensure_ascii=False))
        return
    answer = answerer.answer(question, filters=filters)
    if as_json:
        _echo_json(answer.to_json())
    else:
        _print_answer(answer)
    if answer.missing:
        click.echo(f"error: {answer.missing}", err=True)
        sys.exit(1)


@main.command()
@common_options
@click.argument("text", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@pass_settings
@_guard
def cite(settings: Settings, text: tuple[str, ...], as_json: bool) -> None:
    """Look up a citation: a decision ("24 016 809"), a paragraph ("24-016-809 para 15", "¶15",
    "p15", "summary") or a provision ("section 26(6)(c)", "Local Government Act 1974 s34(3)").

    Prints the decision's outline, the paragraph with a ready-to-paste citation line, or the
    decisions and paragraphs citing the provision. Exits 1, naming the nearest valid choices, when
    the reference, paragraph or provision is not found.
    """
    from rag.citation import lookup

    result = lookup(settings.archive, " ".join(text))
    if as_json:
        _echo_json(result.to_json())
    elif result.ok:
        click.echo(result.to_text())
    if not result.ok:
        click.echo(f"error: {result.message}", err=True)
        sys.exit(1)


@main.command()
@common_options
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Anything but a loopback address (e.g. 0.0.0.0) requires --auth.")
@click.option("--port", default=7860, show_default=True, type=click.IntRange(1, 65535), help="Port to listen on.")
@click.option("--auth", envvar="OMBUDSMAN_AUTH", default="", metavar="USER:PASSWORD",
              help="Ask for this user name and password before showing the app (env OMBUDSMAN_AUTH).")
@pass_settings
@_guard
def serve(settings: Settings, host: str, port: int, auth: str) -> None:
    """Serve the chat app in the browser (http://127.0.0.1:7860 by default).

    Builds the index from seeds/ first when there is none. Binds to 127.0.0.1 unless told
    otherwise; another --host without --auth (or OMBUDSMAN_AUTH) refuses to start.
    """
    from ui.app import check_binding, parse_auth
    from ui.app import serve as serve_app

    credentials = parse_auth(auth)
    check_binding(host, credentials)
    archive = settings.archive
    if not archive.store.has_decisions():
        click.echo(f"No index at {archive.store_config.description} yet: building it from {config.SEEDS_DIR} "
                   "(first run only)...", err=True)
    try:
        serve_app(archive, host, port, credentials)
    except OSError as e:
        _fail(f"cannot listen on {host}:{port} ({e}); is another app using the port? Choose one with --port")


if __name__ == "__main__":  # pragma: no cover
    main()
