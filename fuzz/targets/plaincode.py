"""Uninstrumented twins of the model's functions, switched in where coverage says nothing.

atheris instruments a module once, at import, by rewriting every code object; an
instrumented model runs about 2.5-5x slower than the plain one. Two parts of each
process gain nothing from that instrumentation:

* **Building the kernel templates.** Every input starts on a copy of a kernel built once
  per process (fuzz/snapshot.py); that one build, a whole boot for the booted
  template, has the same coverage whatever the inputs, so it runs plain.
* **Observers**: whole-state walks (tree walks, the sysfs walk, the claim ledger) that
  the oracles and ``show`` call after every step. Some model paths call them too
  (``descendants`` and ``preorder`` are ordinary helpers), so those
  paths lose the walk's line coverage; the walks are simple loops whose coverage says
  nothing about the kernel's state.

A function's code is an attribute (``fn.__code__``), so the same function object, and
every object the model has already built, can run either version: :class:`CodeSwitch`
compiles each model module's source a second time without instrumentation and pairs the
code objects by qualified name and first line. ``plain()`` puts the twins in for the
duration of a ``with`` block; ``make_plain()`` does it for good for the named functions.

What the switch cannot reach: a function object or generator *created* while the plain
code is in gets its code from the plain twin of its creator, and keeps it. So the model
keeps nothing of that kind past boot: address resolvers are objects with a ``__call__``
method, not closures, and a template never holds a suspended generator or a closure (the
snapshot refuses both; a test scans the heap for plain code left behind).
"""

from __future__ import annotations

import contextlib
import sys
import types
from collections.abc import Iterable, Iterator
from pathlib import Path

# Whole-state walks the oracles (and ``show``) call after every step; they model no
# kernel path, though some model paths use the first three as helpers. Qualified names,
# per module.
OBSERVERS: dict[str, tuple[str, ...]] = {
    "iomemfuzz.model.resource_check": ("preorder", "tree_problems", "_well_formed",
                                       "descendants"),
    "iomemfuzz.model.sysfs": ("Sysfs.walk", "Sysfs.files"),
}


def _code_objects(code: types.CodeType) -> Iterator[types.CodeType]:
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield const
            yield from _code_objects(const)


def _functions(module: types.ModuleType) -> Iterator[types.FunctionType]:
    """The module's own functions and the methods of its own classes (properties,
    static and class methods included)."""
    for value in vars(module).values():
        if isinstance(value, types.FunctionType) and value.__module__ == module.__name__:
            yield value
        elif isinstance(value, type) and value.__module__ == module.__name__:
            for member in vars(value).values():
                if isinstance(member, (staticmethod, classmethod)):
                    member = member.__func__
                if isinstance(member, property):
                    yield from (f for f in (member.fget, member.fset, member.fdel)
                                if isinstance(f, types.FunctionType))
                elif isinstance(member, types.FunctionType):
                    yield member


class CodeSwitch:
    """For every function of ``modules``: its current (instrumented) code and its plain
    twin, so the two can be exchanged cheaply."""

    def __init__(self, module_names: Iterable[str]) -> None:
        self.pairs: list[tuple[types.FunctionType, types.CodeType, types.CodeType]] = []
        self.by_name: dict[tuple[str, str], int] = {}
        for name in module_names:
            module = sys.modules[name]
            source_file = getattr(module, "__file__", None)
            if not source_file or not source_file.endswith(".py"):
                continue
            source = Path(source_file).read_text(encoding="utf-8")
            top = compile(source, source_file, "exec", dont_inherit=True)
            plain = {(c.co_qualname, c.co_firstlineno): c for c in _code_objects(top)}
            for fn in _functions(module):
                code = fn.__code__
                twin = plain.get((code.co_qualname, code.co_firstlineno))
                # Dataclass-generated methods and the like come from elsewhere.
                if twin is None or twin is code:
                    continue
                # A twin with other cells or locals is not the same function (a stale
                # source file, or a compiler difference); leave that one instrumented.
                if (twin.co_freevars, twin.co_cellvars, twin.co_varnames) != (
                        code.co_freevars, code.co_cellvars, code.co_varnames):
                    continue
                self.by_name[(name, code.co_qualname)] = len(self.pairs)
                self.pairs.append((fn, code, twin))

    def set_plain(self) -> None:
        for fn, _instrumented, twin in self.pairs:
            fn.__code__ = twin

    def set_instrumented(self) -> None:
        for fn, instrumented, _twin in self.pairs:
            fn.__code__ = instrumented

    @contextlib.contextmanager
    def plain(self) -> Iterator[None]:
        """Run the block on uninstrumented model code."""
        self.set_plain()
        try:
            yield
        finally:
            self.set_instrumented()

    def make_plain(self, observers: dict[str, tuple[str, ...]]) -> list[str]:
        """Give the named functions their plain code for good (they leave the switch);
        returns the names that matched nothing, so a rename does not pass silently."""
        missing = []
        drop: set[int] = set()
        for module_name, qualnames in observers.items():
            for qualname in qualnames:
                i = self.by_name.get((module_name, qualname))
                if i is None:
                    missing.append(f"{module_name}.{qualname}")
                    continue
                fn, _instrumented, twin = self.pairs[i]
                fn.__code__ = twin
                drop.add(i)
        self.pairs = [p for i, p in enumerate(self.pairs) if i not in drop]
        self.by_name = {(m, fn.__code__.co_qualname): i
                        for i, (fn, _c, _t) in enumerate(self.pairs)
                        for m in (fn.__module__,)}
        return missing
