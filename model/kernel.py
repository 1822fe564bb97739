"""Kernel: one instance of every modelled subsystem, wired together, and the entry points
operations call.

A Kernel is a pure function of (profile, machine, the calls made on it): no clock, no
randomness, no I/O. The executor starts every run on a fresh one: a copy of one built
from scratch (fuzz/snapshot.py), which that purity makes indistinguishable from it.

Besides the kernel's own state it keeps the *claim ledger*: which busy regions the
modelled callers (the Program, drivers) believe they hold. The kernel itself keeps no such
record (``__release_region`` has no owner check), which is exactly why the busy-resource
oracle needs one to compare the tree against.
"""

from __future__ import annotations

from dataclasses import dataclass

from iomemfuzz.model import event
from iomemfuzz.model.boot import Boot
from iomemfuzz.model.devmem import DEFAULT_PHYS_BITS, Devmem, MemoryResolver, firmware_map
from iomemfuzz.model.event import Log
from iomemfuzz.model.generation import generation
from iomemfuzz.model.ioport import IORESOURCE_BUSY, Resource
from iomemfuzz.model.machine import DEFAULT_MACHINE, Machine, build_tree
from iomemfuzz.model.mm import Mm
from iomemfuzz.model.pci import Pci
from iomemfuzz.model.pci_mmap import BarResolver, PciMmap
from iomemfuzz.model.profile import CLAIM_FAIL, DEFAULT, KernelProfile
from iomemfuzz.model.resource import WOULD_BLOCK
from iomemfuzz.model.resource_check import descendants
from iomemfuzz.model.resource_tree import ResourceTree
from iomemfuzz.model.sched import Scheduler, Task
from iomemfuzz.model.sysfs import Sysfs

PROGRAM = "program"  # the holder name of claims made directly by Program lines

# firmware_map() of a freshly built tree, by machine iomem text (Kernel._firmware_map).
_FIRMWARE_MAPS: dict[str, tuple[tuple[int, int, str], ...]] = {}


@dataclass(slots=True)
class Claim:
    """A busy region some caller believes it holds."""

    node: Resource
    holder: str
    # Who made the region vanish while its holder still believed in it (None = live).
    lost_by: str | None = None
    # When the claim was made (Mm.tick()): the mapping oracles order it against the
    # mmaps and revocations around it.
    at: int = 0


class Kernel:
    """The modelled kernel. Construct with a profile and a machine; call entry points."""

    def __init__(self, profile: KernelProfile | None = None,
                 machine: Machine | None = None, *, booted: bool = True) -> None:
        self.profile = profile or DEFAULT
        self.machine = machine or DEFAULT_MACHINE
        self.log = Log()
        self.resources = ResourceTree(self.profile, self.log)
        build_tree(self.machine, self.resources)
        # Mappings: processes and VMAs, /dev/mem + revoke_iomem, BAR mmaps. revoke_iomem
        # runs only where the tree calls its hook (__request_region with the iomem root
        # as argument, request_free_mem_region); the veto only under claim_policy "fail".
        self.mm = Mm(self.profile, self.log)
        self.devmem = Devmem(self.profile, self.log, self.resources, self.mm,
                             phys_bits=getattr(self.machine, "phys_bits", DEFAULT_PHYS_BITS))
        self.pci_mmap = PciMmap(self.profile, self.log, self.resources, self.mm, self.devmem)
        self.resources.revoke_hook = self.resources.revoke_iomem
        if self.profile.claim_policy == CLAIM_FAIL:
            self.resources.claim_veto_hook = self.devmem.claim_veto
        # Keyed by the node itself (Resources hash by identity): ids would not survive a
        # copy of the kernel (fuzz/snapshot.py), and a held node keeps its key unique.
        self.claims: dict[Resource, Claim] = {}
        # Bumped by every change to the ledger (claims, their lost_by, baseline_busy): the
        # busy-consistency oracle re-checks only when this or the trees moved.
        self.ledger_generation = 0
        # (generation(), ledger_generation) after the last sync_claims pass.
        self._synced: tuple[int, int] | None = None
        # Answers derived from this kernel's state that a reader keeps for next time (the
        # whole-state oracles' last checks, by oracle name). Not kernel state: nothing in
        # the model reads it, and it goes away with the kernel.
        self.memo: dict[str, object] = {}
        # Releases that matched nothing, and which caller asked (for the oracle).
        self.unmatched_releases: list[tuple[str, int, int]] = []
        # Kernel paths as tasks (boot, hot-add, pci_sysfs_init, MUXED waits), sysfs, and
        # the PCI core. Driver claims go through this Kernel (the broker) so the ledger
        # knows what each driver believes it holds; BARs decode before the memory map.
        self.sched = Scheduler(self.log)
        self.resources.muxed_wake_hook = self.sched.muxed_wake
        self.sysfs = Sysfs(self.log)
        self.sysfs.drain_hook = self.mm.kernfs_drain_open_files
        self.pci = Pci(self.profile, self.log, self.resources, self.sysfs, self.sched,
                       tuple(self.machine.pci_devices), broker=self)
        self.pci.files.iomem_get_mapping = self.resources.iomem_get_mapping
        self.mm.add_resolver(BarResolver(self.pci.present_devices))
        self.mm.add_resolver(MemoryResolver(self.resources, self._firmware_map()))
        self.boot = Boot(self.profile, self.log, self.sched, self.pci, self.devmem)
        self.booted = booted
        if booted:
            self.boot.boot_fully()
        self.baseline_busy: set[Resource] = set()
        self.snapshot_baseline()

    def _firmware_map(self) -> tuple[tuple[int, int, str], ...]:
        """firmware_map() of the tree build_tree() just made: it depends only on the
        machine's iomem text, so it is computed once per text and shared (it is a tuple
        of tuples: nothing can change it)."""
        text = self.machine.iomem
        firmware = _FIRMWARE_MAPS.get(text)
        if firmware is None:
            firmware = _FIRMWARE_MAPS[text] = firmware_map(self.resources)
        return firmware

    # --- claim ledger -----------------------------------------------------------------

    def snapshot_baseline(self) -> None:
        """Busy nodes that exist now belong to firmware/boot, not to a modelled caller."""
        self.ledger_generation += 1
        self.baseline_busy = {
            node
            for root in (self.resources.iomem_resource, self.resources.ioport_resource)
            for node in descendants(root)
            if node.flags & IORESOURCE_BUSY
        }

    def note_baseline(self, node: Resource) -> None:
        """A busy node the kernel itself made (boot, firmware): held by no modelled caller
        but legitimate."""
        self.ledger_generation += 1
        self.baseline_busy.add(node)

    def in_tree(self, node: Resource) -> bool:
        """Is ``node`` linked under one of the two roots (every link checked)?"""
        roots = (self.resources.iomem_resource, self.resources.ioport_resource)
        while node.parent is not None:
            parent = node.parent
            child = parent.child
            while child is not None and child is not node:
                child = child.sibling
            if child is None:
                return False
            node = parent
        return node in roots

    def note_claim(self, node: Resource, holder: str) -> None:
        self.ledger_generation += 1
        self.claims[node] = Claim(node, holder, at=self.mm.tick())

    def note_new_resource(self, node: Resource, holder: str) -> None:
        """A caller linked its own struct; if it carries BUSY, the caller holds it."""
        if node.flags & IORESOURCE_BUSY:
            self.note_claim(node, holder)

    def sync_claims(self, actor: str) -> None:
        """After ``actor`` changed the tree: drop the claims it gave up, mark the ones it
        took away from someone else as lost."""
        # After a pass every claim is lost or in the tree; while no tree link and no
        # claim changed since (only the tree code writes links), that still holds and a
        # pass would change nothing.
        if self._synced == (generation(), self.ledger_generation):
            return
        for key, claim in list(self.claims.items()):
            if claim.lost_by is not None or self.in_tree(claim.node):
                continue
            self.ledger_generation += 1
            if claim.holder == actor:
                del self.claims[key]
            else:
                claim.lost_by = actor
        self._synced = (generation(), self.ledger_generation)

    # --- resource-tree entry points ---------------------------------------------------

    def request_region(self, parent: Resource, start: int, n: int, name: str, flags: int,
                       holder: str = PROGRAM) -> Resource | object | None:
        """A caller claims a region: ``__request_region()`` plus the ledger entry."""
        res = self.resources._request_region(parent, start, n, name, flags)
        if isinstance(res, Resource):
            self.note_claim(res, holder)
        return res if res is not WOULD_BLOCK else WOULD_BLOCK

    def release_region(self, parent: Resource, start: int, n: int,
                       holder: str = PROGRAM) -> None:
        """A caller releases a region: ``__release_region()`` plus the ledger update.

        The caller gives up its belief in the claim at (parent, start) whether or not the
        kernel found a match: a wrong size leaves a busy node nobody believes in."""
        before = len(self.log)
        self.resources._release_region(parent, start, n)
        if any(e.kind == event.RELEASE_NONEXISTENT for e in self.log.since(before)):
            self.unmatched_releases.append((holder, start, n))
            for key, claim in list(self.claims.items()):
                if (claim.holder == holder and claim.node.start == start
                        and self._root_of_claim(claim) is self._root(parent)):
                    self.ledger_generation += 1
                    del self.claims[key]
                    break
        self.sync_claims(holder)

    def release_mem_region_adjustable(self, start: int, size: int,
                                      holder: str = PROGRAM) -> None:
        """Memory hot-unplug: ``release_mem_region_adjustable()`` plus the ledger.

        Trimming or splitting a busy node leaves pieces the kernel allocated itself; they
        still belong to whoever held the original node (firmware or a caller), so the
        ledger hands them over instead of reporting them as held by nobody."""
        # Record each affected node's range and owner now: the call shrinks the original
        # node in place, so afterwards a split's high piece lies outside it.
        owners: list[tuple[int, int, str | None]] = []
        before: set[Resource] = set()
        for node in descendants(self.resources.iomem_resource):
            if node.flags & IORESOURCE_BUSY and node.start <= start + size - 1 \
                    and node.end >= start:
                claim = self.claims.get(node)
                owner = claim.holder if claim else (
                    None if node in self.baseline_busy else "")
                owners.append((node.start, node.end, owner))
                before.add(node)
        self.resources.release_mem_region_adjustable(start, size)
        for node in descendants(self.resources.iomem_resource):
            if not node.flags & IORESOURCE_BUSY or node in before:
                continue
            origin = next((o for lo, hi, o in owners
                           if lo <= node.start and node.end <= hi), "")
            if origin is None:
                self.note_baseline(node)
            elif origin:
                self.note_claim(node, origin)
        self.sync_claims(holder)

    def tree_changed(self, holder: str = PROGRAM) -> None:
        """Call after any other tree mutation made on behalf of ``holder``."""
        self.sync_claims(holder)

    def _root(self, node: Resource) -> Resource:
        while node.parent is not None:
            node = node.parent
        return node

    def _root_of_claim(self, claim: Claim) -> Resource:
        return self._root(claim.node)

    def believed_busy(self) -> set[Resource]:
        """Busy nodes the ledger says some caller holds (live claims only)."""
        return {node for node, claim in self.claims.items() if claim.lost_by is None}

    # --- kernel paths -----------------------------------------------------------------

    def finish(self) -> list[Task]:
        """End of a Program: pending kernel paths run to completion, lowest task id
        first; those that can never proceed are reported as HANG events and returned."""
        return self.sched.drain()

    # --- narration --------------------------------------------------------------------

    def describe(self) -> dict[str, str]:
        """State sections for ``iomemfuzz show``: title -> text."""
        from iomemfuzz.model.machine import render_proc_iomem

        sections = {
            "/proc/iomem": render_proc_iomem(self.resources.iomem_resource),
            "/proc/ioports": render_proc_iomem(self.resources.ioport_resource),
            "pci devices": self.pci.describe(),
            "/proc/bus/pci": "\n".join(self.pci.proc.entries()),
            "tasks": "\n".join(t.describe() for t in self.sched.pending()),
            "user mappings": self.mm.describe(),
        }
        return sections
