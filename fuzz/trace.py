"""Step and Trace: what one run of a Program did, line by line.

The executor (fuzz/executor.py) makes them; oracles, the minimizer, replay and ``show``
read them. They live apart from the executor so that the oracles, which the executor
runs, can name the type of what they are given without importing it.
"""

from __future__ import annotations

from dataclasses import dataclass

from iomemfuzz.fuzz.finding import Violation
from iomemfuzz.fuzz.ops import Op, Outcome
from iomemfuzz.model.event import Event


@dataclass(frozen=True, slots=True, init=False)
class Step:
    """One operation, what it returned, what the kernel logged, what broke."""

    index: int
    op: Op | None  # None for the end-of-program step (pending tasks, final checks)
    outcome: Outcome | None
    events: tuple[Event, ...]
    violations: tuple[Violation, ...] = ()

    def __init__(self, index: int, op: Op | None, outcome: Outcome | None,
                 events: tuple[Event, ...], violations: tuple[Violation, ...] = ()) -> None:
        # One per operation: set through the slots' descriptors, which bypass the frozen
        # __setattr__ as the generated __init__'s object.__setattr__ does, for a third
        # less (see model/sched.py's Point).
        _set_index(self, index)
        _set_op(self, op)
        _set_outcome(self, outcome)
        _set_events(self, events)
        _set_violations(self, violations)


_set_index = Step.index.__set__  # type: ignore[attr-defined]
_set_op = Step.op.__set__  # type: ignore[attr-defined]
_set_outcome = Step.outcome.__set__  # type: ignore[attr-defined]
_set_events = Step.events.__set__  # type: ignore[attr-defined]
_set_violations = Step.violations.__set__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class Trace:
    profile: str
    steps: tuple[Step, ...]
    # Violations the profile accepts as by design (recorded, not findings).
    accepted: tuple[Violation, ...] = ()

    @property
    def violations(self) -> tuple[Violation, ...]:
        return tuple(v for s in self.steps for v in s.violations)

    @property
    def signatures(self) -> tuple[str, ...]:
        """Distinct violation signatures, in order of first occurrence."""
        seen: dict[str, None] = {}
        for v in self.violations:
            seen.setdefault(v.signature, None)
        return tuple(seen)

    @property
    def first(self) -> Violation | None:
        vs = self.violations
        return vs[0] if vs else None
