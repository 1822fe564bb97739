"""Oracles: the properties users rely on, checked after every step and at the end.

An oracle is a module with a ``NAME``, a ``FAMILY``, a docstring whose first sentence
states the property, and two checks, each returning an iterable of Violation:

* ``check_step(kernel, step)``: what this one step did (its outcome and events). Cheap;
  run after every step always.
* ``check_state(kernel)``: whole-state invariants (tree shape, ledger vs tree, sysfs
  contents). Run after every step in *thorough* mode (replay, show, tests, minimization
  results) and at the end of every run; fuzz targets run it at the end only, because a
  full walk per step would cost more than the step itself, and a state violation persists
  to the end in practice (a broken tree or a leaked claim is not repaired by later steps).

Two optional module flags let the executor skip calls that cannot find anything:
``EVENTS_ONLY = True`` says ``check_step`` judges only the step's events (it is not
called for a step that logged none, which is most steps), ``STATELESS = True`` that
the oracle has no whole-state invariant (``check_state`` is never called).

Oracles only read the kernel; they never change it. ``ORACLES`` is the one registry: the
executor, the fuzz targets and the state machine all check exactly this list.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from iomemfuzz.fuzz.finding import Violation
    from iomemfuzz.fuzz.trace import Step
    from iomemfuzz.model.kernel import Kernel


class Oracle(Protocol):
    NAME: str
    FAMILY: str

    def check_step(self, kernel: Kernel, step: Step) -> Iterable[Violation]: ...

    def check_state(self, kernel: Kernel) -> Iterable[Violation]: ...


# Module names under this package, in checking order (it decides which violation of a
# step is reported first, and so a Program's primary signature).
MODULES: tuple[str, ...] = (
    "kernel_sanity",
    "busy_consistency",
    "mapping_survival",
    "resource_file",
    "duplicate_attributes",
)


def _load() -> tuple[Oracle, ...]:
    return tuple(importlib.import_module(f"{__name__}.{m}") for m in MODULES)  # type: ignore[misc]


ORACLES: tuple[Oracle, ...] = _load()


def by_name() -> dict[str, Oracle]:
    return {o.NAME: o for o in ORACLES}


def explain(signature: str) -> str:
    """One line saying what a signature means, from its oracle's KINDS/WHY tables."""
    oracle, _, rest = signature.partition("/")
    kind, _, rest = rest.partition("/")
    function, _, mechanism = rest.partition("/")
    module = by_name().get(oracle)
    if module is None or not hasattr(module, "explain"):
        return signature
    return module.explain(kind, function or "?", mechanism)
