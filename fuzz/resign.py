"""``iomemfuzz resign``: rewrite a corpus's program-level expectations under the current
signatures.

Signatures name the mechanism and the kernel function (fuzz/finding.py). When that
naming changes (an oracle learns to tell two mechanisms apart, a kind is renamed), the
``# expect:`` lines of existing Programs name signatures that no run produces any more.
This replays every file on each profile it states a verdict for and writes the verdict
the run gives now, with the file's class, so the corpus keeps replaying. It touches
nothing else: per-line outcomes, notes and operations stay as they are, and a file whose
per-line outcomes no longer hold is reported, not rewritten.

Each change is printed as ``old -> new``. A change that is not a renaming (a signature
that vanished, a new one, a verdict that turned clean) is marked, because it means the
behaviour changed, not just the name: ``--check`` exits 1 on any such change.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from iomemfuzz.fuzz.corpus import program_files, write_atomic
from iomemfuzz.fuzz.executor import run
from iomemfuzz.fuzz.program import Program, sort_headers
from iomemfuzz.fuzz.program_file import read_program
from iomemfuzz.fuzz.program_format import format_program
from iomemfuzz.fuzz.replay import ACCEPTED, CLEAN, FINDING
from iomemfuzz.model.profile import DEFAULT, resolve

# Kinds that were renamed: an old ORACLE/KIND and the new one it became.
RENAMED: dict[str, str] = {
    f"mapping-survival/{old}": "mapping-survival/reaches-claimed"
    for old in ("unrevoked-claim", "no-revocation", "mapping-outside-iomem",
                "claim-without-revoke", "revoke-race", "revoke-rounding",
                "mapped-after-claim", "read-after-claim")
}
RENAMED["mapping-survival/unclaimed-driver-bar"] = "mapping-survival/driver-bar-unclaimed"


def _stem(sig: str) -> str:
    """ORACLE/KIND of a signature, old or new."""
    parts = sig.split("/")
    return "/".join(parts[:2])


def renames(old: str, new: str) -> bool:
    """Is ``new`` what ``old`` is called now (same oracle and kind, or a renamed kind)?"""
    stem = _stem(old)
    return _stem(new) in (stem, RENAMED.get(stem, stem))


@dataclass
class Change:
    path: str
    profile: str
    old: tuple[str, ...]
    new: tuple[str, ...]

    @property
    def renaming_only(self) -> bool:
        """Every old verdict has exactly one new one of the same oracle and kind, and
        nothing new appeared."""
        # Verdicts of findings only: an "accepted" line says what a clean run accepted,
        # which older files did not spell out.
        old = tuple(o for o in self.old if not o.startswith(ACCEPTED)) or (CLEAN,)
        new = tuple(n for n in self.new if not n.startswith(ACCEPTED)) or (CLEAN,)
        if old == new:
            return True
        if (CLEAN,) in (old, new) or len(old) != len(new):
            return False
        olds = [o.partition(" ")[2] for o in old]
        news = [n.partition(" ")[2] for n in new]
        return all(sum(renames(o, n) for n in news) == 1 for o in olds) and all(
            any(renames(o, n) for o in olds) for n in news)

    def __str__(self) -> str:
        mark = "" if self.renaming_only else "  [behaviour changed]"
        return (f"{self.path} [{self.profile}]: {'; '.join(self.old) or CLEAN} -> "
                f"{'; '.join(self.new) or CLEAN}{mark}")


@dataclass
class Report:
    changes: list[Change] = field(default_factory=list)
    outcome_mismatches: list[str] = field(default_factory=list)
    written: list[str] = field(default_factory=list)

    @property
    def behaviour_changed(self) -> bool:
        return any(not c.renaming_only for c in self.changes) or bool(
            self.outcome_mismatches)


def verdict(program: Program, profile: str) -> tuple[tuple[str, ...], str]:
    """(expect values, class of the first finding) of ``program`` on ``profile`` now."""
    trace = run(program, resolve(profile))
    first = trace.first
    sigs = trace.signatures
    accepted = tuple(dict.fromkeys(f"{ACCEPTED} {v.signature}" for v in trace.accepted))
    if not sigs:
        return accepted or (CLEAN,), ""
    return tuple(f"{FINDING} {s}" for s in sigs) + accepted, first.cls if first else ""


def resign_program(program: Program, path: str, report: Report) -> Program:
    """``program`` with every program-level verdict and its class header recomputed."""
    main = program.profile or DEFAULT.name
    expectations = program.expectations()
    headers = [(k, v) for k, v in program.headers
               if k != "expect" and not k.startswith("expect@") and k != "class"]
    targets = [main] + [p for p in expectations if p is not None and p != main]
    cls = ""
    for name in targets:
        old = expectations.get(None if name == main else name, ())
        new, first_cls = verdict(program, name)
        if name == main:
            cls = first_cls
            trace = run(program, resolve(name))
            for i, line in enumerate(program.lines):
                got = trace.steps[i].outcome
                if line.expect is not None and (got is None or got.label != line.expect):
                    report.outcome_mismatches.append(
                        f"{path}: line {i + 1} ({line.op.NAME}) expected {line.expect}, "
                        f"got {got.label if got else 'nothing'}")
        if tuple(old) != new and not (not old and new == (CLEAN,)):
            report.changes.append(Change(path, name, tuple(old), new))
        key = "expect" if name == main else f"expect@{name}"
        if name == main or new != (CLEAN,) or old:
            headers += [(key, v) for v in new]
    if cls:
        headers.append(("class", cls))
    return dataclasses.replace(program, headers=sort_headers(headers))


def resign(paths: list[str], *, write: bool = True) -> Report:
    """Resign every Program under ``paths``; write the files that changed (atomically)
    unless ``write`` is False."""
    report = Report()
    for file in program_files(paths):
        program = read_program(str(file))
        new = resign_program(program, str(file), report)
        text = format_program(new)
        if text != Path(file).read_text(encoding="utf-8") and write:
            write_atomic(Path(file), text.encode("utf-8"))
            report.written.append(str(file))
    return report


def main(paths: list[str], *, write: bool = True, check: bool = False) -> int:
    """``iomemfuzz resign``: print every change; 1 if ``check`` and behaviour changed."""
    report = resign(paths, write=write)
    for change in report.changes:
        print(change)
    for mismatch in report.outcome_mismatches:
        print(f"{mismatch}  [per-line outcome differs: not rewritten]")
    verb = "rewrote" if write else "would rewrite"
    print(f"{verb} {len(report.written) if write else len(report.changes)} file(s); "
          f"{len(report.changes)} verdict(s) changed")
    return 1 if check and report.behaviour_changed else 0
