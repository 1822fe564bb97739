"""``iomemfuzz explore``: every Program up to K operations over a small domain, breadth first.

Where the fuzzers sample, this enumerates: every Program of at most ``depth`` operations
whose values come from :class:`Domain`, on one profile and machine, with the findings of
each. Two ideas keep it finite and small:

* **A typed, state-drawn domain.** At each point the candidate operations are drawn from
  the kernel state the prefix reached, as syzkaller's resources are: an operation that
  consumes a handle (a file, a mapping, a resource, a task) is offered only with handles
  of the right producer; addresses are the addresses the prefix used (claim edges) and
  a few *anchors* of the state (the legacy hole below 1 MiB, a device BAR no driver
  holds, a free MMIO page, low RAM), an end field is its start's page end, sizes are a
  page and a part of one. Other fields keep their simplest value, except the first
  choice, name or flags field of an operation, which takes each of its values.
  ``boot_to`` comes only first (a Program that controls boot starts before boot).
* **State hashing** (TLC's fingerprints). Programs reaching the same state are extended
  once: the state is what ``iomemfuzz show`` prints (/proc/iomem and /proc/ioports, PCI
  devices and their files, /proc/bus/pci, pending tasks and where they are parked, user
  mappings), the claim ledger and what each handle names. Every Program is still *run*
  and checked; only its extensions are shared.

Interleavings are Program lines too (``mode=spawn`` operations start tasks, ``step``
lines run them), so the *preemption bound* (CHESS) is a bound on the ``step`` lines of a
Program: ``--preemptions 2`` by default.

It runs on ``--jobs N`` processes by splitting each level's frontier, writes one finding
file per new signature as soon as it is met, keeps a checkpoint after every level
(``--resume``), and ends with a statement of what was covered.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import multiprocessing
import random
import re
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from iomemfuzz.fuzz.executor import Execution, make_kernel
from iomemfuzz.fuzz.ledger import ledger
from iomemfuzz.fuzz.ops import Arg, Kind, Op, ordered_ops
from iomemfuzz.fuzz.oracles import ORACLES
from iomemfuzz.fuzz.program import Line, Program
from iomemfuzz.fuzz.program_format import format_program
from iomemfuzz.fuzz.program_parse import parse_program
from iomemfuzz.model.profile import KernelProfile, resolve
from iomemfuzz.model.resource_check import descendants, preorder

PAGE = 0x1000
# HANDLE fields without a producer list take handles bound to objects of this type.
HANDLE_TYPES = {"task": "Task", "res": "Resource", "vma": "Vma", "file": "File",
                "proc": "Process"}
# Choices, names and flags an operation varies: its first field of each kind.
VARIED = frozenset({Kind.CHOICE, Kind.NAME, Kind.FLAGS})
MAX_NAMES = 3
BUSY = 0x80000000


# --- the domain ---------------------------------------------------------------------------


def anchors(kernel: Any, limit: int) -> list[int]:
    """Addresses worth trying in this state, most telling first: the legacy window below
    1 MiB (MMIO no driver claims yet), a device BAR no driver holds, a free MMIO page, a
    RAM page.

    The BAR comes before the free page: a claim inside a device's BAR is where a claim
    meets a device's life (its removal frees the BAR under the claim, BD9) and a BAR
    mapping (B14), while a claim of free MMIO meets nothing a claim at the simplest
    address would not. A BAR a driver already holds refuses every claim, so the first
    one with no busy node inside is taken."""
    bar = hole = free = ram = None
    top = []
    for node, depth in preorder(kernel.resources.iomem_resource):
        if depth == 0:  # preorder counts the root's children as depth 0
            top.append(node)
        name = node.name or ""
        if (bar is None and depth >= 1 and len(name) == 12 and name[4] == ":"
                and name[7] == ":" and not node.flags & BUSY
                and not any(d.flags & BUSY for d in descendants(node))):
            bar = node.start  # "0000:00:02.0": a BAR of a device under its host window
        if ram is None and name == "System RAM" and node.start >= PAGE:
            ram = node.start
    for node in top:
        # The legacy window below 1 MiB (0xa0000 on PCs): MMIO no driver claims yet.
        if hole is None and node.end < 0x100000 and not node.flags & BUSY:
            hole = node.start
    for a, b in itertools.pairwise(top):
        if free is None and a.end + 1 < b.start and a.end + 1 >= 0xC0000000:
            free = (a.end + 1 + PAGE - 1) & ~(PAGE - 1)
    if hole is None:
        hole = 0xA0000
    if free is None:
        free = 0xFE000000
    ram = PAGE if ram is None else max(ram, PAGE)
    ordered = [hole, bar, free, ram]
    return [a for a in dict.fromkeys(ordered) if a is not None][:limit]


@dataclass(frozen=True)
class Domain:
    """What ``explore`` enumerates: which operations, how many state anchors, and the
    bounds on depth and on ``step`` lines (preemptions)."""

    ops: tuple[str, ...] = ()  # operation names; empty: every registered operation
    # The defaults keep depth 3 on v6.1-deb within 10 minutes on two cores; the
    # structure mutator draws single operations from a wider one (fuzz/mutate.py).
    # Two anchors (the legacy window and a BAR no driver holds) and no reuse of the
    # prefix's own addresses: a claim and a later access meet through the anchors they
    # share, and a BAR anchor costs what a reused address did (8,263 prefixes at depth 3
    # against 7,756) while a claim inside a device's BAR is a route of its own (BD9).
    values: int = 2  # state anchors per address field (besides the prefix's addresses)
    recent: int = 0  # addresses of the prefix reused, most recent first
    sizes: tuple[int, ...] = (PAGE,)
    preemptions: int = 2
    addresses: tuple[int, ...] = ()  # fixed anchors instead of the state's (a slice)
    vary: bool = True  # the first choice, name and flags field takes each of its values

    def classes(self) -> tuple[type[Op], ...]:
        every = ordered_ops()
        if not self.ops:
            return every
        names = set(self.ops)
        return tuple(c for c in every if c.NAME in names)

    def describe(self) -> str:
        ops = f"{len(self.classes())} operations" if not self.ops else ", ".join(self.ops)
        where = (", ".join(hex(a) for a in self.addresses) if self.addresses
                 else f"{self.values} state anchors")
        sizes = ", ".join(hex(s) for s in self.sizes) or "the simplest"
        return (f"{ops}; addresses: the simplest, the prefix's {self.recent} latest and "
                f"{where}; sizes {sizes}; {'each' if self.vary else 'the simplest'} "
                f"choice, name and flags; at most {self.preemptions} step lines")


def _handles(name: str, a: Arg, handles: list[Any], binders: list[str]) -> list[Any]:
    """The handles a HANDLE field may take: those of its producers, latest first."""
    if a.choices:
        ok = [h for h, b in enumerate(binders) if b in a.choices and handles[h] is not None]
    else:
        want = HANDLE_TYPES.get(name)
        ok = [h for h, obj in enumerate(handles) if obj is not None
              and (want is None or type(obj).__name__ == want)]
    # ``proc`` is optional (nil: the default process), so nil stays a value there.
    return ([None] if name == "proc" else []) + ok[::-1]


@dataclass
class View:
    """What the domain draws from after a prefix: the usable handles and their
    producers, the addresses to try (the prefix's latest, then the anchors), the names
    the prefix gave each name field (a later ``open_resource(dev=...)`` takes the device
    a ``hotadd`` inserted), and how many step lines the prefix has."""

    handles: list[Any]
    binders: list[str]
    addrs: list[int]
    names: dict[str, str]
    steps: int
    started: bool  # the prefix is not empty (boot_to may only come first)

    @classmethod
    def of(cls, ex: Execution, prefix: Sequence[Op], domain: Domain) -> View:
        fixed = domain.addresses or anchors(ex.kernel, domain.values)
        return cls(_usable(ex), [type(o).NAME for o in prefix if type(o).BINDS],
                   list(dict.fromkeys([*_recent(prefix, domain.recent), *fixed])),
                   _names(prefix), sum(1 for o in prefix if type(o).NAME == "step"),
                   bool(prefix))

    def allows(self, cls: type[Op], domain: Domain) -> bool:
        if cls.CONTROLS_BOOT and self.started:
            return False  # boot_to starts a Program before boot: first line only
        return not (cls.NAME == "step" and self.steps >= domain.preemptions)


def _field_options(cls: type[Op], view: View, domain: Domain
                   ) -> list[tuple[str, list[Any] | str]]:
    """Per field, its values, or the name of the start field it ends a page after."""
    out: list[tuple[str, list[Any] | str]] = []
    start: str | None = None
    varied: set[Kind] = set()
    sized = False
    for name, a in cls.args():
        kind = a.kind
        if kind is Kind.ADDR:
            if start is None:
                start = name
                values = [a.simplest, *view.addrs]
                out.append((name, [v for v in dict.fromkeys(values) if a.lo <= v <= a.hi]
                            or [a.simplest]))
            else:
                out.append((name, start))
        elif kind is Kind.SIZE and not sized:
            sized = True
            sizes = dict.fromkeys((a.simplest, *domain.sizes))
            out.append((name, [v for v in sizes if a.lo <= v <= a.hi]))
        elif kind is Kind.HANDLE:
            out.append((name, _handles(name, a, view.handles, view.binders)))
        elif kind in VARIED and kind not in varied and domain.vary:
            varied.add(kind)
            if kind is Kind.CHOICE:
                values = [a.simplest, *(c for c in a.choices if c != a.simplest)]
            elif kind is Kind.NAME:
                shared = [view.names[name]] if name in view.names else []
                values = list(dict.fromkeys([a.simplest, *shared, *a.choices]))[:MAX_NAMES]
            else:
                values = list(dict.fromkeys([a.simplest, a.simplest | BUSY]))
            out.append((name, values))
        else:
            out.append((name, [a.simplest]))
    return out


def _usable(ex: Execution) -> list[Any]:
    """The handle table with nil for each handle whose line failed.

    A handle is offered only when its line succeeded (or parked, for a task): a struct
    whose request failed was never linked, and releasing it is no driver's code
    (fuzz/contract.py's rule; generating only from producers keeps to it)."""
    binding = (s for s in ex.steps if s.op is not None and type(s.op).BINDS)
    return [h if step.outcome is not None and step.outcome.status in ("ok", "blocked")
            else None for h, step in zip(ex.ctx.handles, binding, strict=False)]


def _names(prefix: Sequence[Op]) -> dict[str, str]:
    """Per name field (``dev``, ``driver`` ...), the latest value a line gave it that is
    not the field's simplest."""
    out: dict[str, str] = {}
    for o in prefix:
        for name, a in type(o).args():
            value = getattr(o, name)
            if a.kind is Kind.NAME and value != a.simplest:
                out[name] = value
    return out


def _recent(prefix: Sequence[Op], n: int) -> list[int]:
    """The first address of each line, latest first, at most ``n`` distinct."""
    addrs: list[int] = []
    for o in reversed(prefix):
        if len(addrs) >= n:
            break
        for name, a in type(o).args():
            if a.kind is Kind.ADDR:
                v = getattr(o, name)
                if v not in addrs:
                    addrs.append(v)
                break
    return addrs


def candidates(ex: Execution, prefix: Sequence[Op], domain: Domain) -> Iterator[Op]:
    """Every operation the domain offers after ``prefix`` (run into ``ex``)."""
    view = View.of(ex, prefix, domain)
    for cls in domain.classes():
        if view.allows(cls, domain):
            yield from _variants(cls, view, domain)


def draw(ex: Execution, prefix: Sequence[Op], domain: Domain, rng: random.Random
         ) -> Op | None:
    """One operation of the domain after ``prefix``, at random: an operation first (each
    as likely), then one of its variants. None when nothing applies."""
    view = View.of(ex, prefix, domain)
    classes = [c for c in domain.classes() if view.allows(c, domain)]
    rng.shuffle(classes)
    for cls in classes[:8]:
        variants = list(_variants(cls, view, domain))
        if variants:
            return rng.choice(variants)
    return None


def _variants(cls: type[Op], view: View, domain: Domain) -> Iterator[Op]:
    partial: list[dict[str, Any]] = [{}]
    for name, options in _field_options(cls, view, domain):
        if isinstance(options, str):  # an end: its start's page end (when in range)
            hi = dict(cls.args())[name].hi
            partial = [{**v, name: min(v[options] + PAGE - 1, hi)} for v in partial]
        else:
            partial = [{**v, name: o} for v in partial for o in options]
        if not partial:
            return  # a consumer with no producer
    for values in partial:
        try:
            yield cls(**values)
        except (TypeError, ValueError):
            continue


# --- running and hashing -------------------------------------------------------------------


_ADDRESS = re.compile(r" at 0x[0-9a-f]+")


def _stable(obj: Any) -> str:
    """``repr`` without object addresses (default reprs print them; they differ per run)."""
    return _ADDRESS.sub("", repr(obj))


def _handle_key(obj: Any) -> str:
    return f"{type(obj).__name__}:{_stable(obj)}" if obj is not None else "-"


def state_key(ex: Execution, prefix: Sequence[Op], domain: Domain) -> str:
    """The fingerprint of the state ``ex`` reached (before its end-of-run drain): the
    kernel's, the claim ledger's, and everything :func:`candidates` reads (the usable
    handles and their producers, the recent addresses, the step lines so far), so two
    Programs with one fingerprint have the same extensions."""
    kernel = ex.kernel
    parts = [f"{k}\n{v}" for k, v in sorted(kernel.describe().items())]
    claims = ledger(kernel).claims
    parts.append(repr(sorted(_stable(c) for c in claims.values())))
    binders = [type(o).NAME for o in prefix if type(o).BINDS]
    # The handles as a multiset: Programs that made the same objects in another order
    # have the same extensions up to renaming their handles (and so the same findings).
    parts.append("|".join(sorted(f"{b}={_handle_key(h)}"
                                 for b, h in zip(binders, _usable(ex), strict=False))))
    parts.append(repr(_recent(prefix, domain.recent)))
    parts.append(repr(sorted(_names(prefix).items())))
    parts.append(str(sum(1 for o in prefix if type(o).NAME == "step")))
    parts.append(str(kernel.booted))
    return hashlib.blake2b("\n".join(parts).encode(), digest_size=16).hexdigest()


@dataclass
class Outcome:
    """One Program run: its signatures, and its state's fingerprint (None at the last
    level, where nothing is extended)."""

    signatures: tuple[str, ...]
    key: str | None


def run_program(ops: Sequence[Op], profile: Any, program: Program,
                domain: Domain | None) -> Outcome:
    """Run ``ops``; with ``domain``, fingerprint the state before the end-of-run drain."""
    ex = Execution(profile, make_kernel(profile, program, ops), ORACLES, False)
    for o in ops:
        ex.step(o)
    key = state_key(ex, ops, domain) if domain is not None else None
    trace = ex.finish()
    return Outcome(trace.signatures, key)


def prefix_execution(ops: Sequence[Op], profile: Any, program: Program) -> Execution:
    """``ops`` run on a fresh kernel (``program`` gives the machine), not finished."""
    ex = Execution(profile, make_kernel(profile, program, ops), ORACLES, False)
    for o in ops:
        ex.step(o)
    return ex


def expand(prefix: tuple[Op, ...], profile: Any, machine: str | None, domain: Domain,
           keyed: bool) -> list[tuple[tuple[Op, ...], Outcome]]:
    """Run every one-operation extension of ``prefix``."""
    headers = (("machine", machine),) if machine else ()
    program = Program((), headers)
    base = prefix_execution(prefix, profile, program)
    out = []
    for o in candidates(base, prefix, domain):
        ops = (*prefix, o)
        out.append((ops, run_program(ops, profile, program, domain if keyed else None)))
    return out


Item = tuple[str, KernelProfile, str | None, Domain, bool]


def _work(item: Item) -> list[tuple[str, tuple[str, ...], str | None]]:
    """A worker's share: one prefix (as text) -> its extensions (as text)."""
    text, profile, machine, domain, keyed = item
    prefix = parse_program(text).ops
    results = expand(prefix, profile, machine, domain, keyed)
    return [(_ops_text(ops), r.signatures, r.key) for ops, r in results]


def _ops_text(ops: Iterable[Op]) -> str:
    return format_program(Program(tuple(Line(o) for o in ops)))


# --- the search ----------------------------------------------------------------------------


@dataclass
class Report:
    profile: str
    machine: str | None
    depth: int
    domain: Domain
    programs: int = 0
    states: int = 1
    levels: list[dict[str, int]] = field(default_factory=list)
    findings: dict[str, str] = field(default_factory=dict)  # signature -> first Program
    files: dict[str, str] = field(default_factory=dict)  # signature -> file written
    found_at: dict[str, float] = field(default_factory=dict)  # signature -> seconds in
    seconds: float = 0.0
    finished: bool = False

    def statement(self) -> str:
        where = f"profile {self.profile}" + (f", machine {self.machine}" if self.machine else "")
        done = "every" if self.finished else "(interrupted) the first levels of every"
        lines = [f"{done} Program of <= {self.depth} operations over the domain "
                 f"[{self.domain.describe()}] on {where}: {self.programs:,} Programs run, "
                 f"{self.states:,} distinct states, {self.seconds:.1f} s"]
        for lv in self.levels:
            lines.append(f"  depth {lv['depth']}: {lv['prefixes']:,} prefixes extended, "
                         f"{lv['programs']:,} Programs, {lv['new_states']:,} new states")
        if self.findings:
            lines.append(f"{len(self.findings)} signature(s):")
            lines += [f"  {sig}" + (f" -> {self.files[sig]}" if sig in self.files else "")
                      for sig in sorted(self.findings)]
            lines.append("no other finding")
        else:
            lines.append("no finding")
        return "\n".join(lines)


def _checkpoint(path: Path, report: Report, frontier: list[str], seen: set[str],
                level: int) -> None:
    data = {"report": {**dataclasses.asdict(report), "domain": dataclasses.asdict(report.domain)},
            "frontier": frontier, "seen": sorted(seen), "level": level}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data), encoding="utf-8")
    tmp.replace(path)


def _load(path: Path) -> tuple[Report, list[str], set[str], int]:
    data = json.loads(path.read_text(encoding="utf-8"))
    rep = data["report"]
    domain = Domain(**{k: tuple(v) if isinstance(v, list) else v
                       for k, v in rep.pop("domain").items()})
    report = Report(**rep, domain=domain)
    return report, data["frontier"], set(data["seen"]), data["level"]


def _write_finding(out: Path, profile: str, machine: str | None, sig: str, text: str) -> Path:
    """``OUT/findings/<profile>/<signature>.prog``, unless a Program with that signature
    and no more lines is stored there already (``corpus.save_finding``: hand-written and
    earlier findings are kept)."""
    from iomemfuzz.fuzz.corpus import save_finding
    from iomemfuzz.fuzz.finding import Finding

    headers = [f"# profile: {profile}"]
    if machine:
        headers.append(f"# machine: {machine}")
    headers.append(f"# expect: finding {sig}")
    headers.append("# found by iomemfuzz explore (breadth first: no shorter Program "
                   "in its domain has this signature)")
    path, _written = save_finding(out, Finding(sig, profile, "\n".join(headers) + "\n\n" + text))
    return path


def explore(profile: str | KernelProfile = "v6.1-deb", depth: int = 3,
            domain: Domain | None = None, *, machine: str | None = None, jobs: int = 1,
            out: Path | None = None, checkpoint: Path | None = None, resume: bool = False,
            progress: TextIO | None = None, max_time: float | None = None,
            hashing: bool = True, levels: int | None = None) -> Report:
    """Breadth-first search; see the module docstring. ``hashing=False`` extends every
    Program (the brute force the state hashing is tested against); ``levels`` stops
    after that many levels of this call (``resume`` goes on from the checkpoint)."""
    domain = domain or Domain()
    prof = resolve(profile)
    started = time.monotonic()
    if resume and checkpoint is not None and checkpoint.is_file():
        report, frontier, seen, level = _load(checkpoint)
        spent = report.seconds
    else:
        report = Report(prof.name, machine, depth, domain)
        frontier, level, spent = [""], 0, 0.0
        empty = run_program((), prof, Program((), (("machine", machine),) if machine else ()),
                            domain)
        seen = {empty.key or ""}
    pool = multiprocessing.get_context("fork").Pool(jobs) if jobs > 1 else None
    try:
        stop = depth if levels is None else min(depth, level + levels)
        while level < stop and frontier:
            keyed = level + 1 < depth
            items = [(t, prof, machine, domain, keyed) for t in frontier]
            results: Iterable[Any] = (pool.imap_unordered(_work, items, chunksize=4) if pool
                                      else map(_work, items))
            nxt: list[str] = []
            runs = 0
            for done, batch in enumerate(results, start=1):
                for text, sigs, key in batch:
                    runs += 1
                    for sig in sigs:
                        if sig not in report.findings:
                            report.findings[sig] = text
                            report.found_at[sig] = spent + time.monotonic() - started
                            if out is not None:
                                report.files[sig] = str(_write_finding(
                                    out, prof.name, machine, sig, text))
                    if key is not None and (key not in seen or not hashing):
                        seen.add(key)
                        nxt.append(text)
                if progress is not None and (done % 50 == 0 or done == len(items)):
                    progress.write(f"\rdepth {level + 1}/{depth}: {done:,}/{len(items):,} "
                                   f"prefixes, {report.programs + runs:,} Programs, "
                                   f"{len(seen):,} states, {len(report.findings)} signatures, "
                                   f"{spent + time.monotonic() - started:.0f} s")
                    progress.flush()
                if max_time is not None and time.monotonic() - started > max_time:
                    break
            else:
                report.levels.append({"depth": level + 1, "prefixes": len(items),
                                      "programs": runs, "new_states": len(nxt)})
                report.programs += runs
                report.states = len(seen)
                frontier, level = nxt, level + 1
                report.seconds = spent + time.monotonic() - started
                if progress is not None:
                    progress.write("\n")
                if checkpoint is not None:
                    _checkpoint(checkpoint, report, frontier, seen, level)
                continue
            break  # out of time mid-level: the checkpoint holds the last whole level
    finally:
        if pool is not None:
            pool.terminate()
    report.finished = level >= depth or not frontier
    report.seconds = spent + time.monotonic() - started
    return report


def run_cli(args: Any) -> int:
    """``iomemfuzz explore`` (options: fuzz/commands.py)."""
    domain = Domain(ops=tuple(o for o in args.ops.split(",") if o), values=args.values,
                    recent=args.recent, preemptions=args.preemptions,
                    sizes=tuple(int(v, 0) for v in args.sizes.split(",") if v))
    report = explore(args.profile, args.depth, domain, machine=args.machine, jobs=args.jobs,
                     out=Path(args.out) if args.out else None,
                     checkpoint=Path(args.checkpoint) if args.checkpoint else None,
                     resume=args.resume, progress=sys.stderr, max_time=args.max_time)
    print(report.statement())
    return 0 if report.finished else 3
