"""``iomemfuzz coverage``: which lines and branches of model/ a corpus reaches.

The replay runs in a fresh interpreter that starts coverage.py *before* importing the
model, so module-level lines (definitions, tables) count as covered; measuring in the
calling process would report them missed because they ran at import time. Text Programs
(``*.prog``) are replayed like ``iomemfuzz replay`` does (their own profile and every
``expect@`` profile); libFuzzer corpora given with ``--bytes`` (fuzz inputs, read as the
target reads them) are run on ``--profile``. Nothing in this module imports the model at
module level, for the same reason.

Each file is replayed in its own coverage.py *dynamic context* named by its path, so the
HTML report (``--html``) shows, for every line, which corpus files cover it. The kernel
templates every run starts from (fuzz/snapshot.py) are built first, under the context
``kernel templates``: boot lines show that context, not the first file that needed them.
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
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from iomemfuzz.fuzz.program import Program

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
            cov.html_report(directory=str(html), show_contexts=True)
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
    from iomemfuzz.fuzz import textinput
    from iomemfuzz.fuzz.corpus import program_files
    from iomemfuzz.fuzz.executor import run
    from iomemfuzz.fuzz.program_file import decode_program, read_program_bytes
    from iomemfuzz.fuzz.program_parse import parse_program
    from iomemfuzz.fuzz.replay import check_program

    # The command read every file before starting this worker: no error is expected here.
    programs = []
    for path in program_files(args.paths):
        text = decode_program(read_program_bytes(str(path)), str(path))
        programs.append((path, text, parse_program(text, str(path))))
    inputs = [(path, textinput.read_program(path.read_bytes()))
              for folder in args.bytes for path in sorted(Path(folder).iterdir())
              if path.is_file() and not path.name.startswith(".")]
    cov.switch_context("kernel templates")
    _build_templates([p for _, _, p in programs] + [p for _, p in inputs], args.profile)
    count = 0
    for path, text, program in programs:
        cov.switch_context(str(path))
        check_program(program, str(path), text, args.profile)
        count += 1
    for path, program in inputs:
        cov.switch_context(str(path))
        run(program, args.profile)
        count += 1
    cov.stop()
    cov.save()
    print(count)
    return 0


def _build_templates(programs: Sequence[Program], profile: str | None) -> None:
    """Build every kernel template the replay will copy: each (profile, machine) a
    Program runs on, booted and not."""
    from iomemfuzz.fuzz.snapshot import fresh_kernel
    from iomemfuzz.model.machine import MACHINES
    from iomemfuzz.model.profile import resolve

    wanted = set()
    for program in programs:
        machine = program.header("machine")
        names = {profile} if profile else {program.profile,
                                           *(k for k in program.expectations() if k)}
        wanted |= {(name, machine) for name in names}
    for name, machine in sorted(wanted, key=str):
        try:
            prof = resolve(name)
        except (KeyError, ValueError):
            continue  # replay reports an unknown profile itself
        for booted in (True, False):
            fresh_kernel(prof, MACHINES.get(machine) if machine else None, booted=booted)


if __name__ == "__main__":
    sys.exit(_worker(sys.argv[1:]))
