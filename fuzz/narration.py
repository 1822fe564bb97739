"""``iomemfuzz show``: a step-by-step story of one run that a kernel developer can follow.

For each line: the operation as Program text, its outcome, what the kernel logged, any
broken property, and how the state changed — each state section the Kernel describes
(/proc/iomem, mappings, sysfs files, tasks) shown as +/- lines against the previous step.
"""

from __future__ import annotations

import difflib

from iomemfuzz.fuzz.executor import Execution, Step, make_kernel
from iomemfuzz.fuzz.program import Program, format_op
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


def _step_text(step: Step, binder: int | None) -> list[str]:
    out = []
    if step.op is None:
        out.append("[end] pending kernel paths run to completion; final checks")
    else:
        label = step.outcome.label if step.outcome else "?"
        out.append(f"[{step.index}] {format_op(step.op, binder)}  -> {label}")
    for e in step.events:
        out.append(f"      kernel: {e.text}")
    for v in step.violations:
        out.append(f"      VIOLATION {v.signature} [{v.cls}]: {v.message}")
    return out


def narrate(program: Program, profile: str | None = None) -> str:
    prof = resolve(profile if profile is not None else program.profile)
    ex = Execution(prof, make_kernel(prof, program, program.ops))
    out = [f"profile: {prof.name} — {prof.description}"]
    state = ex.kernel.describe()
    out.append("initial state:")
    for title, text in state.items():
        if text.strip():
            out.append(f"  {title}:")
            out.extend("    " + ln for ln in text.splitlines())
    handle = 0
    for o in program.ops:
        binder = None
        if type(o).BINDS:
            binder = handle
            handle += 1
        step = ex.step(o)
        out.extend(_step_text(step, binder))
        out.extend(_changes(state, new := ex.kernel.describe()))
        state = new
    trace = ex.finish()
    out.extend(_step_text(trace.steps[-1], None))
    out.extend(_changes(state, ex.kernel.describe()))
    first: dict[str, str] = {}
    for v in trace.violations:
        first.setdefault(v.signature, v.cls)
    out.append("verdict: " + (", ".join(f"{sig} [{cls}]" for sig, cls in first.items())
                              if first else "clean"))
    if trace.accepted:
        out.append("accepted by design on this profile: "
                   + ", ".join(sorted({v.signature for v in trace.accepted})))
    return "\n".join(out) + "\n"


def _changes(before: dict[str, str], after: dict[str, str]) -> list[str]:
    out = []
    for title, text in after.items():
        old = before.get(title, "")
        if old != text:
            out.append(f"      {title}:")
            out.extend("        " + ln for ln in _diff(old, text))
    return out
