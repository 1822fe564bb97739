"""State-aware generation: Programs written line by line against the kernel they run on.

The engines that mutate bytes or text find a chain of four lines only when each link
happens to get the right value: a claim at the address a mapping covers, a touch of the
mapping the claim should have revoked. Which values are drawn decides discovery more than
the engine does. So this generator does what syzkaller's does, on the live model:

* **Each line runs as soon as it is written** (one :class:`~iomemfuzz.fuzz.executor.
  Execution` per Program), so the next line is drawn from the state the prefix reached:
  the handles that exist (an operation that takes a file, a mapping, a resource or a task
  is written only with a handle its producer made), the devices present, the nodes of
  /proc/iomem and /proc/ioports.
* **Values come from the state** (:mod:`iomemfuzz.fuzz.values`): a physical address is a
  node's start or its last page or the byte after it, an address an earlier line used, or
  one of those nudged by a byte or a page; an offset inside a mapping or a resource file is
  its start, a byte in, its last byte; a device is one a line named before, one present,
  or a free slot for a hot-add.
* **A choice table** (:class:`ChoiceTable`) says which operation to write next: often one
  that takes the handle a recent line made (mmap after open, touch after mmap, step after
  a spawned task), sometimes one that shares an address space with an earlier line, else
  a family and then an operation of it. Families count equally, so the 28 tree calls do
  not drown the 11 PCI ones.
* **Swarm testing** (Groce et al., ISSTA 2012): each Program draws from a random subset of
  the operations, so some Programs are many lines of a few kinds: the shape of a race.
* **Semantic feedback**: a Program whose run shows a feature no earlier run showed
  (:func:`iomemfuzz.fuzz.features.features`: an outcome, what an access reached) or
  whose state after some line does (:func:`~iomemfuzz.fuzz.features.state_features`: a
  mapping over a claim, a parked task) is kept, up to that line; later Programs often
  start from a kept prefix and go on from the state it reached, so each link of a chain
  is rewarded when reached. The prefix is the latest kept, one that reached a new state,
  or the one whose features fewest Programs showed (FairFuzz's rare branches).
* **Restarts** on Luby's sequence: the pool starts again from the corpus seeds', since a
  search that filled its pool with dead ends early rarely recovers.

The generator never checks anything itself: the executor's oracles do, on every line
(``fast`` mode: whole-state checks once at the end).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from iomemfuzz.fuzz import features as feature_set
from iomemfuzz.fuzz import values
from iomemfuzz.fuzz.executor import Execution, needs_boot
from iomemfuzz.fuzz.finding import DRIVER
from iomemfuzz.fuzz.ops import Kind, Op, ordered_ops
from iomemfuzz.fuzz.program import Line, Program
from iomemfuzz.fuzz.snapshot import fresh_kernel
from iomemfuzz.fuzz.trace import Trace
from iomemfuzz.model.event import UNMAP
from iomemfuzz.model.machine_file import load_machine
from iomemfuzz.model.profile import KernelProfile

# How the next operation is chosen (the rest: a family, then one of its operations).
P_CONSUMER = 0.45  # an operation taking a handle a recent line made
P_PARTNER = 0.2  # an operation of a family an earlier line used
P_CLAIM_MAPPED = 0.3  # for a mapping: a claim of what it maps (else a consumer of it)
# ... most often a region claim (REGION_CLAIMS), whose kernel path revokes user mappings
# (__request_region calls revoke_iomem); the other memory claims (a struct requested or
# inserted) make a node busy without revoking: another link, drawn the rest of the time.
# Port claims never meet a mapping.
P_REVOKING = 0.6
# Consumers that end a handle's life are drawn less often: a chain needs it alive.
CONSUMER_WEIGHTS = {"munmap": 0.3, "close": 0.3}
# Programs: how many lines, and how often one starts from a kept Program's prefix.
LENGTHS = (2, 3, 4, 4, 5, 5, 6, 6, 7, 8, 10, 12)
P_EXTEND = 0.5
MAX_KEPT = 4000
EPOCH = 1000  # Programs in the shortest epoch between restarts (times the Luby term)
RECENT = 16  # kept Programs counted as fresh (the mean of an exponential draw)
P_RARE = 0.35  # go on from the kept Program whose feature fewest Programs showed
TOURNAMENT = 8  # ... of this many drawn at random
P_LINK = 0.3  # go on from a kept Program that reached a new state feature
P_RECENT = 0.4  # go on from a fresh kept Program (else: any kept Program)
LINK_FEATURES = ("vma:", "busy:", "task:", "tasks:")
MAX_POINTS = 64  # distinct parking points remembered per producer operation
# Lines that leave work queued for another operation, which then follows them this often:
# (operation, field, value) -> the operation that runs the queued work. A device hot-added
# under an asynchronous host bridge is only scanned and bus-added by that host's probe.
FOLLOW_UPS = {("hotadd", "host", "async"): "host_probe"}
P_FOLLOW = 0.5
# After a line that took pages from a live mapping (a claim, a driver's bind, a removal),
# or a driver's claim that a live mapping still reaches, an access through that mapping
# comes next this often: the oracle's questions ("did the claim take those bytes away, and
# only those?") asked while the answer is still there, so the chain's last link is not
# left to a later draw that a munmap, a release or a second claim may have spoiled.
PROBES = ("touch", "ptrace_access")
P_PROBE = 0.5
# Claims of a busy region, whose handle a driver gives back by address (release_region
# and its kin take the range, not the struct): their releases are their consumers, as the
# driver contract pairs each request with its release.
REGION_CLAIMS = frozenset({"__request_region", "request_region", "request_mem_region",
                           "request_muxed_region"})
P_BOOT = 0.08  # a fresh Program starts before boot
COLD_PLUGGED = (0, 0, 1, 2)  # cards hot-added before its boot_to line
# How often a family is drawn, against the others (each family's operations then equally):
# the mapping and PCI families hold the chains; reads of sysfs and procfs change nothing.
FAMILY_WEIGHTS = {"mapping": 3.0, "pci": 2.0, "tree": 2.0, "driver": 1.5, "sched": 1.0,
                  "observe": 0.3}


def _revoked(step: Any) -> set[int]:
    """The ids of the user mappings whose live pages ``step`` took away."""
    return {e.get("vma") for e in step.events if e.kind == UNMAP and e.get("live_pages")}


def luby(i: int) -> int:
    """The i-th term (from 1) of Luby's restart sequence: 1 1 2 1 1 2 4 1 1 2 1 1 2 4 8 ...
    (Luby, Sinclair and Zuckerman, 1993: within a log factor of the best fixed restart
    length for any run-time distribution, which here is unknown and heavy-tailed)."""
    k = 1
    while (1 << k) - 1 < i:
        k += 1
    if i == (1 << k) - 1:
        return 1 << (k - 1)
    return luby(i - (1 << (k - 1)) + 1)


@dataclass(frozen=True)
class Producer:
    """What a HANDLE field accepts: the operations whose lines make its handles."""

    field: str
    ops: frozenset[str]


def _handle_fields(cls: type[Op]) -> list[Producer]:
    out = []
    for name, a in cls.args():
        if a.kind is Kind.HANDLE and name != "proc":  # proc: nil is the usual process
            out.append(Producer(name, frozenset(a.choices)))
    return out


class ChoiceTable:
    """Which operation to write next, from the operations on offer (syzkaller's choice
    table, from the operations' declarations rather than from a corpus)."""

    def __init__(self, classes: Sequence[type[Op]]) -> None:
        self.classes = tuple(classes)
        self.by_name = {c.NAME: c for c in self.classes}
        self.families: dict[str, list[type[Op]]] = {}
        for c in self.classes:
            self.families.setdefault(c.FAMILY, []).append(c)
        self.handles = {c.NAME: _handle_fields(c) for c in self.classes}
        # Consumers by producer: the operations a handle made by ``producer`` feeds.
        # A HANDLE field without a producer list takes any handle of its type: those
        # consumers are listed under the type's name (values.handle_type).
        self.claimers = [c for c in self.classes if c.BINDS and c.WHO == DRIVER
                         and any(a.kind is Kind.ADDR for _n, a in c.args())] \
            or list(self.classes)
        self.releasers = [c for c in self.classes if c.NAME in values.RELEASES]
        self.memory_claimers = [c for c in self.claimers if c.NAME not in values.PORT_OPS] \
            or self.claimers
        self.revoking = [c for c in self.memory_claimers if c.NAME in REGION_CLAIMS] \
            or self.memory_claimers
        self.consumers: dict[str, list[type[Op]]] = {}
        for c in self.classes:
            for h in self.handles[c.NAME]:
                for p in h.ops or (values.HANDLE_TYPES.get(h.field, ""),):
                    self.consumers.setdefault(p, []).append(c)
        for c in self.classes:
            if c.NAME in REGION_CLAIMS and self.releasers:
                self.consumers.setdefault(c.NAME, []).extend(self.releasers)

    def swarm(self, rng: random.Random) -> list[type[Op]]:
        """A random subset of the operations for one Program: each kept with one
        probability drawn per Program (often all, often few)."""
        keep = rng.choice((1.0, 1.0, 0.5, 0.25, 0.12))
        if keep >= 1.0:
            return list(self.classes)
        chosen = [c for c in self.classes if rng.random() < keep]
        return chosen or [rng.choice(self.classes)]

    def next(self, rng: random.Random, swarm: Sequence[type[Op]],
             made: Sequence[tuple[str, str]], used: Sequence[str]
             ) -> tuple[type[Op], int | None]:
        """The next operation, and which of ``made`` it was chosen for (None: chosen by
        family). ``made``: (producer operation, handle type) of the usable handles,
        oldest first; ``used``: the families of the lines so far."""
        roll = rng.random()
        if made and roll < P_CONSUMER:
            # The latest handles most often: a chain grows from its end.
            index = len(made) - 1 - min(int(rng.expovariate(1.0)), len(made) - 1)
            producer, kind = made[index]
            if kind == "Vma" and rng.random() < P_CLAIM_MAPPED:
                # A live mapping feeds a claim of what it maps: every revocation bug
                # starts with this pair.
                pool = self.revoking if rng.random() < P_REVOKING else self.memory_claimers
                return rng.choice(pool), index
            options = self.consumers.get(producer, []) + self.consumers.get(kind, [])
            if options:
                weights = [CONSUMER_WEIGHTS.get(c.NAME, 1.0) for c in options]
                return rng.choices(options, weights)[0], index
        if used and roll < P_CONSUMER + P_PARTNER:
            # An operation that takes an address and changes what owns it (a claim, an
            # insert, a release): its address is often one an earlier line used
            # (fuzz/values.py), so claims meet mappings and releases meet claims.
            partners = self.releasers if self.releasers and rng.random() < 0.4 \
                else self.claimers
            return rng.choice(partners), None
        families: dict[str, list[type[Op]]] = {}
        for c in swarm:
            families.setdefault(c.FAMILY, []).append(c)
        names = sorted(families)
        family = rng.choices(names, [FAMILY_WEIGHTS.get(f, 1.0) for f in names])[0]
        return rng.choice(families[family]), None


@dataclass
class Kept:
    """A Program whose run showed a new feature: later Programs start from its prefix."""

    ops: tuple[Op, ...]
    machine: str | None
    new: frozenset[str] = frozenset()  # the features it was the first to show


@dataclass
class Generator:
    """Writes and runs Programs on one profile (and machine); keeps what showed new
    features."""

    profile: KernelProfile
    rng: random.Random
    machine: str | None = None
    classes: tuple[type[Op], ...] = field(default_factory=ordered_ops)
    thorough: bool = False
    table: ChoiceTable = field(init=False)
    seen: set[str] = field(default_factory=set)
    kept: list[Kept] = field(default_factory=list)
    # Kept Programs whose new features were states (a mapping over a claim, a parked task):
    # the middle links of chains, pushed on more often than a new outcome.
    links: list[Kept] = field(default_factory=list)
    # How many Programs showed each feature (state features once per Program).
    hits: Counter[str] = field(default_factory=Counter)
    # Every feature any epoch has seen (``seen`` starts again at each restart).
    ever: set[str] = field(default_factory=set)
    machines: tuple[str | None, ...] = ()
    # Restarts: what the corpus seeds gave (the pool an epoch starts from), Programs
    # written in this epoch, epochs so far.
    start: tuple[frozenset[str], tuple[Kept, ...], tuple[Kept, ...]] = (frozenset(), (), ())
    written: int = 0
    epochs: int = 0
    # Per producer operation, where its tasks were seen parked (values.State.points):
    # learned from the runs, since which of the declared points a path passes is the
    # path's own business.
    points: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.table = ChoiceTable(self.classes)

    def seed(self, programs: Iterable[Program]) -> None:
        """Start from Programs (a corpus): each is kept if its run shows a new feature."""
        machines: list[str | None] = []
        for program in programs:
            ops = program.ops
            machines.append(program.header("machine"))
            if not ops:
                continue  # only its machine counts: a fresh Program may start on it
            ex = self._start(ops, program.header("machine"))
            for o in ops:
                ex.step(o)
            self._learn(ex.finish(), ops, program.header("machine"))
        self.start = (frozenset(self.seen), tuple(self.kept), tuple(self.links))
        # The machines a fresh Program starts on: those the seeds name (the default one
        # for a seed that names none), each as often as seeds name it.
        if machines:
            self.machines = tuple(machines)

    def _start(self, ops: Sequence[Op], machine: str | None) -> Execution:
        m = load_machine(machine) if machine else None
        return Execution(self.profile, fresh_kernel(self.profile, m, booted=needs_boot(ops)),
                         thorough=self.thorough)

    def program(self) -> tuple[Program, Trace]:
        """One Program, written and run line by line; its Program and Trace."""
        rng = self.rng
        self.written += 1
        if self.written > EPOCH * luby(self.epochs + 1):
            self._restart()
        length = rng.choice(LENGTHS)
        prefix: tuple[Op, ...] = ()
        machine = rng.choice(self.machines) if self.machines else self.machine
        if self.kept and rng.random() < P_EXTEND:
            base = self._pick()
            # Mostly the whole Program: it ends at the line that reached something new.
            cut = len(base.ops) if rng.random() < 0.7 else rng.randint(1, len(base.ops))
            prefix = base.ops[:cut]
            machine = base.machine
            length = len(prefix) + rng.choice(LENGTHS[:6])
        # A Program that controls boot starts before it, now and then: the cards present
        # at power-on (hot-add lines before boot_to: a bare machine has none), then boot_to.
        ops = list(prefix)
        if not prefix and rng.random() < P_BOOT:
            ex = self._start([values.boot_line(rng, None)], machine)
            hotadd = self.table.by_name.get("hotadd")  # absent from a restricted table
            for _ in range(rng.choice(COLD_PLUGGED) if hotadd else 0):
                card = values.fill(hotadd, values.State.of(ex, ops), rng)
                if card is not None:
                    ex.step(card)
                    ops.append(card)
            ops.append(values.boot_line(rng, None))
            ex.step(ops[-1])
        else:
            ex = self._start(ops, machine)
            for o in ops:
                ex.step(o)
        swarm = self.table.swarm(rng)
        reached: set[str] = set()
        while len(ops) < length:
            o = self._line(ex, ops, swarm)
            if o is None:
                break
            ex.step(o)
            ops.append(o)
            # A link of a chain can be a state that a later line undoes: take the state's
            # features after every line, each with the prefix that reached it.
            now = feature_set.state_features(ex.kernel)
            self.hits.update(now - reached)
            new = now - self.seen - reached
            if new:
                reached |= new
                self._keep(tuple(ops), machine, new)
        trace = ex.finish()
        self._learn(trace, tuple(ops), machine)
        program = Program(tuple(Line(o) for o in ops))
        if machine:
            program = program.with_headers(machine=machine)
        return program, trace

    def _restart(self) -> None:
        """A new epoch from the seeds' pool: a search that took a wrong turn early (its
        pool full of Programs that lead nowhere) does not get to spend the whole job."""
        self.epochs += 1
        self.written = 0
        seen, kept, links = self.start
        self.seen, self.kept, self.links = set(seen), list(kept), list(links)
        self.hits = Counter()

    def _pick(self) -> Kept:
        """A kept Program to go on from: the latest kept most often (each new feature is
        pushed on while it is fresh, depth first), any of them otherwise."""
        rng = self.rng
        if rng.random() < P_RARE:
            # FairFuzz (Lemieux and Sen, ASE 2018): push on from what reached something
            # few Programs reach. A tournament keeps the pick O(1).
            return min((rng.choice(self.kept) for _ in range(TOURNAMENT)),
                       key=lambda k: min((self.hits[f] for f in k.new), default=0))
        roll = rng.random()
        kept = self.links if self.links and roll < P_LINK else self.kept
        if roll < P_LINK or roll > 1 - P_RECENT:
            return kept[-1 - min(int(rng.expovariate(1 / RECENT)), len(kept) - 1)]
        return rng.choice(kept)

    def _line(self, ex: Execution, ops: list[Op], swarm: Sequence[type[Op]]) -> Op | None:
        state = values.State.of(ex, ops)
        for producer, where in values.parked_at(state):
            seen = self.points.setdefault(producer, [])
            if where not in seen and len(seen) < MAX_POINTS:
                seen.append(where)
        state.points = self.points
        if ops and self.rng.random() < P_FOLLOW:
            last = ops[-1]
            for (name, fld, value), follow in FOLLOW_UPS.items():
                if name == type(last).NAME and getattr(last, fld, None) == value \
                        and follow in self.table.by_name:
                    o = values.fill(self.table.by_name[follow], state, self.rng)
                    if o is not None:
                        return o
        if ops and self.rng.random() < P_PROBE:
            o = self._probe(state, type(ops[-1]) in self.table.claimers,
                            _revoked(ex.steps[-1]))
            if o is not None:
                return o
        used = [type(o).FAMILY for o in ops]
        for _ in range(8):
            cls, index = self.table.next(self.rng, swarm, state.made, used)
            focus = None if index is None else state.handles[index][1]
            o = values.fill(cls, state, self.rng, focus)
            if o is not None:
                return o
        return None

    def _probe(self, state: values.State, claimed: bool, revoked: set[int]) -> Op | None:
        """An access through the latest live mapping the last line took pages from
        (``revoked``: a driver's claim, a bind, a removal) or, after a claim
        (``claimed``), that reaches a held claim; None when there is none, or no access
        operation is on offer."""
        probes = [self.table.by_name[n] for n in PROBES if n in self.table.by_name]
        if not probes or not (claimed or revoked):
            return None
        for _h, obj, _p in reversed(state.handles):
            if type(obj).__name__ != "Vma":
                continue
            if getattr(obj, "id", None) in revoked \
                    or (claimed and values.claim_edges_in(state, obj)):
                return values.fill(self.rng.choice(probes), state, self.rng, obj)
        return None

    def _learn(self, trace: Trace, ops: tuple[Op, ...], machine: str | None) -> None:
        shown = feature_set.features(trace, chains=False)
        self.hits.update(shown)
        new = shown - self.seen
        if new:
            self._keep(ops, machine, new)

    def _keep(self, ops: tuple[Op, ...], machine: str | None, new: set[str]) -> None:
        self.seen |= new
        self.ever |= new
        entry = Kept(ops, machine, frozenset(new))
        lists = [self.kept]
        if any(f.startswith(LINK_FEATURES) for f in new):
            lists.append(self.links)
        for kept in lists:
            if len(kept) >= MAX_KEPT:
                kept[self.rng.randrange(len(kept))] = entry
            else:
                kept.append(entry)


__all__ = ["ChoiceTable", "Generator", "Kept"]
