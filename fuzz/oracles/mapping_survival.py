"""Once a driver's claim succeeds, no user access reaches a claimed byte; revocation
reaches no further than the profile allows; and a mapping made for one device's BAR
reaches only that BAR.

Kernel promise (3234ac664a87, 636b21b50152: "a driver call to request_mem_region()
becomes a hole-punch on the /dev/mem device"): when ``__request_region`` on the iomem
root succeeds under IO_STRICT_DEVMEM, the driver has the range to itself — user mappings
of it are zapped and new mmaps, reads and writes are refused. Three promises, three
groups of kinds, each violation naming the claim, the mapping and why it got through:

(a) exclusivity, only where ``profile.promise_exclusive_after_claim``:

* ``unrevoked-claim``: revoke_iomem ran and skipped the unmap (IO_STRICT_DEVMEM=n, the
  iomem inode missing, both end pages still allowed) — B5, B6, B25;
* ``no-revocation``: the kernel has no revocation at all (<= v5.7) — B5;
* ``mapping-outside-iomem``: the mapping hangs off another address space (sysfs/procfs
  before v5.12, legacy_mem's typo) — B10, B11a;
* ``claim-without-revoke``: the busy node was not made by __request_region on the iomem
  root, so nothing revoked — B14;
* ``revoke-race``: the mapping was populated before the revocation but linked into
  i_mmap after it (spec §4.7);
* ``revoke-rounding``: unmap_mapping_range's rounding left the claim's last page mapped
  (spec §4.5, D20);
* ``mapped-after-claim``: a mapping made after the claim reaches it (the low MiB, relaxed
  checks, sysfs testing only a BAR's first page, procfs before v5.12) — B5, B10, B19;
* ``read-after-claim``: read()/write() of /dev/mem reached a claimed byte — B5, B19;
* ``unclaimed-driver-bar``: a mapping reached a BAR whose bound driver never claimed it,
  so nothing was ever exclusive — B13.

(a') STRICT_DEVMEM's own promise:

* ``devmem-reaches-ram``: /dev/mem reached System RAM above 1 MiB (region_intersects
  missed nested RAM) — B18;
* ``devmem-low-ram-mapped``: a /dev/mem mapping shows low-MiB RAM that read() zero-fills —
  B22.

(b) reach of revocation (``profile.revoke_granularity``):

* ``revoke-beyond-claim``: a live page outside every page the claim touches was zapped;
* ``collateral-revocation`` (byte-exact profiles only): a zapped page held bytes the claim
  does not cover, which some process had mapped — B7.

(c) device isolation:

* ``reaches-other-device`` / ``reaches-other-bar``: a mapping of device A's BAR reached
  device B's registers, or another BAR of A (a BAR smaller than a page shares it, spec
  §4.6);
* ``reaches-unbacked`` / ``reaches-memory``: it reached nothing (the device was removed
  and, since v5.12, its mappings survive, spec §4.8) or RAM/firmware memory.

Which of these a kernel accepts "by design" is profile data (``by_design``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from iomemfuzz.fuzz.finding import Violation
from iomemfuzz.fuzz.ledger import ledger
from iomemfuzz.model.devmem import DEV_MEM, LOW_MIB_PFNS
from iomemfuzz.model.event import UNMAP
from iomemfuzz.model.ioport import IORESOURCE_BUSY, IORESOURCE_EXCLUSIVE
from iomemfuzz.model.mm import (
    ACCESS_KEY,
    CAUSE_REVOKE,
    PAGE_SHIFT,
    PAGE_SIZE,
    SPACE_MEM,
    TARGET_BAR,
    TARGET_NONE,
    TARGET_RAM,
    Vma,
)
from iomemfuzz.model.profile import GRANULARITY_BYTE
from iomemfuzz.model.resource_region import REVOKE_UNMAPPED

NAME = "mapping-survival"
FAMILY = "mapping survival"
EVENTS_ONLY = True
STATELESS = True


def check_state(kernel) -> Iterator[Violation]:
    """Mapping survival is judged on what each access and unmap did (events)."""
    return iter(())


def check_step(kernel, step) -> Iterable[Violation]:
    # Almost every step logs nothing: answer () without creating a generator (this runs
    # after every step).
    return _step_events(kernel, step) if step.events else ()


def _step_events(kernel, step) -> Iterator[Violation]:
    if getattr(kernel, "mm", None) is None:
        return
    for event in step.events:
        if event.get(ACCESS_KEY) and event.get("space") == SPACE_MEM:
            if kernel.profile.promise_exclusive_after_claim:
                yield from _exclusive(kernel, event)
            yield from _devmem_ram(kernel, event)
            yield from _isolation(event)
        elif event.kind == UNMAP and event.get("cause") == CAUSE_REVOKE:
            yield from _reach(kernel, event)


# --- (a) exclusivity ------------------------------------------------------------------

def _live_claims(kernel, first: int, last: int):
    """Ledger claims on iomem that are live, busy and overlap [first, last]."""
    iomem = kernel.resources.iomem_resource
    for claim in ledger(kernel).claims.values():
        node = claim.node
        if claim.lost_by is not None or not node.flags & IORESOURCE_BUSY:
            continue
        if node.end < first or node.start > last or not kernel.in_tree(node):
            continue
        while node.parent is not None:
            node = node.parent
        if node is iomem:
            yield claim


def _find_vma(kernel, vma_id: object) -> Vma | None:
    for vma in (*kernel.mm.vmas, *kernel.mm.pending):
        if vma.id == vma_id:
            return vma
    return None


def _exclusive(kernel, event) -> Iterator[Violation]:
    phys = int(event.get("phys"))
    last = phys + max(1, int(event.get("length"))) - 1
    claims = list(_live_claims(kernel, phys, last))
    if not claims and event.get("target_kind") == TARGET_BAR:
        yield from _unclaimed_driver_bar(kernel, event)
    for claim in claims:
        node = claim.node
        what = (f"pid{event.get('pid')} {event.get(ACCESS_KEY)} of {event.get('path')} "
                f"reached {max(phys, node.start):#x}, claimed by {claim.holder} "
                f"{node!r}")
        if event.get(ACCESS_KEY) in ("read", "write"):
            kind, catalog, why = "read-after-claim", _policy_catalog(kernel, node, phys), \
                "read()/write() re-check every page, and this one is still allowed"
        else:
            vma = _find_vma(kernel, event.get("vma"))
            if vma is None:
                continue
            kind, catalog, why = _classify(kernel, claim, vma, phys)
        yield Violation(NAME, kind, f"{what}: {why}", catalog)


def _unclaimed_driver_bar(kernel, event) -> Iterator[Violation]:
    """A bound driver that never claimed its BAR shares it with userspace (B13)."""
    pci = getattr(kernel, "pci", None)
    dev = pci.find(str(event.get("target_owner"))) if pci is not None else None
    driver = getattr(dev, "driver", None)
    if driver is None:
        return
    yield Violation(
        NAME, "unclaimed-driver-bar",
        f"pid{event.get('pid')} {event.get(ACCESS_KEY)} of {event.get('path')} reached "
        f"{event.get('target')} while driver {driver.name} is bound: the driver never "
        "claimed its BAR, so nothing is exclusive", "B13")


def _policy_catalog(kernel, node, phys: int) -> str:
    """Why devmem_is_allowed still says yes to a page of a busy node."""
    profile = kernel.profile
    if (node.flags & IORESOURCE_EXCLUSIVE and not profile.iomem_is_exclusive_v516
            and not profile.strict_iomem_checks):
        return "B19"
    return "B5"


def _classify(kernel, claim, vma: Vma, phys: int) -> tuple[str, str, str]:
    """(kind, catalog, explanation) for a mapping that reached a claimed byte."""
    profile = kernel.profile
    devmem = kernel.devmem
    node = claim.node
    if vma.populated_at > claim.at:
        if vma.path.startswith("/proc/") and not profile.procfs_mmap_checks_exclusive:
            return ("mapped-after-claim", "B10",
                    "procfs mmap did not check iomem_is_exclusive before v5.12")
        if vma.made_for is not None:
            return ("mapped-after-claim", "",
                    "pci_mmap_resource tests only the first page of the BAR")
        return ("mapped-after-claim", _policy_catalog(kernel, node, phys),
                "mmap_mem's page checks still allow this page")
    if not profile.revoke_devmem:
        return "no-revocation", "B5", "this kernel never revokes user mappings"
    if vma.mapping is not devmem.iomem_inode:
        catalog = "B11a" if vma.path.endswith("legacy_mem") else (
            "B10" if vma.made_for is not None or vma.path.startswith("/proc/") else "B5")
        return ("mapping-outside-iomem", catalog,
                f"the mapping hangs off {vma.mapping.name if vma.mapping else 'nothing'}, "
                "which revoke_iomem never walks")
    record = devmem.revocation_of(node)
    if record is None:
        return ("claim-without-revoke", "B14",
                "the busy node was not made by __request_region on the iomem root")
    if record.outcome != REVOKE_UNMAPPED:
        return "unrevoked-claim", _skip_catalog(kernel, node, record.outcome), \
            f"revoke_iomem skipped the unmap ({record.outcome})"
    if vma.linked_at > record.at:
        return ("revoke-race", "",
                "the mapping was populated before revoke_iomem but linked into i_mmap "
                "after it walked i_mmap")
    return ("revoke-rounding", "",
            "unmap_mapping_range rounded the start down and the length up on its own, "
            "missing the claim's last page")


def _skip_catalog(kernel, node, outcome: str) -> str:
    if outcome == "no-inode":
        return "B25" if kernel.profile.iomem_init_inode_fails else "B5"
    if outcome == "ends-allowed":
        if not kernel.profile.strict_iomem_checks:
            return "B5"  # iomem=relaxed
        # Only the end pages were asked; with pages between them that new mmaps now
        # refuse, that is B6, otherwise just the low-MiB exemption of B5.
        middle = (node.end >> PAGE_SHIFT) - (node.start >> PAGE_SHIFT) > 1
        return "B6" if middle else "B5"
    return "B5"


# --- (a') STRICT_DEVMEM keeps /dev/mem away from RAM -----------------------------------

def _devmem_ram(kernel, event) -> Iterator[Violation]:
    """Under STRICT_DEVMEM /dev/mem never reaches System RAM above 1 MiB, and below it
    read() shows zeros — so mmap must not show the real bytes either."""
    if event.get("path") != DEV_MEM or not kernel.profile.strict_devmem:
        return
    if event.get("target_kind") != TARGET_RAM or event.get(ACCESS_KEY) == "write":
        return
    pfn = int(event.get("phys")) >> PAGE_SHIFT
    what = (f"pid{event.get('pid')} {event.get(ACCESS_KEY)} of /dev/mem reached "
            f"{event.get('target')} at {event.get('phys'):#x}")
    if pfn >= LOW_MIB_PFNS:
        yield Violation(NAME, "devmem-reaches-ram",
                        f"{what}: devmem_is_allowed did not see the page as RAM", "B18")
    elif event.get(ACCESS_KEY) in ("mmap", "ptrace"):
        yield Violation(NAME, "devmem-low-ram-mapped",
                        f"{what}: read() of this page shows zeros, the mapping shows the "
                        "real bytes", "B22")


# --- (b) reach of revocation -----------------------------------------------------------

def _reach(kernel, event) -> Iterator[Violation]:
    start, end = event.get("claim_start"), event.get("claim_end")
    killed = event.get("killed") or ()
    if start is None or not killed:
        return
    first, last = start >> PAGE_SHIFT, end >> PAGE_SHIFT
    for lo, hi in killed:
        if lo < first or hi > last:
            yield Violation(
                NAME, "revoke-beyond-claim",
                f"claim [{start:#x}-{end:#x}] zapped live pfns {lo:#x}-{hi:#x} of "
                f"pid{event.get('pid')} {event.get('path')}, outside the pages it touches")
        if kernel.profile.revoke_granularity == GRANULARITY_BYTE:
            edge = [p for p in {lo, hi} if (p << PAGE_SHIFT) < start
                    or (p << PAGE_SHIFT) + PAGE_SIZE - 1 > end]
            if edge:
                yield Violation(
                    NAME, "collateral-revocation",
                    f"claim [{start:#x}-{end:#x}] zapped pfn {edge[0]:#x} of "
                    f"pid{event.get('pid')} {event.get('path')}, whose page holds "
                    "unclaimed bytes", "B7")


# --- (c) device isolation ----------------------------------------------------------------

def _isolation(event) -> Iterator[Violation]:
    owner = event.get("made_for_owner")
    if owner is None:
        return
    bar = event.get("made_for_bar")
    kind = event.get("target_kind")
    where = (f"pid{event.get('pid')} {event.get(ACCESS_KEY)} of {event.get('path')} "
             f"(made for {owner} BAR{bar}) reached {event.get('phys'):#x}: "
             f"{event.get('target')}")
    if kind == TARGET_BAR:
        if event.get("target_owner") != owner:
            yield Violation(NAME, "reaches-other-device", where)
        elif event.get("target_bar") != bar:
            yield Violation(NAME, "reaches-other-bar", where)
    elif kind == TARGET_NONE:
        yield Violation(NAME, "reaches-unbacked", where)
    else:
        yield Violation(NAME, "reaches-memory", where)
