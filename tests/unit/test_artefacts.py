"""Byte artefacts <-> text corpus: ``import-crash`` turns crash files into minimized,
deduplicated findings and names the ones that no longer reproduce; ``export-seeds``
writes the corpus as libFuzzer inputs named by content hash."""

from __future__ import annotations

import hashlib
import os
import runpy
import sys
from pathlib import Path

import pytest
from iomemfuzz.fuzz import artefacts, textinput
from iomemfuzz.fuzz.cli import main
from iomemfuzz.fuzz.corpus import finding_path
from iomemfuzz.fuzz.program_file import read_program
from iomemfuzz.fuzz.program_parse import parse_program
from iomemfuzz.fuzz.replay import check_program

ROOT = Path(__file__).resolve().parents[2]
# B16 is a finding where callers may break their contract: the misuse profile.
PROFILE = "v6.1-deb-misuse"
RELEASE = "busy-consistency/release-without-claim/__release_region/wrong-size"
B16 = parse_program("r0 = __request_region(start=0xfe000000, n=0x100)\n"
                    "__release_region(start=0xfe000000, n=0x80)\n")
CLEAN = parse_program("r0 = __request_region(start=0xfe000000, n=0x100)\n"
                      "__release_region(start=0xfe000000, n=0x100)\n")


def _crash(folder: Path, program=B16, name: str | None = None) -> Path:
    data = textinput.write_program(program)
    path = folder / (name or f"crash-{hashlib.sha1(data).hexdigest()}")
    path.write_bytes(data)
    return path


def _replays(path: Path) -> bool:
    text = path.read_text()
    return check_program(parse_program(text, str(path)), str(path), text).ok


def test_import_crash_writes_a_minimized_finding_that_replays(tmp_path, capsys):
    crash = _crash(tmp_path)
    corpus = tmp_path / "corpus"
    assert main(["import-crash", "--corpus", str(corpus), "--profile", PROFILE,
                 str(crash)]) == 0
    out = capsys.readouterr().out
    stored = finding_path(corpus, PROFILE, RELEASE)
    assert f"new finding {RELEASE} -> {stored}" in out
    assert f"iomemfuzz replay --profile {PROFILE} {stored}" in out
    program = read_program(str(stored))
    assert program.profile == PROFILE
    assert f"finding {RELEASE}" in program.expectations()[None]
    assert len(program.lines) <= len(B16.lines)
    assert crash.name in "\n".join(program.notes)
    assert _replays(stored)


def test_import_crash_deduplicates_by_signature(tmp_path, capsys):
    corpus = tmp_path / "corpus"
    first = artefacts.import_crash(_crash(tmp_path), corpus, PROFILE)
    assert first.status == "imported" and RELEASE in first.new
    before = {p: p.read_text() for p in corpus.rglob("*.prog")}
    # Another crash file with the same bug (other addresses): nothing new is written.
    other = parse_program("r0 = __request_region(start=0xfd000000, n=0x2000)\n"
                          "__release_region(start=0xfd000000, n=0x1000)\n")
    again = artefacts.import_crash(_crash(tmp_path, other), corpus, PROFILE)
    assert again.status == "known" and not again.new
    assert again.findings[RELEASE] == finding_path(corpus, PROFILE, RELEASE)
    assert {p: p.read_text() for p in corpus.rglob("*.prog")} == before
    assert "is already in the corpus" in artefacts.describe(again)


def test_stale_crash_files_are_reported_by_name_with_exit_1(tmp_path, capsys):
    good = _crash(tmp_path)
    stale = _crash(tmp_path, CLEAN, name="crash-from-an-older-decoder")
    corpus = tmp_path / "corpus"
    assert main(["import-crash", "--corpus", str(corpus), "--profile", PROFILE, str(good),
                 str(stale)]) == 1
    captured = capsys.readouterr()
    assert f"{stale}: does not reproduce on {PROFILE}" in captured.err
    assert "not imported" in captured.err
    # The good file is imported all the same.
    assert finding_path(corpus, PROFILE, RELEASE).exists()


def test_a_directory_argument_imports_the_libfuzzer_artefacts_in_it(tmp_path):
    _crash(tmp_path)
    (tmp_path / "README").write_text("not a crash\n")
    results = artefacts.import_crashes([tmp_path], tmp_path / "corpus")
    assert [r.path.name.split("-")[0] for r in results] == ["crash"]


def test_no_crash_files_is_a_usage_error(tmp_path):
    assert main(["import-crash", "--corpus", str(tmp_path / "c"), str(tmp_path)]) == 2


def test_a_model_exception_is_reported_as_an_iomemfuzz_bug(tmp_path, monkeypatch):
    def boom(program, profile):
        raise AssertionError("the model broke")

    monkeypatch.setattr(artefacts, "run", boom)
    result = artefacts.import_crash(_crash(tmp_path), tmp_path / "corpus")
    assert result.status == "error" and not result.ok
    assert "AssertionError: the model broke" in result.message
    assert "__release_region" in result.message  # the Program, to replay it


def _corpus(tmp_path: Path) -> Path:
    corpus = tmp_path / "corpus"
    (corpus / "seeds").mkdir(parents=True)
    (corpus / "findings" / "v6.1-deb").mkdir(parents=True)
    (corpus / "findings" / "v5.7").mkdir(parents=True)
    (corpus / "seeds" / "clean.prog").write_text(
        "# profile: v6.1-deb\n# expect@v5.7: finding kernel-sanity/hang\n\n"
        "r0 = __request_region(start=0xfe000000, n=0x100)  # ok\n"
        "__release_region(start=0xfe000000, n=0x100)  # ok\n")
    (corpus / "seeds" / "long-name.prog").write_text(
        'r0 = __request_region(start=0xfe000000, n=0x100, name="a name far too long")\n')
    (corpus / "seeds" / "machine.prog").write_text(
        "# machine: empty\n\nr0 = __request_region(start=0x1000, n=0x100)\n")
    (corpus / "findings" / "v6.1-deb" / "b16.prog").write_text(
        f"# profile: v6.1-deb\n# expect: finding {RELEASE}\n\n"
        "r0 = __request_region(start=0xfe000000, n=0x100)  # ok\n"
        "__release_region(start=0xfe000000, n=0x80)  # ok\n")
    (corpus / "findings" / "v5.7" / "other.prog").write_text(
        "# profile: v5.7\n# expect: finding busy-consistency/claim-lost\n\n"
        "r0 = __request_region(start=0x2000, n=0x100)  # ok\n")
    return corpus


def test_export_seeds_writes_one_decodable_file_per_program_named_by_hash(tmp_path, capsys):
    corpus = _corpus(tmp_path)
    out = tmp_path / "seeds"
    known = tmp_path / "known"
    argv = ["export-seeds", str(out), "--corpus", str(corpus), "--profile", "v6.1-deb",
            "--known", str(known)]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "4 seed input(s)" in captured.out and "0 skipped" in captured.out
    files = sorted(out.iterdir())
    assert len(files) == 4  # every Program is a seed: long names and machines too
    programs = ("seeds/clean.prog", "seeds/long-name.prog", "seeds/machine.prog",
                "findings/v6.1-deb/b16.prog")
    expected = {(read_program(str(corpus / p)).ops, read_program(str(corpus / p)).header(
        "machine")) for p in programs}
    assert {(textinput.read(f.read_bytes()).ops, textinput.read(f.read_bytes()).machine)
            for f in files} == expected
    for f in files:
        assert f.name == hashlib.sha1(f.read_bytes()).hexdigest()
    assert known.read_text() == f"{RELEASE}\n"
    # Exporting again adds nothing.
    assert not artefacts.export_seeds(out, corpus, "v6.1-deb").written


def test_export_seeds_without_a_profile_takes_every_profiles_findings(tmp_path):
    report = artefacts.export_seeds(tmp_path / "seeds", _corpus(tmp_path))
    assert report.files == 5


def test_known_signatures_are_the_corpus_expectations_about_the_profile(tmp_path):
    corpus = _corpus(tmp_path)
    assert artefacts.known_signatures(corpus, "v6.1-deb") == {RELEASE}
    assert artefacts.known_signatures(corpus, "v5.7") == {"busy-consistency/claim-lost",
                                                         "kernel-sanity/hang"}


def test_the_bundle_runtime_hook_points_the_harness_at_the_packed_list(tmp_path,
                                                                       monkeypatch):
    hook = ROOT / ".clusterfuzzlite" / "pyi_rth_iomemfuzz.py"
    (tmp_path / "known-signatures").write_text(f"{RELEASE}\n")
    monkeypatch.delenv("IOMEMFUZZ_KNOWN", raising=False)
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path), raising=False)
    runpy.run_path(str(hook))
    assert os.environ["IOMEMFUZZ_KNOWN"] == str(tmp_path / "known-signatures")
    # An explicit setting wins.
    monkeypatch.setenv("IOMEMFUZZ_KNOWN", "/elsewhere")
    runpy.run_path(str(hook))
    assert os.environ["IOMEMFUZZ_KNOWN"] == "/elsewhere"


@pytest.mark.parametrize("profile", ["v6.1-deb", "v5.7"])
def test_import_uses_the_profile_asked_for(tmp_path, profile):
    result = artefacts.import_crash(_crash(tmp_path), tmp_path / "corpus", profile)
    assert result.profile == profile
    for path in result.findings.values():
        assert path.parent.name == profile
