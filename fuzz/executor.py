"""The executor: the only code that drives a Kernel.

``run(program, profile)`` takes a fresh Kernel (a copy of a freshly built one, see
fuzz/snapshot.py), runs each operation, records its Outcome and the events it caused,
asks every oracle after every step and once at the end, and returns a Trace.
``Execution`` is the same thing one operation at a time, for the hypothesis state
machine and ``iomemfuzz show``.

Deterministic by construction: the model has no clock or randomness, and nothing here
depends on object identity. ``tests/unit/test_executor.py`` runs programs twice and
compares the traces.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from iomemfuzz.fuzz.finding import BY_DESIGN, Violation, program_class
from iomemfuzz.fuzz.ops import EBADF, ILLEGAL, Context, Op
from iomemfuzz.fuzz.oracles import ORACLES, Oracle
from iomemfuzz.fuzz.program import Program
from iomemfuzz.fuzz.snapshot import fresh_kernel
from iomemfuzz.fuzz.trace import Step, Trace
from iomemfuzz.model.kernel import Kernel
from iomemfuzz.model.machine_file import load_machine
from iomemfuzz.model.profile import KernelProfile, resolve


def needs_boot(ops: tuple[Op, ...] | list[Op]) -> bool:
    """A Program starts on a booted kernel unless it controls boot itself."""
    return not any(type(o).CONTROLS_BOOT for o in ops)


def make_kernel(profile: KernelProfile, program: Program | None,
                ops: tuple[Op, ...] | list[Op] = ()) -> Kernel:
    machine = None
    if program is not None and program.header("machine"):
        # A built-in name, a shipped machine file's name, or file:PATH.
        machine = load_machine(program.header("machine"))
    return fresh_kernel(profile, machine, booted=needs_boot(ops))


@dataclass
class Execution:
    """A run in progress: feed operations one at a time, then ``finish()``."""

    profile: KernelProfile
    kernel: Kernel
    oracles: tuple[Oracle, ...] = ORACLES
    # Check whole-state invariants after every step (True) or only at the end (False,
    # the fuzz targets' fast mode; see fuzz/oracles/__init__.py).
    thorough: bool = True
    steps: list[Step] = field(default_factory=list)
    accepted: list[Violation] = field(default_factory=list)
    ctx: Context = field(init=False)
    _seen: set[str] = field(default_factory=set)
    # (WHO, controls scheduling) of every line so far that did something: whose fault
    # a violation is (fuzz/finding.py program_class).
    _lines: list[tuple[str, bool]] = field(default_factory=list)
    # The checks to run after a step, in oracle order (which decides the first
    # violation), by (the step logged events, whole-state checks are due).
    _plans: dict[tuple[bool, bool], tuple[_Check, ...]] = field(init=False)

    def __post_init__(self) -> None:
        self.ctx = Context(self.kernel)
        self._plans = _plans(tuple(self.oracles))

    @classmethod
    def start(cls, profile: KernelProfile | str | None = None, program: Program | None = None,
              *, oracles: tuple[Oracle, ...] = ORACLES, booted: bool = True,
              thorough: bool = True) -> Execution:
        prof = resolve(profile)
        if program is None:
            kernel = fresh_kernel(prof, None, booted=booted)
        else:
            kernel = make_kernel(prof, program, program.ops)
        return cls(prof, kernel, oracles, thorough)

    def step(self, o: Op) -> Step:
        # Log.since() on the list itself: most steps log nothing.
        events = self.kernel.log.events
        mark = len(events)
        ctx = self.ctx
        ctx.line = len(self.steps)
        ctx._bound = None
        outcome = o.run(ctx)
        cls = type(o)
        if cls.BINDS:
            ctx.handles.append(ctx._bound)
        if outcome is not EBADF and outcome is not ILLEGAL:
            self._lines.append((cls.WHO, cls.SCHEDULE
                                or getattr(o, "mode", "call") == "spawn"))
        step = Step(len(self.steps), o, outcome, tuple(events[mark:]) if len(events) > mark else ())
        step = self._check(step, final=False)
        self.steps.append(step)
        return step

    def finish(self) -> Trace:
        """Let pending kernel paths finish, run end-of-program checks, return the Trace."""
        kernel = self.kernel
        mark = len(kernel.log)
        finish = getattr(kernel, "finish", None)
        if finish is not None:
            finish()
        step = Step(len(self.steps), None, None, kernel.log.since(mark))
        step = self._check(step, final=True)
        self.steps.append(step)
        return Trace(self.profile.name, tuple(self.steps), tuple(self.accepted))

    def _check(self, step: Step, *, final: bool) -> Step:
        plan = self._plans[bool(step.events), final or self.thorough]
        if not plan:
            return step  # a quiet step in fast mode: nothing can be found
        kernel = self.kernel
        # One list for every oracle, in oracle order; almost every step finds nothing
        # and returns right after the loop.
        violations: list[Violation] = []
        for check in plan:
            violations.extend(check(kernel, step))
        if not violations:
            return step
        found: list[Violation] = []
        by_design = self.profile.by_design
        for v in violations:
            # Each signature is reported once per run: a violation that persists (a
            # leaked busy region) would otherwise repeat on every later step.
            if v.signature in self._seen:
                continue
            self._seen.add(v.signature)
            if _accepted(v, by_design):
                self.accepted.append(dataclasses.replace(v, cls=BY_DESIGN))
            else:
                breaches = getattr(kernel.observer, "breaches", ())
                found.append(dataclasses.replace(
                    v, cls=program_class(self._lines, len(breaches))))
        if not found:
            return step
        return Step(step.index, step.op, step.outcome, step.events, tuple(found))


def _accepted(v: Violation, by_design: frozenset[str]) -> bool:
    """Does the profile accept ``v`` as by design: its catalog entry, its signature or a
    leading part of it (``mapping-survival/collateral-revocation``) is listed?"""
    if not by_design:
        return False
    if v.catalog in by_design:
        return True
    sig = v.signature
    return any(sig == d or sig.startswith(d + "/") for d in by_design)


# One oracle check after a step: (kernel, step) -> violations.
_Check = Callable[[Kernel, Step], Iterable[Violation]]


# Plans by oracle tuple: built once per process, not once per run.
_PLANS: dict[tuple[Oracle, ...], dict[tuple[bool, bool], tuple[_Check, ...]]] = {}


def _plans(oracles: tuple[Oracle, ...]) -> dict[tuple[bool, bool], tuple[_Check, ...]]:
    plans = _PLANS.get(oracles)
    if plans is None:
        plans = _PLANS[oracles] = {(events, state): _plan(oracles, events, state)
                                   for events in (False, True) for state in (False, True)}
    return plans


def _plan(oracles: tuple[Oracle, ...], events: bool, state: bool) -> tuple[_Check, ...]:
    """The checks a step needs, in oracle order, each oracle's check_step before its
    check_state: a step without events skips EVENTS_ONLY check_steps, whole-state checks
    run only when due and only for oracles that have any (not STATELESS)."""
    plan: list[_Check] = []
    for oracle in oracles:
        if events or not getattr(oracle, "EVENTS_ONLY", False):
            plan.append(_step_check(oracle))
        if state and not getattr(oracle, "STATELESS", False):
            plan.append(_state_check(oracle))
    return tuple(plan)


# The checks look the oracle's function up at each call, as the loop over the oracles
# did: a plan outlives any one run.
def _step_check(oracle: Oracle) -> _Check:
    return lambda kernel, step: oracle.check_step(kernel, step)


def _state_check(oracle: Oracle) -> _Check:
    return lambda kernel, _step: oracle.check_state(kernel)


def run(program: Program, profile: KernelProfile | str | None = None, *,
        oracles: tuple[Oracle, ...] = ORACLES, thorough: bool = True) -> Trace:
    """Run ``program`` on a fresh kernel; ``profile`` defaults to the Program's header."""
    prof = resolve(profile if profile is not None else program.profile)
    ops = program.ops  # a tuple built from the lines on each access: once per run
    ex = Execution(prof, make_kernel(prof, program, ops), oracles, thorough)
    for o in ops:
        ex.step(o)
    return ex.finish()


def run_ops(ops: tuple[Op, ...] | list[Op], profile: KernelProfile | str | None = None, *,
            oracles: tuple[Oracle, ...] = ORACLES, thorough: bool = False) -> Trace:
    """Run bare operations (no header) — the fuzz targets' fast path: whole-state
    invariants are checked at the end only unless ``thorough``.

    A fast run that finds anything is run again thoroughly and that trace returned: a
    whole-state violation is titled with what the step that broke the state did, which
    only a check after every step sees, and a signature must not depend on the mode."""
    prof = resolve(profile)
    ex = Execution(prof, fresh_kernel(prof, None, booted=needs_boot(ops)), oracles, thorough)
    for o in ops:
        ex.step(o)
    trace = ex.finish()
    if not thorough and trace.first is not None:
        return run_ops(ops, prof, oracles=oracles, thorough=True)
    return trace
