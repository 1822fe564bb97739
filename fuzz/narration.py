"""``iomemfuzz show``: a step-by-step story of one run that a kernel developer can follow.

For each line: the operation as Program text, its outcome, what the kernel logged, any
broken property, and how the state changed — each state section the Kernel describes
(/proc/iomem, mappings, sysfs files, tasks) shown as +/- lines against the previous step.
The story is data (:class:`Story`); ``narrate`` prints it as text, ``Story.as_json`` as the
object ``iomemfuzz show --json`` prints.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

from iomemfuzz.fuzz.executor import Execution, Step, make_kernel
from iomemfuzz.fuzz.program import Program
from iomemfuzz.fuzz.program_format import format_op
from iomemfuzz.model.profile import resolve


def _diff(before: str, after: str) -> list[str]:
    """Changed lines with one line of context (usually the parent node or directory)."""
    out = []
    for line in difflib.unified_diff(before.splitlines(), after.splitlines(), n=1,
                                     lineterm=""):
        if line.startswith(("---", "+++", "@@")):
            continue
        out.append(line[0] + " " + line[1:])
    return out


@dataclass
class Told:
    """One step of the story: an operation (or the end of the run) and what it did."""

    index: int | None  # None for the end-of-program step
    op: str | None  # Program text of the operation
    outcome: str | None
    events: list[str] = field(default_factory=list)
    # (signature, class, message) of each violation the step found.
    violations: list[tuple[str, str, str]] = field(default_factory=list)
    changes: dict[str, list[str]] = field(default_factory=dict)  # section -> +/- lines

    def text(self) -> list[str]:
        out = []
        if self.index is None:
            out.append("[end] pending kernel paths run to completion; final checks")
        else:
            out.append(f"[{self.index}] {self.op}  -> {self.outcome or '?'}")
        out.extend(f"      kernel: {e}" for e in self.events)
        out.extend(f"      VIOLATION {sig} [{cls}]: {message}"
                   for sig, cls, message in self.violations)
        for title, lines in self.changes.items():
            out.append(f"      {title}:")
            out.extend("        " + ln for ln in lines)
        return out


@dataclass
class Story:
    profile: str
    description: str
    initial: dict[str, str]
    steps: list[Told]
    verdict: list[str]  # signatures of the findings, in order
    accepted: list[str]  # signatures the profile accepts by design
    classes: dict[str, str] = field(default_factory=dict)  # signature -> class

    @property
    def has_finding(self) -> bool:
        return bool(self.verdict)

    def text(self) -> str:
        out = [f"profile: {self.profile} — {self.description}", "initial state:"]
        for title, text in self.initial.items():
            if text.strip():
                out.append(f"  {title}:")
                out.extend("    " + ln for ln in text.splitlines())
        for step in self.steps:
            out.extend(step.text())
        out.append("verdict: " + (", ".join(f"{sig} [{self.classes.get(sig, '?')}]"
                                            for sig in self.verdict)
                                  if self.verdict else "clean"))
        if self.accepted:
            out.append("accepted by design on this profile: " + ", ".join(self.accepted))
        return "\n".join(out) + "\n"

    def as_json(self) -> dict[str, object]:
        return {
            "profile": self.profile,
            "description": self.description,
            "initial": self.initial,
            "steps": [{"index": s.index, "op": s.op, "outcome": s.outcome,
                       "events": s.events,
                       "violations": [{"signature": sig, "class": cls, "message": msg}
                                      for sig, cls, msg in s.violations],
                       "changes": s.changes} for s in self.steps],
            "verdict": "finding" if self.verdict else "clean",
            "findings": [{"signature": sig, "class": self.classes.get(sig, "")}
                         for sig in self.verdict],
            "accepted": self.accepted,
        }


def _told(step: Step, binder: int | None, before: dict[str, str],
          after: dict[str, str]) -> Told:
    told = Told(None if step.op is None else step.index,
                None if step.op is None else format_op(step.op, binder),
                step.outcome.label if step.outcome else None)
    told.events = [e.text for e in step.events]
    told.violations = [(v.signature, v.cls, v.message) for v in step.violations]
    for title, text in after.items():
        old = before.get(title, "")
        if old != text:
            told.changes[title] = _diff(old, text)
    return told


def story(program: Program, profile: str | None = None) -> Story:
    """Run ``program`` one operation at a time and record what each step did."""
    prof = resolve(profile if profile is not None else program.profile)
    ex = Execution(prof, make_kernel(prof, program, program.ops))
    state = ex.kernel.describe()
    initial = dict(state)
    steps = []
    handle = 0
    for o in program.ops:
        binder = None
        if type(o).BINDS:
            binder = handle
            handle += 1
        step = ex.step(o)
        new = ex.kernel.describe()
        steps.append(_told(step, binder, state, new))
        state = new
    trace = ex.finish()
    steps.append(_told(trace.steps[-1], None, state, ex.kernel.describe()))
    classes: dict[str, str] = {}
    for v in trace.violations:
        classes.setdefault(v.signature, v.cls)
    return Story(prof.name, prof.description, initial, steps, list(trace.signatures),
                 sorted({v.signature for v in trace.accepted}), classes)


def narrate(program: Program, profile: str | None = None) -> str:
    return story(program, profile).text()
