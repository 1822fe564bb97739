"""The whole-state oracles' memo answers exactly what a full check answers.

busy-consistency and duplicate-attributes keep their last answer on the kernel and give
it again while the counters of everything they read stay put (the ledger's tree clock,
which the Kernel moves after every call that may change a tree, the ledger's own
generation, and the scheduler's count of slices, inside which every kernel path runs).
A change that no counter sees — a missed bump, or model code changing sysfs or a device
outside a slice — would make thorough runs report stale violations.
These tests run decoded Programs and the corpus step by step in thorough mode and
compare the memo's answer with a full check after every step.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from iomemfuzz.fuzz import decode, decode_fields
from iomemfuzz.fuzz.corpus import program_files
from iomemfuzz.fuzz.executor import Execution, make_kernel
from iomemfuzz.fuzz.ledger import Ledger, ledger
from iomemfuzz.fuzz.oracles import busy_consistency, duplicate_attributes
from iomemfuzz.fuzz.program import Program
from iomemfuzz.fuzz.program_file import read_program
from iomemfuzz.model.ioport import IORESOURCE_BUSY, IORESOURCE_MEM, Resource
from iomemfuzz.model.machine import MACHINES
from iomemfuzz.model.profile import resolve
from iomemfuzz.model.resource_check import descendants, tree_problems

ROOT = Path(__file__).resolve().parents[2]
MEMOIZED = (busy_consistency, duplicate_attributes)
PROFILES = ("v6.1-deb", "v5.12", "next-2026", "v6.1")


def _decoded(count: int, seed: int) -> list[Program]:
    """Programs of 32 operations decoded from seeded bytes, over every machine."""
    rng = random.Random(seed)
    machines = sorted(MACHINES)
    programs = []
    for i in range(count):
        state = decode_fields.State()
        ops = [decode.decode_record(rng.randbytes(rng.randrange(2, 24)), state)
               for _ in range(32)]
        program = Program().with_ops(ops)
        if i % 3 == 0:
            program = program.with_headers(machine=machines[i % len(machines)])
        programs.append(program)
    return programs


CORPUS = sorted(program_files([ROOT / "corpus"]))


def _tree(kernel) -> tuple[bool, list]:
    """Are both trees well formed, and every field the busy check reads of every node
    it can reach."""
    roots = (kernel.resources.iomem_resource, kernel.resources.ioport_resource)
    well_formed = all(tree_problems(root) == [] for root in roots)
    return well_formed, [(n, n.start, n.end, n.flags, n.name, n.parent, n.sibling, n.child)
                         for root in roots for n in descendants(root)]


def _bars(kernel) -> list:
    return [(r.start, r.end, r.flags) for d in kernel.pci.devices() for r in d.resource]


def _sysfs_state(kernel) -> list:
    """Every reachable sysfs node with what the attribute check reads of it."""
    out, stack = [], [kernel.sysfs.root]
    while stack:
        node = stack.pop()
        out.append((node, node.priv, node.removed, node.removing,
                    getattr(node.priv, "freed", None)))
        stack.extend(node.children.values())
    return out


def _pci_state(kernel) -> tuple:
    """What the PCI model owns and the oracles read, apart from BAR ranges."""
    pci = kernel.pci
    owners = duplicate_attributes._file_owners(kernel.sysfs.root)
    return (pci.files.sysfs_initialized,
            [(d, d.registered, d.added, d.sd, *d.res_attr, *d.res_attr_wc,
              *[getattr(a, "freed", None) for a in (*d.res_attr, *d.res_attr_wc)])
             for d in pci.devices()],
            [getattr(d, "registered", True) for d in owners],
            _sysfs_state(kernel))


def _mismatches(program: Program, profile_name: str) -> list[str]:
    """Steps where a memoized answer differs from a full check, and steps that broke an
    assumption of the memos even where the answer happened to stay the same: a node the
    busy check reaches changed with neither count moving, the PCI model changed its
    state outside a slice, a BAR changed with neither the slices nor the tree code."""
    profile = resolve(profile_name)
    ex = Execution(profile, make_kernel(profile, program, program.ops), thorough=True)
    kernel = ex.kernel
    out = []

    def compare(where: str) -> None:
        for oracle in MEMOIZED:
            memo = tuple(oracle.check_state(kernel))
            full = tuple(oracle.state_violations(kernel))
            if memo != full:
                out.append(f"{where}: {oracle.NAME} memo {memo} != full {full}")

    for i, o in enumerate(program.ops):
        slices, clock, book = (kernel.sched.slices_run, ledger(kernel).tree_clock,
                               ledger(kernel).generation)
        tree, pci, bars = _tree(kernel), _pci_state(kernel), _bars(kernel)
        ex.step(o)
        where = f"step {i} {o!r}"
        compare(where)
        counts = (kernel.sched.slices_run, ledger(kernel).tree_clock,
                  ledger(kernel).generation)
        if counts == (slices, clock, book) and tree[0] and _tree(kernel) != tree:
            out.append(f"{where}: a reachable node changed, no count moved")
        if kernel.sched.slices_run == slices:
            if _pci_state(kernel) != pci:
                out.append(f"{where}: PCI state changed outside a slice")
            if ledger(kernel).tree_clock == clock and _bars(kernel) != bars:
                out.append(f"{where}: a BAR changed with no counter moving")
    ex.finish()
    compare("end")
    return out


def test_memo_matches_full_check_on_decoded_programs():
    for n, program in enumerate(_decoded(240, seed=3)):
        profile = PROFILES[n % len(PROFILES)]
        assert _mismatches(program, profile) == [], (profile, program)


@pytest.mark.parametrize("path", CORPUS, ids=[p.name for p in CORPUS])
def test_memo_matches_full_check_on_corpus(path: Path):
    program = read_program(str(path))
    assert _mismatches(program, program.profile or "v6.1-deb") == []


def test_a_missed_tree_bump_is_noticed(monkeypatch):
    """With the Kernel's word to the ledger's tree clock switched off the comparison
    must fail somewhere, or the tests above would not notice a missed bump either."""
    for name in ("claimed", "kernel_owned", "tree_changed"):
        original = getattr(Ledger, name)

        def silent(self, *args, _original=original):
            clock = self.tree_clock
            _original(self, *args)
            self.tree_clock = clock

        monkeypatch.setattr(Ledger, name, silent)
    programs = [read_program(str(p)) for p in CORPUS]
    found = [m for p in programs for m in _mismatches(p, p.profile or "v6.1-deb")]
    assert any("busy-consistency memo" in m for m in found)


def _random_tree(rng: random.Random) -> Resource:
    """A root and up to eight nodes with random ranges, flags and pointers: mostly
    well formed, often not (shared, cyclic, misparented, overlapping, inverted)."""
    root = Resource(0, 0xFFFF, "root", IORESOURCE_MEM)
    nodes = [root]
    for i in range(rng.randrange(0, 9)):
        start = rng.randrange(0, 0x10000)
        end = start + rng.choice((-2, -1, 0, 0x10, 0x1000))
        flags = rng.choice((0, IORESOURCE_BUSY))
        nodes.append(Resource(start, end, f"n{i}", flags))
    for node in nodes[1:]:
        # Link into a random earlier node's list, sorted by start, keeping parents
        # right; then break something now and then.
        parent = rng.choice(nodes[:nodes.index(node)])
        node.parent = parent
        prev, cur = None, parent.child
        while cur is not None and cur.start < node.start:
            prev, cur = cur, cur.sibling
        node.sibling = cur
        if prev is None:
            parent.child = node
        else:
            prev.sibling = node
    for _ in range(rng.randrange(0, 3)):
        a, b = rng.choice(nodes), rng.choice(nodes)
        setattr(a, rng.choice(("parent", "sibling", "child")), rng.choice((b, None)))
    return root


def test_one_walk_gives_tree_problems_verdict_and_busy_nodes():
    rng = random.Random(7)
    for _ in range(3000):
        root = _random_tree(rng)
        busy = busy_consistency._well_formed_busy(root)
        assert (busy is None) == bool(tree_problems(root))
        if busy is not None:
            assert busy == [n for n in descendants(root)
                            if n.flags & IORESOURCE_BUSY]
