"""Bad input: each failure names the file and the problem, the rest of the batch still goes in, and
``ombudsman ingest`` exits 1 listing every failure."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from index.config import SEEDS_DIR, StoreConfig
from index.ingest import ADDED, FAILED
from index.parse import DecisionError, decode_bytes, parse_file
from rag.archive import Archive
from ui.cli import main

DATA = Path(__file__).parent / "data"
CP1252 = DATA / "cp1252-decision.txt"

REASONS = {
    "empty.txt": "the file is empty",
    "blank.txt": "the file is empty",
    "binary.txt": "a binary file, not a decision text (it contains NUL bytes)",
    "notes.txt": "not a decision: no heading line naming the authority and reference, "
                 "such as 'Leicestershire County Council (24 016 809)'",
    "missing.txt": "no such file or folder",
}


@pytest.fixture
def batch(tmp_path) -> tuple[Path, list[Path]]:
    """A folder of good and bad files, and a path that does not exist."""
    folder = tmp_path / "batch"
    folder.mkdir()
    (folder / "empty.txt").write_bytes(b"")
    (folder / "blank.txt").write_bytes(b" \r\n\n\t\n")
    (folder / "binary.txt").write_bytes(b"PK\x03\x04\x00\x00\x08\x00" + bytes(range(256)) * 4)
    (folder / "notes.txt").write_text("Notes from a phone call\n\n  1. The caller was unhappy.\n", encoding="utf-8")
    shutil.copy(CP1252, folder / "cp1252-decision.txt")
    shutil.copy(SEEDS_DIR / "24-000-184.txt", folder / "24-000-184.txt")
    return folder, [folder, tmp_path / "missing.txt"]


def test_each_bad_file_is_an_error_naming_the_file_and_the_problem(batch):
    folder, _ = batch
    for name in ("empty.txt", "blank.txt", "binary.txt", "notes.txt"):
        with pytest.raises(DecisionError) as e:
            parse_file(folder / name)
        assert str(e.value) == f"{folder / name}: {REASONS[name]}"
    with pytest.raises(DecisionError, match=r"missing\.txt: no such file$"):
        parse_file(folder / "missing.txt")
    with pytest.raises(DecisionError, match="is a folder, not a file"):
        parse_file(folder)


def test_windows_1252_text_decodes_with_pound_signs_and_curly_quotes():
    data = CP1252.read_bytes()
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")
    d = parse_file(CP1252)
    assert d.reference == "22 333 444"
    assert d.authority == "Westshire Council"
    assert d.summary == (
        "Mr Z complained the Council charged him £250 in council tax for a flat he had left. We found fault. "
        "The Council has agreed to refund the £250 and apologise."
    )
    assert [p.number for p in d.paragraphs] == [1, 2, 3]
    assert d.paragraph(2).text == "Mr Z says the Council’s letters called him a “liable person” – he was not."
    assert d.paragraph(3).section == "Final decision"
    assert d.aliases == ("Mr Z",)


def test_bytes_that_are_neither_utf8_nor_windows_1252_are_refused():
    with pytest.raises(DecisionError, match=r"odd\.txt: not UTF-8 or Windows-1252 text \(byte 0x81 at offset 6\)"):
        decode_bytes(b"Hello \x81\x8d world", "odd.txt")
    assert decode_bytes("caf\u00e9 ’".encode("utf-8"), "u.txt") == "café ’"
    assert decode_bytes(b"\xef\xbb\xbfWith a BOM", "bom.txt") == "With a BOM"


def test_the_good_files_still_go_in(batch, embedder, tmp_path):
    folder, paths = batch
    archive = Archive(StoreConfig(index_dir=tmp_path / "index"), encoder=embedder.encoder)
    report = archive.ingest(paths)
    failed = {Path(r.source).name: r.reason for r in report.failed}
    assert failed == REASONS
    assert all(r.status == FAILED for r in report.failed)
    assert sorted((r.reference, r.status) for r in report.results if r.status != FAILED) == [
        ("22 333 444", ADDED), ("24 000 184", ADDED),
    ]
    assert archive.store.counts() == (2, 4 + 14)
    stored = archive.store.decision("22 333 444")
    assert stored == parse_file(CP1252)
    assert "£250" in stored.summary
    assert "“liable person”" in stored.paragraph(2).text


def test_ingest_command_exits_1_and_prints_each_failure(batch, embedder, tmp_path):
    folder, paths = batch
    index = tmp_path / "index"
    runner = CliRunner()
    result = runner.invoke(main, ["--index", str(index), "--encoder", embedder.encoder, "ingest",
                                  *(str(p) for p in paths)])
    assert result.exit_code == 1, result.output
    failures = sorted(line for line in result.stderr.splitlines() if line.startswith("failed: "))
    expected = sorted(
        f"failed: {(folder if name != 'missing.txt' else paths[1].parent) / name}: {reason}"
        for name, reason in REASONS.items()
    )
    assert failures == expected
    summary = result.stdout.strip().splitlines()[-1]
    assert summary.startswith("2 added, 0 replaced, 0 unchanged, 0 repaired, 0 removed, 5 failed in ")
    assert f"added: 22 333 444 {folder / 'cp1252-decision.txt'}" in result.stdout

    shown = runner.invoke(main, ["--index", str(index), "--encoder", embedder.encoder, "show", "22-333-444", "--json"])
    assert shown.exit_code == 0, shown.output
    decision = json.loads(shown.stdout)
    assert decision["summary"].startswith("Mr Z complained the Council charged him £250")
    assert decision["paragraphs"][1]["text"] == "Mr Z says the Council’s letters called him a “liable person” – he was not."

    # Nothing failed this time (only the good files): exit status 0.
    again = runner.invoke(main, ["--index", str(index), "--encoder", embedder.encoder, "ingest",
                                 str(folder / "cp1252-decision.txt"), str(folder / "24-000-184.txt")])
    assert again.exit_code == 0, again.output


def test_a_folder_without_decision_files_is_reported(embedder, tmp_path):
    empty = tmp_path / "nothing-here"
    empty.mkdir()
    (empty / "readme.md").write_text("not a decision")
    result = CliRunner().invoke(main, ["--index", str(tmp_path / "index"), "--encoder", embedder.encoder,
                                       "ingest", str(empty), "--json"])
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["failed"] == 1
    assert report["results"][0]["source"] == str(empty)
    assert report["results"][0]["reason"] == "the folder holds no .txt or .html files"
