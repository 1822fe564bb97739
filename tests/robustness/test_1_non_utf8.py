"""Issue 16, point 1: a file that is not UTF-8 is an input error naming the file, the line
and column and the byte offset, for every command that reads Programs; it never stops
``replay`` of a directory or ``export-seeds --known``."""

from __future__ import annotations

import pytest
from iomemfuzz.fuzz.cli import main
from robust_rig import B16, one_line

DATA = b"# profile: v6.1-deb\n\n" + B16.encode() + b"# caf\xe9\n"
OFFSET = DATA.index(b"\xe9")


@pytest.mark.parametrize("command", ["replay", "show", "minimize", "coverage"])
def test_non_utf8_file_is_an_input_error_with_position(tmp_path, capsys, command):
    bad = tmp_path / "latin1.prog"
    bad.write_bytes(DATA)
    assert main([command, str(bad)]) == 2
    err = capsys.readouterr().err
    line = one_line(err) if command != "replay" else err.strip().splitlines()[0]
    assert line.startswith(f"{bad}:5:6: "), line
    assert f"byte offset {OFFSET}" in line and "UTF-8" in line


def test_one_latin1_file_does_not_stop_a_directory_or_the_seed_export(tmp_path, capsys):
    corpus = tmp_path / "corpus"
    seeds = corpus / "seeds"
    seeds.mkdir(parents=True)
    (seeds / "a-latin1.prog").write_bytes(DATA)
    (seeds / "b-good.prog").write_text(B16.replace("n=0x80", "n=0x100"))
    assert main(["replay", str(corpus)]) == 2
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    assert "1 passed, 1 failed" in captured.out
    out = tmp_path / "out"
    out.mkdir()
    code = main(["export-seeds", str(out), "--corpus", str(corpus), "--known",
                 str(tmp_path / "known")])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert f"skipped {seeds / 'a-latin1.prog'}: {seeds / 'a-latin1.prog'}:5:6:" in captured.err
    assert (tmp_path / "known").is_file()
