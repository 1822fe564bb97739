"""Kernel snapshots: a copy of a freshly built (and booted) Kernel for a fraction of a boot.

A Kernel built with nothing interleaved is a pure function of (profile, machine, booted)
(model/kernel.py), yet every run used to pay for building it, and a booted one costs a
whole boot: more than half of a fast 32-operation run. :func:`fresh_kernel` builds each
combination once, as a *template*, and hands out copies that behave exactly like a kernel
built from scratch.

**How a copy is made.** Copying an object graph generically costs about as much as
building it, or more: the cost is per object and per field, not per kernel decision.
On the default machine's booted kernel (about 330 objects the build creates) a boot
takes 0.63-0.86 ms, ``copy.deepcopy`` 3.7 ms and a copier dispatching on type 1.0-1.5 ms.
So each template is compiled once into straight-line Python, one statement per object
and one per field: 0.12-0.13 ms (``tools/bench_executor.py --snapshot`` measures
these). Generating source and ``exec``-ing it is how :mod:`dataclasses` builds
``__init__`` too; the source is made only from the template's own structure, never from
input.

**What a copy shares with the template** is exactly what two independently built kernels
share: objects that existed before the template was built (the profile, the machine,
module-level sentinels such as ``WOULD_BLOCK``, functions and classes), immutable values
(numbers, strings, and tuples or frozen value objects made of them) and the generators
of paths that have finished (nothing can resume them). Everything else the build created
is copied. What cannot be copied faithfully, a suspended generator or a closure made
during the build, makes the snapshot refuse (:class:`SnapshotError`) rather than share
it; the caller then gets a kernel built from scratch.

**Checked, not assumed.** The first copy of every template is compared with the template
object by object (:func:`_check_copy`): same types, same values, same shape, the same
sharing, and nothing shared that the build created. A model change that stores state the
compiler does not know how to copy fails there, loudly, instead of leaking state from one
run into the next.
"""

from __future__ import annotations

import collections
import dataclasses
import gc
import types
from collections.abc import Callable
from typing import Any

from iomemfuzz.model.kernel import Kernel
from iomemfuzz.model.machine import DEFAULT_MACHINE, Machine
from iomemfuzz.model.profile import DEFAULT, KernelProfile

# Values written into the generated source as literals.
_LITERALS = (int, str, bool, type(None))
# Immutable leaf types: shared, never copied.
_ATOMS = frozenset({int, str, bool, float, complex, bytes, type(None), range})
# Shared because they are code or types, not kernel state.
_CODE = (types.FunctionType, types.BuiltinFunctionType, types.MethodDescriptorType,
         types.WrapperDescriptorType, type, types.ModuleType)


class SnapshotError(Exception):
    """The built kernel holds something a copy cannot reproduce faithfully."""


def _is_value(obj: object, memo: dict[int, bool]) -> bool:
    """Is ``obj`` immutable all the way down (so a copy may share it)?"""
    t = type(obj)
    if t in _ATOMS:
        return True
    known = memo.get(id(obj))
    if known is not None:
        return known
    memo[id(obj)] = False  # a cycle runs through something mutable
    if t is tuple or t is frozenset:
        result = all(_is_value(x, memo) for x in obj)  # type: ignore[attr-defined]
    elif dataclasses.is_dataclass(t) and t.__dataclass_params__.frozen:  # type: ignore[attr-defined]
        result = (not hasattr(obj, "__dict__")
                  and all(_is_value(getattr(obj, f.name), memo)
                          for f in dataclasses.fields(t)))
    else:
        result = False
    memo[id(obj)] = result
    return result


def _fields(obj: object) -> list[tuple[str, Any]]:
    """``obj``'s set slots, in class-hierarchy order (most derived class last)."""
    out = []
    for cls in reversed(type(obj).__mro__):
        for name in cls.__dict__.get("__slots__", ()):
            if name in ("__dict__", "__weakref__"):
                continue
            try:
                out.append((name, object.__getattribute__(obj, name)))
            except AttributeError:
                continue  # a slot never assigned stays unassigned in the copy
    return out


def _plain_setattr(t: type) -> bool:
    return t.__setattr__ is object.__setattr__  # type: ignore[comparison-overlap]


class _Compiler:
    """Turns one template into the source of a function that builds a copy of it.

    Statements come in phases, so that every object exists before anything refers to
    it, and hashing sees finished objects: create every mutable object empty; make the
    tuples and bound methods that hold them; fill the objects' fields; fill lists;
    fill dicts and sets last (a key's hash may depend on its fields)."""

    def __init__(self, preexisting: set[int]) -> None:
        self.preexisting = preexisting
        self.values: dict[int, bool] = {}
        self.names: dict[int, str] = {}
        self.ns: dict[str, Any] = {"_new": object.__new__, "_osa": object.__setattr__,
                                   "_method": types.MethodType, "_deque": collections.deque}
        self.pending: list[object] = []
        self.create: list[str] = []
        self.late: list[str] = []
        self.fill: list[str] = []
        self.fill_lists: list[str] = []
        self.fill_hashed: list[str] = []

    def shares(self, obj: object) -> bool:
        if id(obj) in self.preexisting:
            return True
        if type(obj) is types.FunctionType:
            return False  # made by the build: a closure over its state, maybe
        return isinstance(obj, _CODE) or _is_value(obj, self.values)

    def const(self, obj: object) -> str:
        name = self.names.get(id(obj))
        if name is None:
            name = self.names[id(obj)] = f"_c{len(self.names)}"
            self.ns[name] = obj
        return name

    def expr(self, obj: object) -> str:
        """An expression giving ``obj``'s counterpart in the copy."""
        t = type(obj)
        if t in _LITERALS:
            return repr(obj)
        name = self.names.get(id(obj))
        if name is not None:
            return name
        if t is types.GeneratorType:
            if obj.gi_frame is not None:  # type: ignore[attr-defined]
                raise SnapshotError(f"a suspended kernel path: {obj!r}")
            return self.const(obj)
        if self.shares(obj):
            return self.const(obj)
        if t is types.FunctionType:
            raise SnapshotError(f"a function made while building: {obj!r}")
        if t is tuple:
            items = "".join(f"{self.expr(x)}, " for x in obj)  # type: ignore[attr-defined]
            return self._late(obj, f"({items})")
        if t is types.MethodType:
            fn = self.const(obj.__func__)  # type: ignore[attr-defined]
            return self._late(obj, f"_method({fn}, {self.expr(obj.__self__)})")  # type: ignore[attr-defined]
        return self._mutable(obj, t)

    def _late(self, obj: object, source: str) -> str:
        name = self.names[id(obj)] = f"_t{len(self.names)}"
        self.late.append(f"{name} = {source}")
        return name

    def _mutable(self, obj: object, t: type) -> str:
        name = self.names[id(obj)] = f"_o{len(self.names)}"
        if t is list:
            self.create.append(f"{name} = []")
        elif t is dict:
            self.create.append(f"{name} = {{}}")
        elif t is set:
            self.create.append(f"{name} = set()")
        elif t is collections.deque:
            self.create.append(f"{name} = _deque((), {obj.maxlen!r})")  # type: ignore[attr-defined]
        elif (t.__module__.startswith("iomemfuzz.") and t.__new__ is object.__new__
              and not isinstance(obj, BaseException)):
            # One of the model's own classes, whose instances object.__new__ can make
            # (not a subclass of a builtin container or an exception).
            self.create.append(f"{name} = _new({self.const(t)})")
        else:
            raise SnapshotError(f"cannot copy a {t.__module__}.{t.__qualname__}")
        self.pending.append(obj)
        return name

    def compile(self, root: object) -> Callable[[], Any]:
        top = self.expr(root)
        while self.pending:
            self._fill(self.pending.pop())
        body = self.create + self.late + self.fill + self.fill_lists + self.fill_hashed
        source = "def build():\n" + "".join(f"    {line}\n" for line in body)
        source += f"    return {top}\n"
        exec(compile(source, f"<snapshot of {type(root).__name__}>", "exec"), self.ns)
        return self.ns["build"]  # type: ignore[no-any-return]

    def _fill(self, obj: object) -> None:
        name = self.names[id(obj)]
        t = type(obj)
        if t is list or t is collections.deque:
            if obj:
                items = ", ".join(self.expr(x) for x in obj)  # type: ignore[attr-defined]
                self.fill_lists.append(f"{name}.extend(({items},))")
            return
        if t is set:
            if obj:
                items = ", ".join(self.expr(x) for x in obj)  # type: ignore[attr-defined]
                self.fill_hashed.append(f"{name}.update(({items},))")
            return
        if t is dict:
            if obj:
                items = ", ".join(f"{self.expr(k)}: {self.expr(v)}"
                                  for k, v in obj.items())  # type: ignore[attr-defined]
                self.fill_hashed.append(f"{name}.update({{{items}}})")
            return
        plain = _plain_setattr(t)
        for field, value in _fields(obj):
            if plain:
                self.fill.append(f"{name}.{field} = {self.expr(value)}")
            else:
                self.fill.append(f"_osa({name}, {field!r}, {self.expr(value)})")
        attrs = getattr(obj, "__dict__", None)
        if attrs is not None:
            items = ", ".join(f"{k!r}: {self.expr(v)}" for k, v in attrs.items())
            self.fill.append(f"_osa({name}, '__dict__', {{{items}}})")


def _check_copy(template: object, copy: object, preexisting: set[int]) -> None:
    """Raise SnapshotError unless ``copy`` is a faithful copy of ``template``: the same
    graph, objects the build created replaced one for one, everything else shared."""
    compiler = _Compiler(preexisting)  # only for its sharing rule
    pairs: dict[int, object] = {}
    stack = [(template, copy, "kernel")]
    deferred_sets: list[tuple[set[Any], set[Any], str]] = []

    def fail(path: str, why: str) -> None:
        raise SnapshotError(f"copy differs at {path}: {why}")

    while stack:
        t_obj, c_obj, path = stack.pop()
        if type(t_obj) is not type(c_obj):
            fail(path, f"{type(c_obj).__name__} instead of {type(t_obj).__name__}")
        if type(t_obj) in _LITERALS:
            if t_obj != c_obj:
                fail(path, f"{c_obj!r} instead of {t_obj!r}")
            continue
        if type(t_obj) is types.GeneratorType or compiler.shares(t_obj):
            if t_obj is not c_obj:
                fail(path, "a shared object was copied")
            continue
        seen = pairs.get(id(t_obj))
        if seen is not None:
            if seen is not c_obj:
                fail(path, "one object became two")
            continue
        if t_obj is c_obj:
            fail(path, "the copy shares an object the build created")
        pairs[id(t_obj)] = c_obj
        if type(t_obj) in (list, tuple, collections.deque):
            if len(t_obj) != len(c_obj):
                fail(path, "length")
            stack.extend((a, b, f"{path}[{i}]")
                         for i, (a, b) in enumerate(zip(t_obj, c_obj, strict=True)))
        elif type(t_obj) is dict:
            if len(t_obj) != len(c_obj):
                fail(path, "length")
            for i, ((tk, tv), (ck, cv)) in enumerate(zip(t_obj.items(), c_obj.items(),
                                                         strict=True)):
                stack.append((tk, ck, f"{path}.key{i}"))
                stack.append((tv, cv, f"{path}[{tk!r}]"))
        elif type(t_obj) is set:
            deferred_sets.append((t_obj, c_obj, path))
        elif type(t_obj) is types.MethodType:
            if t_obj.__func__ is not c_obj.__func__:
                fail(path, "method")
            stack.append((t_obj.__self__, c_obj.__self__, f"{path}.__self__"))
        else:
            t_fields, c_fields = _fields(t_obj), _fields(c_obj)
            t_attrs = getattr(t_obj, "__dict__", {})
            c_attrs = getattr(c_obj, "__dict__", {})
            if [n for n, _ in t_fields] != [n for n, _ in c_fields] or \
                    list(t_attrs) != list(c_attrs):
                fail(path, "attribute names")
            stack.extend((a, b, f"{path}.{n}")
                         for (n, a), (_, b) in zip(t_fields, c_fields, strict=True))
            stack.extend((t_attrs[n], c_attrs[n], f"{path}.{n}") for n in t_attrs)
    for t_set, c_set, path in deferred_sets:
        mapped = {pairs.get(id(x), x) if not compiler.shares(x) else x for x in t_set}
        if len(mapped) != len(c_set) or any(x not in c_set for x in mapped):
            fail(path, "set members")


# Copy functions by (profile, machine, booted) value (both are frozen, hashable values;
# equal profiles build equal kernels), and by the objects' ids in front of that, because
# hashing a profile's thirty fields costs more than the lookup saves. An id entry holds
# its objects, so the ids cannot be reused while it is cached; the id cache is emptied
# when it grows (a caller that makes a new profile object per run), the value cache is
# bounded by the profiles and machines that exist. None: the kernel cannot be copied.
_Build = Callable[[], Kernel]
_BY_VALUE: dict[tuple[KernelProfile, Machine, bool], _Build | None] = {}
_BY_ID: dict[tuple[int, int, bool], tuple[_Build | None, KernelProfile, Machine]] = {}
_BY_ID_MAX = 64


def compile_kernel(profile: KernelProfile, machine: Machine, booted: bool) -> _Build:
    """Build one kernel as the template and return the function that copies it (checked
    against the template once). SnapshotError if it cannot be copied."""
    # A first build fills the module-level caches the model keeps (firmware maps,
    # parsed machine text), so that the template's build creates only kernel state.
    Kernel(profile, machine, booted=booted)
    before = gc.get_objects()  # held: no id below can be reused while we look
    preexisting = {id(o) for o in before}
    template = Kernel(profile, machine, booted=booted)
    build = copier(template, preexisting)
    del before
    return build


def copier(template: Any, preexisting: set[int]) -> Callable[[], Any]:
    """The function that copies ``template``, sharing the objects whose ids are in
    ``preexisting`` (which the caller keeps alive), checked once against the template.
    SnapshotError if ``template`` holds what a copy cannot reproduce."""
    build = _Compiler(preexisting).compile(template)
    try:
        copy = build()
    except Exception as e:  # a shape the compiler misjudged: refuse, do not crash
        raise SnapshotError(f"the copy could not be built: {e!r}") from e
    _check_copy(template, copy, preexisting)
    return build


def _lookup(profile: KernelProfile, machine: Machine, booted: bool) -> _Build | None:
    key = (profile, machine, booted)
    try:
        cached = key in _BY_VALUE
    except TypeError:
        return None  # an unhashable field: nothing to key a template by
    if not cached:
        try:
            _BY_VALUE[key] = compile_kernel(profile, machine, booted)
        except SnapshotError:
            _BY_VALUE[key] = None  # built from scratch every time instead (still exact)
    return _BY_VALUE[key]


def fresh_kernel(profile: KernelProfile | None = None, machine: Machine | None = None, *,
                 booted: bool = True) -> Kernel:
    """A kernel in exactly the state ``Kernel(profile, machine, booted=booted)`` builds,
    copied from a per-process template (see the module docstring)."""
    profile = profile or DEFAULT
    machine = machine or DEFAULT_MACHINE
    entry = _BY_ID.get((id(profile), id(machine), booted))
    if entry is None:
        if len(_BY_ID) >= _BY_ID_MAX:
            _BY_ID.clear()
        entry = (_lookup(profile, machine, booted), profile, machine)
        _BY_ID[id(profile), id(machine), booted] = entry
    build = entry[0]
    return build() if build is not None else Kernel(profile, machine, booted=booted)
