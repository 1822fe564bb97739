"""The triage table: every signature the corpus holds, whose fault it is, and where to
start reading (docs/FINDINGS.md, written by ``tools/update_docs.py``).

One row per signature, from the shortest corpus Program that states it (on any profile,
in its ``# expect`` lines), replayed so that the class and the catalog entry come from
the run, not from what a header says.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from iomemfuzz.fuzz.corpus import program_files
from iomemfuzz.fuzz.executor import run
from iomemfuzz.fuzz.oracles import explain
from iomemfuzz.fuzz.program_file import read_program
from iomemfuzz.fuzz.replay import FINDING
from iomemfuzz.model.profile import DEFAULT, resolve


@dataclass(frozen=True, slots=True)
class Row:
    signature: str
    cls: str
    catalog: str
    function: str
    meaning: str
    profile: str
    reproducer: str
    length: int


def _candidates(corpus: Path) -> dict[str, tuple[int, str, str]]:
    """signature -> (operations, path, profile) of the shortest Program stating it."""
    best: dict[str, tuple[int, str, str]] = {}
    for path in program_files([corpus]):
        program = read_program(str(path))
        main = program.profile or DEFAULT.name
        for profile, verdicts in program.expectations().items():
            for verdict in verdicts:
                word, _, sig = verdict.partition(" ")
                if word != FINDING:
                    continue
                key = (len(program.lines), str(path), profile or main)
                if sig not in best or key[:2] < best[sig][:2]:
                    best[sig] = key
    return best


def rows(corpus: Path | str = "corpus", root: Path | str = ".") -> list[Row]:
    """The triage rows of ``corpus``, sorted by signature. Paths are relative to
    ``root``."""
    out = []
    for sig, (length, path, profile) in sorted(_candidates(Path(corpus)).items()):
        program = read_program(path)
        trace = run(program, resolve(profile))
        violation = next((v for v in trace.violations if v.signature == sig), None)
        parts = sig.split("/")
        function = parts[2] if len(parts) > 2 else ""
        catalog = (violation.catalog if violation is not None and violation.catalog
                   else ", ".join(program.catalog))
        out.append(Row(sig, violation.cls if violation is not None else "not reproduced",
                       catalog, function, explain(sig), profile,
                       str(Path(path).resolve().relative_to(Path(root).resolve())), length))
    return out


def markdown(table: list[Row]) -> str:
    """The rows as the Markdown table of docs/FINDINGS.md."""
    lines = ["| signature | class | catalog | kernel function | what it means | "
             "shortest reproducer |", "|---|---|---|---|---|---|"]
    for r in table:
        lines.append(f"| `{r.signature}` | {r.cls} | {r.catalog or '—'} | "
                     f"`{r.function or '—'}` | {r.meaning} | "
                     f"[`{Path(r.reproducer).name}`](../{r.reproducer}) "
                     f"({r.length} ops, {r.profile}) |")
    return "\n".join(lines) + "\n"
