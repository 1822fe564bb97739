"""Oracles: the properties users rely on, checked after every step and at the end.

An oracle is a module with a ``NAME``, a docstring whose first sentence states the
property, and ``check(kernel, step, final) -> iterable of Violation``. Oracles only read
the kernel; they never change it. ``ORACLES`` is the one registry: the executor, the
fuzz targets and the state machine all check exactly this list.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from iomemfuzz.fuzz.executor import Step
    from iomemfuzz.fuzz.finding import Violation
    from iomemfuzz.model.kernel import Kernel


class Oracle(Protocol):
    NAME: str
    FAMILY: str

    def check(self, kernel: Kernel, step: Step, final: bool) -> Iterable[Violation]: ...


# Module names under this package, in checking order (it decides which violation of a
# step is reported first, and so a Program's primary signature).
MODULES: tuple[str, ...] = (
    "kernel_sanity",
    "busy_consistency",
    "mapping_survival",
)


def _load() -> tuple[Oracle, ...]:
    return tuple(importlib.import_module(f"{__name__}.{m}") for m in MODULES)  # type: ignore[misc]


ORACLES: tuple[Oracle, ...] = _load()


def by_name() -> dict[str, Oracle]:
    return {o.NAME: o for o in ORACLES}
