"""Operations: one small frozen dataclass per kernel operation, and the table of them.

An operation is data (its fields) plus ``run(ctx)``, which calls exactly one kernel entry
point and translates the answer into an :class:`Outcome`. Fields are declared with
:func:`arg`, which records the field's *kind* (how it is printed, parsed, decoded and
shrunk) and its *simplest* value, which is also the dataclass default: ``Op()`` is the
simplest instance, and the minimizer resets fields towards it.

Adding an operation is one class in a family module plus its name in ``FAMILIES``; the
Program parser, formatter, decoder, strategies, minimizer and the generated operation list
in ``corpus/README.md`` all read the table built here.
"""

from __future__ import annotations

import dataclasses
import enum
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from iomemfuzz.fuzz.finding import DRIVER, PLATFORM, PROCESS, SCHEDULE
from iomemfuzz.model import errno


class Kind(enum.Enum):
    """How a field is written in Program text and what values it takes."""

    ADDR = "addr"  # u64 physical address, printed in hex
    SIZE = "size"  # u64 length, printed in hex
    INT = "int"  # small integer (index, pfn, count), printed in decimal
    FLAGS = "flags"  # IORESOURCE_* bits, printed symbolically ("MEM|BUSY")
    CHOICE = "choice"  # one identifier out of ``choices``
    NAME = "name"  # a quoted string ("drv")
    HANDLE = "handle"  # a reference to an earlier line's result: rN, or nil
    NODE = "node"  # a resource parent: a root (iomem/ioport) or a handle


U64_MAX = (1 << 64) - 1
# Who a line that plays an in-kernel caller (a driver, bus or hotplug code) acts for,
# unless it names a driver: the claim ledger (fuzz/ledger.py) keys beliefs by it.
PROGRAM = "program"


@dataclass(frozen=True, slots=True)
class Arg:
    """The declaration of one operation field."""

    kind: Kind
    simplest: Any
    choices: tuple[str, ...] = ()
    doc: str = ""
    # Inclusive bounds for numeric kinds (ints outside are a syntax error).
    lo: int = 0
    hi: int = U64_MAX


def arg(kind: Kind, simplest: Any, *, choices: tuple[str, ...] = (), doc: str = "",
        lo: int = 0, hi: int = U64_MAX) -> Any:
    """Declare an operation field; its default is its simplest value."""
    return dataclasses.field(
        default=simplest,
        metadata={"arg": Arg(kind, simplest, choices, doc, lo, hi)},
    )


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one operation returned, as Program text shows it.

    ``status`` is "ok", an errno name ("EBUSY"), "SIGBUS", or "blocked" (the kernel path
    is parked, e.g. a MUXED wait). ``value`` is the canonical text of a returned value
    ("0x2", "MIXED", "ram"), only for successful operations that return one."""

    status: str = "ok"
    value: str | None = None

    @property
    def label(self) -> str:
        if self.value is not None:
            return f"= {self.value}"
        return self.status

    @property
    def ok(self) -> bool:
        return self.status == "ok"


OK = Outcome()
BLOCKED = Outcome("blocked")
# The line would break the contract of the in-kernel caller it plays (fuzz/contract.py):
# in the default mode it does not run at all.
ILLEGAL = Outcome("illegal")
SIGBUS = Outcome("SIGBUS")
# A handle that names nothing (its line was deleted, or its creator failed).
EBADF = Outcome("EBADF")


def errno_outcome(ret: int) -> Outcome:
    """A kernel int return (0 or -errno) as an Outcome."""
    return OK if ret >= 0 else Outcome(errno.errname(ret))


def value_outcome(value: object) -> Outcome:
    """A successful return carrying a value, printed canonically."""
    if isinstance(value, bool):
        return Outcome("ok", "true" if value else "false")
    if isinstance(value, int):
        return Outcome("ok", hex(value))
    return Outcome("ok", str(value))


class Context:
    """What an operation sees while it runs: the kernel and the handle table.

    The executor builds one per run. ``resolve`` turns a handle into the object its
    creating line bound, or None when the handle is nil, unbound or bound to nothing;
    ``bind`` records what this line's handle refers to."""

    __slots__ = ("_bound", "handles", "kernel", "line")

    def __init__(self, kernel: Any) -> None:
        self.kernel = kernel
        self.handles: list[object | None] = []
        self.line = 0
        self._bound: object | None = None

    def resolve(self, handle: int | None) -> object | None:
        if handle is None or handle >= len(self.handles):
            return None
        return self.handles[handle]

    def node(self, value: str | int | None) -> object | None:
        """Resolve a NODE field: a root name or a handle."""
        if value == "iomem":
            return self.kernel.roots[0]
        if value == "ioport":
            return self.kernel.roots[1]
        if isinstance(value, int):
            return self.resolve(value)
        return None

    def bind(self, obj: object | None) -> None:
        self._bound = obj


class Op:
    """Base of every operation. Subclasses are frozen slotted dataclasses."""

    __slots__ = ()

    NAME: ClassVar[str]
    BINDS: ClassVar[bool] = False  # the line creates a handle (rN = ...)
    FAMILY: ClassVar[str] = ""
    # The line changes which kernel paths run (spawn/step/boot): the minimizer treats it
    # as a schedule line.
    SCHEDULE: ClassVar[bool] = False
    # The Program must start before boot (the executor does not pre-boot the kernel).
    CONTROLS_BOOT: ClassVar[bool] = False
    # Who the line acts for (fuzz/finding.py: PROCESS, DRIVER, PLATFORM, SCHEDULE):
    # decides whose fault a finding after it is, and whether the driver contract binds.
    WHO: ClassVar[str] = PROCESS
    DOC: ClassVar[str] = ""

    def run(self, ctx: Context) -> Outcome:  # pragma: no cover - abstract
        raise TypeError(f"{type(self).__name__} does not define run()")

    @classmethod
    def args(cls) -> tuple[tuple[str, Arg], ...]:
        return _ARGS[cls]


_ARGS: dict[type, tuple[tuple[str, Arg], ...]] = {}
REGISTRY: dict[str, type[Op]] = {}

# Families are modules of this package, imported in this order; the order fixes the
# decoder's numbering of operations, so append new families at the end.
FAMILIES: tuple[str, ...] = ("tree", "mapping", "sched", "pci", "driver", "observe")
# Who a family's lines act for unless an operation says otherwise: the tree family is
# the in-kernel resource API, mapping is system calls, pci and driver are sysfs writes
# (and insmod/rmmod), observe is reads.
FAMILY_WHO = {"tree": DRIVER, "mapping": PROCESS, "sched": SCHEDULE, "pci": PROCESS,
              "driver": PROCESS, "observe": PROCESS}
WHO_VALUES = (PROCESS, DRIVER, PLATFORM, SCHEDULE)


def op(name: str, *, binds: bool = False, family: str = "", schedule: bool = False,
       controls_boot: bool = False, who: str = "") -> Callable[[type], type[Op]]:
    """Class decorator: make a frozen dataclass and register it under ``name``."""

    def wrap(cls: type) -> type[Op]:
        if name in REGISTRY:
            raise ValueError(f"operation {name!r} registered twice")
        cls = dataclass(frozen=True, slots=True)(cls)
        cls.NAME = name
        cls.BINDS = binds
        cls.FAMILY = family
        cls.SCHEDULE = schedule
        cls.CONTROLS_BOOT = controls_boot
        cls.WHO = who or FAMILY_WHO.get(family, PROCESS)
        if cls.WHO not in WHO_VALUES:
            raise ValueError(f"operation {name!r}: who={cls.WHO!r}")
        cls.DOC = " ".join((cls.__doc__ or "").split())
        declared = []
        for f in dataclasses.fields(cls):
            if "arg" not in f.metadata:
                raise TypeError(f"{name}.{f.name} is not declared with arg()")
            declared.append((f.name, f.metadata["arg"]))
        _ARGS[cls] = tuple(declared)
        REGISTRY[name] = cls
        return cls

    return wrap


def load_families() -> dict[str, type[Op]]:
    """Import every family module (idempotent) and return the registry."""
    for family in FAMILIES:
        importlib.import_module(f"{__name__}.{family}")
    return REGISTRY


def ordered_ops() -> tuple[type[Op], ...]:
    """Every operation class in a fixed order (family order, then definition order)."""
    load_families()
    # REGISTRY fills in import order, and a caller may import one family module before
    # load_families() runs (the confirm runners import the driver family): sort, stably.
    # A family registered from elsewhere (a test's) comes after the shipped ones.
    rank = {family: i for i, family in enumerate(FAMILIES)}
    return tuple(sorted(REGISTRY.values(),
                        key=lambda cls: rank.get(cls.FAMILY, len(FAMILIES))))


def describe_ops() -> str:
    """The operation list as Markdown, generated from the table (for corpus/README.md)."""
    rows = ["| operation | family | creates handle | arguments (default) | what it does |",
            "|---|---|---|---|---|"]
    for cls in ordered_ops():
        args = ", ".join(f"`{name}`: {a.kind.value} ({_default_text(a)})"
                         for name, a in cls.args()) or "—"
        rows.append(f"| `{cls.NAME}` | {cls.FAMILY} | {'yes' if cls.BINDS else ''} | "
                    f"{args} | {cls.DOC.replace('|', '/')} |")
    return "\n".join(rows) + "\n"


def _default_text(a: Arg) -> str:
    value = a.simplest
    if value is None:
        return "nil"
    if a.kind in (Kind.ADDR, Kind.SIZE):
        return hex(value)
    if a.kind is Kind.NAME:
        return f'"{value}"'
    if a.kind is Kind.FLAGS:
        from iomemfuzz.fuzz.flags import format_flags

        return format_flags(value)
    return str(value)
