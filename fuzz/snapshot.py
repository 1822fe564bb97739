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

**What a copy shares.** Everything a run could change is the copy's own. Shared are: what
existed before the template was built (the profile, the machine, module-level tables and
sentinels such as ``WOULD_BLOCK``, functions, classes), as a kernel built from scratch
shares them; immutable values the build made (numbers, strings, tuples and frozen value
objects made of those, such as the boot's Events); and the generators of paths that
have finished (nothing can resume them). A bound method is rebuilt around the copy's own
object. What cannot be copied faithfully, a suspended generator, a function or class
made during the build, an object of a type the compiler does not know, makes the snapshot
refuse (:class:`SnapshotError`) rather than share it; the caller then gets a kernel built
from scratch, with a warning, since every run then pays for the build again.

**Checked, not assumed.** The first copy of every template is compared with the template
object by object (:func:`_check_copy`): every object the compiler copied maps to exactly
its copy, with the same type, values, fields, element order and sharing, set members
included. A model change that stores state the compiler does not know how to copy fails
there instead of leaking state from one run into the next, and
tests/unit/test_snapshot.py builds and checks every profile on every machine.

It lives in fuzz/, beside the executor, not in model/: it models no kernel function, and
the fuzz targets instrument only the model, where coverage says something about the
kernel's state.
"""

from __future__ import annotations

import collections
import dataclasses
import gc
import sys
import types
import warnings
from collections.abc import Callable
from typing import Any

from iomemfuzz.fuzz.ledger import watched_kernel
from iomemfuzz.model.kernel import Kernel
from iomemfuzz.model.machine import DEFAULT_MACHINE, Machine
from iomemfuzz.model.profile import DEFAULT, KernelProfile

# Values written into the generated source as literals.
_LITERALS = (int, str, bool, type(None))
# Immutable leaf types: shared, never copied.
_ATOMS = frozenset({int, str, bool, float, complex, bytes, type(None), range})
# Unbound code: shared (a class or a function is shared only if it existed before the
# build, a bound method is rebuilt around the copy's object).
_UNBOUND = (types.MethodDescriptorType, types.WrapperDescriptorType, types.ModuleType)
_MISSING = object()
_HEAPTYPE = 1 << 9  # Py_TPFLAGS_HEAPTYPE: a class defined by a class statement


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
        names = [f.name for f in dataclasses.fields(t)]
        # Only the dataclass's own fields, all set, all values: a __dict__ or a slot of
        # a base class could hold anything.
        result = (not hasattr(obj, "__dict__") and [n for n, _ in _fields(obj)] == names
                  and all(_is_value(getattr(obj, n, _MISSING), memo) for n in names))
    else:
        result = False
    memo[id(obj)] = result
    return result


def _fields(obj: object) -> list[tuple[str, Any]]:
    """``obj``'s set slots, in class-hierarchy order (most derived class last)."""
    out = []
    for cls in reversed(type(obj).__mro__):
        slots = cls.__dict__.get("__slots__", ())
        for name in (slots,) if isinstance(slots, str) else slots:
            if name in ("__dict__", "__weakref__"):
                continue
            if name.startswith("__") and not name.endswith("__"):
                name = f"_{cls.__name__.lstrip('_')}{name}"  # a private slot's real name
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
        self.copied: dict[str, object] = {}  # name in the source -> template object
        self.ns: dict[str, Any] = {"_new": object.__new__, "_osa": object.__setattr__,
                                   "_method": types.MethodType, "_deque": collections.deque}
        self.pending: list[object] = []
        self.create: list[str] = []
        self.late: list[str] = []
        self.fill: list[str] = []
        self.fill_lists: list[str] = []
        self.fill_hashed: list[str] = []

    def shares(self, obj: object) -> bool:
        """Is ``obj`` shared by the copies rather than copied?"""
        if id(obj) in self.preexisting:
            return True
        t = type(obj)
        if t is types.FunctionType or isinstance(obj, type):
            return False  # made by the build: it may close over the build's state
        if t is types.BuiltinFunctionType:  # a bound builtin, e.g. some_list.append
            owner = obj.__self__  # type: ignore[attr-defined]
            return owner is None or type(owner) is types.ModuleType or self.shares(owner)
        if t is types.GeneratorType:
            return obj.gi_frame is None  # type: ignore[attr-defined]
        return isinstance(obj, _UNBOUND) or _is_value(obj, self.values)

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
        if self.shares(obj):
            return self.const(obj)
        if t is types.GeneratorType:
            raise SnapshotError(f"a suspended kernel path: {obj!r}")
        if t is types.FunctionType or isinstance(obj, type):
            raise SnapshotError(f"a function or class made while building: {obj!r}")
        if t is tuple:
            items = "".join(f"{self.expr(x)}, " for x in obj)  # type: ignore[attr-defined]
            return self._late(obj, f"({items})")
        if t is types.MethodType:
            fn = self.const(obj.__func__)  # type: ignore[attr-defined]
            return self._late(obj, f"_method({fn}, {self.expr(obj.__self__)})")  # type: ignore[attr-defined]
        if t is types.BuiltinFunctionType:
            owner = self.expr(obj.__self__)  # type: ignore[attr-defined]
            return self._late(obj, f"{owner}.{obj.__name__}")  # type: ignore[attr-defined]
        return self._mutable(obj, t)

    def _late(self, obj: object, source: str) -> str:
        name = self.names[id(obj)] = f"_t{len(self.names)}"
        self.copied[name] = obj
        self.late.append(f"{name} = {source}")
        return name

    def _mutable(self, obj: object, t: type) -> str:
        name = self.names[id(obj)] = f"_o{len(self.names)}"
        self.copied[name] = obj
        if t is list:
            self.create.append(f"{name} = []")
        elif t is dict:
            self.create.append(f"{name} = {{}}")
        elif t is set:
            self.create.append(f"{name} = set()")
        elif t is collections.deque:
            self.create.append(f"{name} = _deque((), {obj.maxlen!r})")  # type: ignore[attr-defined]
        elif (t.__flags__ & _HEAPTYPE and t.__new__ is object.__new__
              and not isinstance(obj, BaseException)):
            # A class written in Python whose instances object.__new__ makes (not a
            # subclass of a builtin container, not an exception): its state is its
            # slots and its __dict__, which _fill copies.
            self.create.append(f"{name} = _new({self.const(t)})")
        else:
            raise SnapshotError(f"cannot copy a {t.__module__}.{t.__qualname__}")
        self.pending.append(obj)
        return name

    def compile(self, root: object) -> Callable[..., Any]:
        """``build()`` -> a copy of ``root``; ``build(True)`` -> (the copy, every copied
        object's counterpart by its name in the source), for :func:`_check_copy`."""
        top = self.expr(root)
        while self.pending:
            self._fill(self.pending.pop())
        body = self.create + self.late + self.fill + self.fill_lists + self.fill_hashed
        source = "def build(_check=False):\n" + "".join(f"    {line}\n" for line in body)
        source += f"    return ({top}, locals()) if _check else {top}\n"
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


def _check_copy(template: object, copy: object, counterparts: dict[int, object]) -> None:
    """Raise SnapshotError unless ``copy`` is a faithful copy of ``template``: every
    object the compiler copied (``counterparts``: template object id -> its copy) is
    replaced by exactly its counterpart, with the same type, values, fields and element
    order, and every other object is the template's own."""
    visited: set[int] = set()
    stack = [(template, copy, "kernel")]

    def fail(path: str, why: str) -> None:
        raise SnapshotError(f"copy differs at {path}: {why}")

    while stack:
        t_obj, c_obj, path = stack.pop()
        t = type(t_obj)
        if t is not type(c_obj):
            fail(path, f"{type(c_obj).__name__} instead of {t.__name__}")
        if t in _LITERALS:
            if t_obj != c_obj:
                fail(path, f"{c_obj!r} instead of {t_obj!r}")
            continue
        want = counterparts.get(id(t_obj), t_obj)
        if c_obj is not want:
            fail(path, "the copy shares an object the build created" if c_obj is t_obj
                 else "a shared object was copied" if want is t_obj
                 else "not this object's counterpart")
        if want is t_obj or id(t_obj) in visited:
            continue
        visited.add(id(t_obj))
        if t in (list, tuple, collections.deque):
            if len(t_obj) != len(c_obj):
                fail(path, "length")
            stack.extend((a, b, f"{path}[{i}]")
                         for i, (a, b) in enumerate(zip(t_obj, c_obj, strict=True)))
        elif t is dict:
            if len(t_obj) != len(c_obj):
                fail(path, "length")
            for i, ((tk, tv), (ck, cv)) in enumerate(zip(t_obj.items(), c_obj.items(),
                                                         strict=True)):
                stack.append((tk, ck, f"{path}.key{i}"))
                stack.append((tv, cv, f"{path}[{tk!r}]"))
        elif t is set:
            members = [counterparts.get(id(x), x) for x in t_obj]
            if len(t_obj) != len(c_obj) or any(m not in c_obj for m in members):
                fail(path, "members")
            # A set of values iterates in an order a scratch build reproduces, and the
            # copy must too; a set of objects hashed by identity iterates in an order no
            # two builds share, so nothing can depend on it.
            if all(id(x) not in counterparts for x in t_obj) and members != list(c_obj):
                fail(path, "iteration order")
            stack.extend((x, m, f"{path}{{{i}}}") for i, (x, m) in enumerate(zip(
                t_obj, members, strict=True)))
        elif t is types.MethodType:
            if t_obj.__func__ is not c_obj.__func__:
                fail(path, "method")
            stack.append((t_obj.__self__, c_obj.__self__, f"{path}.__self__"))
        elif t is types.BuiltinFunctionType:
            if t_obj.__name__ != c_obj.__name__:
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
    """Build the kernel twice (the first fills the module-level caches the model keeps,
    firmware maps and parsed machine text, so that the second, the template, creates
    only kernel state) and return the checked function that copies the template.
    SnapshotError if it cannot be copied."""
    watched_kernel(profile, machine, booted)
    # What exists now, held so that no id below can be reused while we look: the objects
    # the collector tracks, and the globals of every module and class (a dict of plain
    # values, such as errno.NAMES, is not tracked by the collector).
    before = gc.get_objects()
    before += _globals()
    preexisting = {id(o) for o in before}
    template = watched_kernel(profile, machine, booted)
    build = copier(template, preexisting)
    del before
    return build


def _globals() -> list[object]:
    """Every value a module or a module's class binds to a name."""
    out: list[object] = []
    for module in list(sys.modules.values()):
        for value in list(getattr(module, "__dict__", {}).values()):
            out.append(value)
            if isinstance(value, type):
                out.extend(vars(value).values())
    return out


def copier(template: Any, preexisting: set[int]) -> Callable[[], Any]:
    """The function that copies ``template``, sharing the objects whose ids are in
    ``preexisting`` (which the caller keeps alive), checked once against the template.
    SnapshotError if ``template`` holds what a copy cannot reproduce."""
    compiler = _Compiler(preexisting)
    try:
        build = compiler.compile(template)
        copy, names = build(True)
    except SnapshotError:
        raise
    except Exception as e:  # a shape the compiler misjudged: refuse, do not crash
        raise SnapshotError(f"the copy could not be made: {e!r}") from e
    counterparts = {id(obj): names[name] for name, obj in compiler.copied.items()}
    _check_copy(template, copy, counterparts)
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
        except SnapshotError as e:
            _BY_VALUE[key] = None  # built from scratch every time instead (still exact)
            warnings.warn(f"iomemfuzz: the {'booted' if booted else 'unbooted'} kernel of "
                          f"{profile.name} on {machine.name} cannot be copied, so every "
                          f"run builds it ({e})", RuntimeWarning, stacklevel=3)
    return _BY_VALUE[key]


def fresh_kernel(profile: KernelProfile | None = None, machine: Machine | None = None, *,
                 booted: bool = True) -> Kernel:
    """A kernel in exactly the state ``watched_kernel(profile, machine, booted)`` builds,
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
    return build() if build is not None else watched_kernel(profile, machine, booted)
