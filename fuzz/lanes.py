"""Which kernel task ran when: the slices of one run, in the order the scheduler ran them.

``iomemfuzz show --lanes`` draws this (fuzz/pictures/lanes.py): one lane per kernel task
(boot's kernel_init, a hot-add, a host bridge probe, a removal, an mmap), each slice a
mark labelled with the preemption point the task reached (model/sched.py ``Point``), the
Program line that let it run beside it, what the kernel logged during the slice, and the
violations marked on the slice that logged them.

The recording changes nothing the model does: :func:`record` wraps the ``step`` of one
Kernel's own Scheduler instance (every slice goes through it: ``run``, ``drain`` and the
Program's ``step`` lines all call it) and reads the task and the log after each call.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from iomemfuzz.fuzz.executor import Execution, make_kernel
from iomemfuzz.fuzz.program import Program
from iomemfuzz.fuzz.program_format import format_op
from iomemfuzz.model.event import INITCALL
from iomemfuzz.model.profile import resolve
from iomemfuzz.model.sched import DONE, Task

# Runs longer than this of one task's uneventful slices in one Program line are shown as
# their first and last slices and a gap (boot runs forty slices before the race starts).
KEEP_RUN = 5
_DEVICE = re.compile(r"\b[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]\b")


@dataclass
class Slice:
    seq: int  # position in the run, all tasks together
    line: int  # index of the Program line that ran it (len(lines) for the end)
    task: int
    point: str  # where the task parked afterwards, or "returned X"
    state: str  # ready / blocked / done
    events: list[str] = field(default_factory=list)  # log lines other than initcalls
    initcalls: list[str] = field(default_factory=list)


@dataclass
class Recording:
    program: Program
    profile: str
    tasks: dict[int, str] = field(default_factory=dict)  # id -> name, in first-run order
    slices: list[Slice] = field(default_factory=list)
    lines: list[dict[str, Any]] = field(default_factory=list)
    violations: list[dict[str, Any]] = field(default_factory=list)


def record(program: Program, profile: str | None = None) -> Recording:
    """Run ``program`` and record every slice (the run itself is the ordinary one)."""
    prof = resolve(profile if profile is not None else program.profile)
    ex = Execution(prof, make_kernel(prof, program, program.ops))
    rec = Recording(program, prof.name)
    sched, log = ex.kernel.sched, ex.kernel.log
    inner = sched.step
    current = [0]

    def step(task: Task) -> str:
        before, mark = task.slices, len(log.events)
        state = inner(task)
        if task.slices != before:
            rec.tasks.setdefault(task.id, task.name)
            point = (f"returned {task.result!r}" if task.state == DONE
                     else str(task.parked))
            new = log.events[mark:]
            rec.slices.append(Slice(
                len(rec.slices), current[0], task.id, point, state,
                [e.text for e in new if e.kind != INITCALL],
                [e.text for e in new if e.kind == INITCALL]))
        return state

    sched.step = step  # this Kernel's scheduler only; see the module docstring
    handle = 0
    for i, o in enumerate(program.ops):
        current[0] = i
        binder = None
        if type(o).BINDS:
            binder, handle = handle, handle + 1
        first = len(rec.slices)
        st = ex.step(o)
        rec.lines.append({"index": i, "text": format_op(o, binder),
                          "outcome": st.outcome.label if st.outcome else "",
                          "slices": [first, len(rec.slices)]})
        _violations(rec, i, st.violations, first)
    current[0] = len(program.ops)
    first = len(rec.slices)
    trace = ex.finish()
    rec.lines.append({"index": len(program.ops), "text": "(end: pending paths run to "
                      "completion)", "outcome": "", "slices": [first, len(rec.slices)]})
    _violations(rec, len(program.ops), trace.steps[-1].violations, first)
    return rec


def _violations(rec: Recording, line: int, found: tuple, first: int) -> None:
    """Mark each violation on the last slice of its line that logged something (the
    report that gave it away), else on its line's last slice, else on the line alone."""
    mine = rec.slices[first:]
    loud = [s for s in mine if s.events]
    at = (loud or mine or [None])[-1]
    for v in found:
        rec.violations.append({"line": line, "signature": v.signature, "class": v.cls,
                               "message": v.message, "slice": at.seq if at else None})


def _focus(rec: Recording) -> set[str]:
    """Devices the violations are about: their slices are always shown."""
    return {d for v in rec.violations for d in _DEVICE.findall(v["message"])}


def _keep(rec: Recording) -> list[bool]:
    """Which slices a picture shows: all but the middle of long uneventful runs of one
    task in one line that touch none of the devices the violations name."""
    focus = _focus(rec)
    marked = {v["slice"] for v in rec.violations}
    keep = [True] * len(rec.slices)

    def plain(s: Slice) -> bool:
        return (not s.events and s.seq not in marked
                and not any(d in s.point for d in focus))

    run: list[Slice] = []
    for s in [*rec.slices, None]:
        if s is not None and run and (s.task, s.line) == (run[0].task, run[0].line) \
                and plain(s):
            run.append(s)
            continue
        if len(run) > KEEP_RUN:
            for dropped in run[2:-2]:
                keep[dropped.seq] = False
        run = [s] if s is not None and plain(s) else []
    return keep


PROCESS_LANE = 0  # the lane of Program lines that ran no kernel task (system calls)


def data(rec: Recording, *, everything: bool = False) -> dict[str, Any]:
    """What the lanes picture is drawn from: lanes, and rows in time order. A row is a
    slice (``point`` reached), a gap (``count`` uneventful slices left out), a call (a
    Program line that ran no kernel task, on the process lane) or a violation (marked on
    the row before it). Each Program line spans the rows it caused."""
    keep = [True] * len(rec.slices) if everything else _keep(rec)
    marks: dict[int | None, list[dict[str, Any]]] = {}
    for v in rec.violations:
        marks.setdefault(v["slice"], []).append(v)
    rows: list[dict[str, Any]] = []
    lines = []

    def flag(task: int, line: int, found: list[dict[str, Any]]) -> None:
        rows.extend({"kind": "violation", "task": task, "line": line,
                     "signature": v["signature"], "class": v["class"]} for v in found)

    for ln in rec.lines:
        start = len(rows)
        a, b = ln["slices"]
        for s in rec.slices[a:b]:
            if keep[s.seq]:
                rows.append({"kind": "slice", "task": s.task, "line": s.line,
                             "point": s.point, "state": s.state, "events": s.events})
            elif rows and rows[-1]["kind"] == "gap" and rows[-1]["task"] == s.task:
                rows[-1]["count"] += 1
            else:
                rows.append({"kind": "gap", "task": s.task, "line": s.line, "count": 1})
            flag(s.task, s.line, marks.get(s.seq, []))
        if a == b:
            rows.append({"kind": "call", "task": PROCESS_LANE, "line": ln["index"],
                         "point": ln["outcome"] or "final checks", "events": []})
            flag(PROCESS_LANE, ln["index"],
                 [v for v in rec.violations if v["slice"] is None and v["line"] == ln["index"]])
        lines.append({"index": ln["index"], "text": ln["text"], "outcome": ln["outcome"],
                      "rows": [start, len(rows) - 1]})
    tasks = [{"id": t, "name": n} for t, n in sorted(rec.tasks.items())]
    if any(r["task"] == PROCESS_LANE for r in rows):
        tasks.insert(0, {"id": PROCESS_LANE, "name": "process and Program lines "
                                                     "that ran no kernel task"})
    return {
        "catalog": rec.program.header("catalog") or "",
        "profile": rec.profile,
        "tasks": tasks,
        "rows": rows,
        "lines": lines,
        "violations": len(rec.violations),
    }
