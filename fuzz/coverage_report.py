"""``iomemfuzz coverage``: which lines and branches of model/ a corpus reaches.

The replay runs in a fresh interpreter that starts coverage.py *before* importing the
model, so module-level lines (definitions, tables) count as covered; measuring in the
calling process would report them missed because they ran at import time. Text Programs
(``*.prog``) are replayed like ``iomemfuzz replay`` does (their own profile and every
``expect@`` profile); libFuzzer byte corpora given with ``--bytes`` are decoded and run on
``--profile``. Nothing in this module imports the model at module level, for the same
reason.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

SOURCE_PKG = "iomemfuzz.model"


@dataclass
class Totals:
    programs: int
    lines: int
    lines_covered: int
    branches: int
    branches_covered: int

    @property
    def line_percent(self) -> float:
        return 100.0 * self.lines_covered / self.lines if self.lines else 100.0

    @property
    def branch_percent(self) -> float:
        return 100.0 * self.branches_covered / self.branches if self.branches else 100.0


def coverage_report(paths: Sequence[str | Path] = ("corpus",), *,
                    byte_dirs: Sequence[str | Path] = (), profile: str | None = None,
                    html: str | Path | None = None, out: TextIO | None = None) -> Totals:
    """Replay ``paths`` (and ``byte_dirs``) under coverage.py; print the per-file report of
    model/ and the line/branch totals; write an HTML report to ``html`` if given."""
    import coverage

    out = out or sys.stdout
    with tempfile.TemporaryDirectory(prefix="iomemfuzz-cov-") as tmp:
        data_file = Path(tmp) / ".coverage"
        cmd = [sys.executable, "-m", __name__, "--worker", str(data_file)]
        if profile:
            cmd += ["--profile", profile]
        for d in byte_dirs:
            cmd += ["--bytes", str(d)]
        cmd += [str(p) for p in paths]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"coverage replay failed:\n{done.stderr}")
        programs = int(done.stdout.strip().splitlines()[-1])
        cov = coverage.Coverage(data_file=str(data_file), branch=True)
        cov.load()
        cov.report(file=out, skip_empty=True)
        summary = Path(tmp) / "coverage.json"
        cov.json_report(outfile=str(summary))
        totals = json.loads(summary.read_text())["totals"]
        if html:
            cov.html_report(directory=str(html))
    t = Totals(programs, totals["num_statements"], totals["covered_lines"],
               totals["num_branches"], totals["covered_branches"])
    out.write(f"\n{t.programs} programs replayed; model/ lines {t.lines_covered}/{t.lines} "
              f"({t.line_percent:.1f}%), branches {t.branches_covered}/{t.branches} "
              f"({t.branch_percent:.1f}%)\n")
    if html:
        out.write(f"HTML report: {Path(html) / 'index.html'}\n")
    return t


def _worker(argv: Sequence[str]) -> int:
    """In the fresh interpreter: start coverage, then import the model and replay."""
    import coverage

    parser = argparse.ArgumentParser()
    parser.add_argument("--worker", required=True)
    parser.add_argument("--profile")
    parser.add_argument("--bytes", action="append", default=[])
    parser.add_argument("paths", nargs="*")
    args = parser.parse_args(argv)
    cov = coverage.Coverage(data_file=args.worker, branch=True, source_pkgs=[SOURCE_PKG])
    cov.start()
    from iomemfuzz.fuzz.corpus import program_files
    from iomemfuzz.fuzz.decode import decode
    from iomemfuzz.fuzz.executor import run
    from iomemfuzz.fuzz.program import decode_program, parse_program, read_program_bytes
    from iomemfuzz.fuzz.replay import check_program

    count = 0
    # The command read every file before starting this worker: no error is expected here.
    for path in program_files(args.paths):
        text = decode_program(read_program_bytes(str(path)), str(path))
        check_program(parse_program(text, str(path)), str(path), text, args.profile)
        count += 1
    for folder in args.bytes:
        for path in sorted(Path(folder).iterdir()):
            if path.is_file() and not path.name.startswith("."):
                run(decode(path.read_bytes()), args.profile)
                count += 1
    cov.stop()
    cov.save()
    print(count)
    return 0


if __name__ == "__main__":
    sys.exit(_worker(sys.argv[1:]))
