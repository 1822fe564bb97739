"""Issue 16, point 2: numbers of any size are syntax errors with a position when out of
range (Python's 4,300-digit conversion limit never shows), and a fuzz job starts with such
a file in its corpus."""

from __future__ import annotations

import io

import pytest
from iomemfuzz.fuzz.cli import main
from iomemfuzz.fuzz.job import JobConfig, run_job
from robust_rig import one_line

HUGE = "9" * 4301


@pytest.mark.parametrize("text, column", [
    (f"r0 = __request_region(start={HUGE})\n", 29),
    (f"r0 = __request_region(start=0x{'f' * 5000})\n", 29),
    (f"r0 = __request_region(start=0x1000, n={HUGE})\n", 39),
    (f"r0 = __request_region(start=0x1000, flags={HUGE})\n", 43),
])
def test_huge_numbers_are_syntax_errors(tmp_path, capsys, text, column):
    bad = tmp_path / "huge.prog"
    bad.write_text(text)
    assert main(["show", str(bad)]) == 2
    line = one_line(capsys.readouterr().err)
    assert line.startswith(f"{bad}:1:{column}: "), line
    assert "limit" not in line and len(line) < 300


def test_a_fuzz_job_starts_with_a_huge_number_in_its_corpus(tmp_path):
    folder = tmp_path / "corpus" / "findings" / "v6.1-deb"
    folder.mkdir(parents=True)
    (folder / "huge.prog").write_text(f"# expect: finding x/y\n\nr0 = __request_region("
                                      f"start={HUGE})\n")
    out = io.StringIO()
    summary = run_job(JobConfig(engine="atheris", max_time=0, corpus=tmp_path / "corpus",
                                workdir=tmp_path / "work"), out)
    assert "summary" in out.getvalue()
    assert summary.exit_code == 0
