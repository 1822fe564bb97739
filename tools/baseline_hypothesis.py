#!/usr/bin/env python3
"""The yardstick: a plain Hypothesis state machine over ``iomemfuzz.model`` alone.

What a kernel developer would write without the framework (no operation table, no
decoder, no oracles, no seeds, no snapshots): a ``RuleBasedStateMachine`` that builds a
booted ``Kernel``, with rules for driver claims and releases, /dev/mem opens, mmaps,
reads and touches, and PCI hot-add, hot-remove and bind; addresses are plain integers
drawn over the machine's PCI windows (and the legacy window below 1 MiB); invariants
that a user states from the kernel's promises:

* ``release-keeps-busy`` (B16): once the driver releases the region it claimed at an
  address, no claim of the driver's is left busy there (what B16's catalog reproducer
  shows, and the framework's credited signature asks: a release with another length
  leaves the claim busy for good; a release of a region nobody claimed is another case);
* ``mapping-survives-claim`` (B5): a /dev/mem mapping made before a driver's claim no
  longer reaches the claimed bytes (the tool's first question: "when a driver claims a
  region, can a user mapping of it survive?", and what B5's catalog reproducer shows);
* ``collateral-fault`` (B7): a touch of a mapped byte that no driver claims does not
  fault (what a byte-exact revocation promises);
* ``duplicate-sysfs-file`` (B1): the kernel log has no duplicate sysfs filename.

``tools/bench_engines.py --baseline`` times it against the framework from an empty
start, per seed; alone::

    .venv/bin/python tools/baseline_hypothesis.py --profile v6.1-deb --seed 1 --budget 60
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import hypothesis
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.errors import FlakyFailure
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    rule,
    run_state_machine_as_test,
)
from iomemfuzz.model.event import DUP_FILENAME
from iomemfuzz.model.kernel import Kernel
from iomemfuzz.model.pci import BarSpec, PciDeviceSpec, PciDriver
from iomemfuzz.model.profile import resolve
from iomemfuzz.model.resource_check import descendants

PAGE = 0x1000
BUSY = 0x80000000
MEM = 0x200
# Where a user would point a driver and a mapping: the PCI MMIO windows of the default
# machine and the legacy window below 1 MiB, as plain integers.
WINDOWS = ((0xA0000, 0xBFFFF), (0x80000000, 0xAFFFFFFF), (0xC0000000, 0xFEBFFFFF))
SLOTS = ("0000:00:03.0", "0000:00:04.0")


class Found(AssertionError):
    """An invariant broke: ``kind`` names which (and so which catalog entry)."""

    def __init__(self, kind: str, detail: str) -> None:
        self.kind = kind
        super().__init__(f"{kind}: {detail}")


addresses = st.one_of(*(st.integers(lo, hi) for lo, hi in WINDOWS))
sizes = st.sampled_from((1, 0x80, 0x100, 0x800, PAGE, 2 * PAGE))


def machine_for(profile_name: str, wanted: str) -> type[RuleBasedStateMachine]:
    """The state machine on ``profile_name``; only the invariant ``wanted`` fails (the
    user looking for one bug ignores the others)."""
    profile = resolve(profile_name)

    def broken(kind: str, detail: str) -> None:
        if kind == wanted:
            raise Found(kind, detail)

    class KernelMachine(RuleBasedStateMachine):
        files = Bundle("files")
        vmas = Bundle("vmas")

        def __init__(self) -> None:
            super().__init__()
            self.kernel = Kernel(profile)
            self.proc = self.kernel.init_process()
            self.claims: dict[tuple[int, int], int] = {}  # (start, n) -> when claimed
            self.clock = 0  # counts claims and mmaps, to order them
            self.made: dict[int, int] = {}  # id(vma) -> when mapped
            self.mark = len(self.kernel.log)

        # --- drivers ---------------------------------------------------------------
        @rule(start=addresses, n=sizes)
        def claim(self, start: int, n: int) -> None:
            node = self.kernel.request_region(self.kernel.roots[0], start, n, "drv",
                                              MEM | BUSY, "drv")
            if node is not None and not isinstance(node, int):
                self.clock += 1
                self.claims[(start, n)] = self.clock

        @rule(start=addresses, n=sizes)
        def release(self, start: int, n: int) -> None:
            had = [s for s in self.claims if s[0] == start]
            self.kernel.release_region(self.kernel.roots[0], start, n, "drv")
            self.claims.pop((start, n), None)
            if had and self._busy_at(start):
                broken("release-keeps-busy", f"{start:#x}: still busy after its release")

        # --- userspace -------------------------------------------------------------
        @rule(target=files)
        def open_devmem(self) -> object:
            f = self.kernel.open_mem(self.proc, True)
            return f if not isinstance(f, int) else None

        @rule(target=vmas, f=files, offset=addresses)
        def mmap(self, f: object, offset: int) -> object:
            if f is None:
                return None
            vma = self.kernel.mmap(f, offset // PAGE, 1, True, True)
            if isinstance(vma, int):
                return None
            self.clock += 1
            self.made[id(vma)] = self.clock
            return vma

        @rule(vma=vmas, offset=st.integers(0, PAGE - 1))
        def touch(self, vma: object, offset: int) -> None:
            if vma is None:
                return
            access = self.kernel.touch(vma, offset, False)
            phys = vma.pgoff * PAGE + offset  # type: ignore[attr-defined]
            mapped_at = self.made.get(id(vma), 0)
            if access.ok and self._claimed(phys, after=mapped_at):
                broken("mapping-survives-claim", f"{phys:#x}: mapped before it was claimed")
            if (not access.ok and not self._claimed(phys)
                    and vma.populated and not vma.unmapped):  # type: ignore[attr-defined]
                broken("collateral-fault", f"{phys:#x} faulted, nothing claims it")

        @rule(f=files, offset=addresses)
        def read(self, f: object, offset: int) -> None:
            if f is not None:
                self.kernel.pread(f, offset, 4)

        # --- PCI -------------------------------------------------------------------
        @rule(slot=st.sampled_from(SLOTS), size=st.sampled_from((PAGE, 0x100, 0x100000)))
        def hot_add(self, slot: str, size: int) -> None:
            spec = PciDeviceSpec(slot, (BarSpec(size),))
            self.kernel.call(self.kernel.hot_add(spec), "hot add")

        @rule(slot=st.sampled_from(SLOTS))
        def hot_remove(self, slot: str) -> None:
            self.kernel.call(self.kernel.hot_remove(slot), "hot remove")

        @rule(slot=st.sampled_from(SLOTS))
        def bind(self, slot: str) -> None:
            dev = self.kernel.pci_device(slot)
            if dev is not None:
                self.kernel.call(self.kernel.sysfs_bind(dev, PciDriver("drv", True)), "bind")

        # --- what the kernel promises ------------------------------------------------
        def _busy_at(self, start: int) -> bool:
            """Does a busy node of the driver's start at ``start`` in /proc/iomem?"""
            return any(n.start == start and n.name == "drv" and n.flags & BUSY
                       for n in descendants(self.kernel.roots[0]))

        def _claimed(self, phys: int, after: int = -1) -> bool:
            """Does a claim made after clock ``after`` cover ``phys``?"""
            return any(s <= phys < s + n and at > after
                       for (s, n), at in self.claims.items())

        @invariant()
        def log_is_clean(self) -> None:
            for event in self.kernel.log.since(self.mark):
                if event.kind == DUP_FILENAME:
                    broken("duplicate-sysfs-file", event.text)
            self.mark = len(self.kernel.log)

    return KernelMachine


def search(profile: str, seed: int, budget: float, wanted: str) -> tuple[float | None, int]:
    """Rounds of the state machine until an invariant named ``wanted`` breaks or the
    budget is spent: (seconds, or None, and the number of state machine runs)."""
    machine = machine_for(profile, wanted)
    started = time.monotonic()
    runs = 0
    rnd = 0
    # Rounds of 100 examples, each with its own seed, until the budget is spent (a
    # user's long-running job); no shrinking: only the time to the first failure counts.
    config = settings(max_examples=100, stateful_step_count=20, deadline=None,
                      database=None, phases=[Phase.generate],
                      suppress_health_check=list(HealthCheck))
    while time.monotonic() - started < budget:
        rnd += 1
        # Hypothesis seeds each run from its own generator, not from the global random:
        # @seed on the machine makes a round's draws a function of (seed, round).
        hypothesis.seed(seed * 7919 + rnd)(machine)
        try:
            run_state_machine_as_test(machine, settings=config)
        except Found:
            return time.monotonic() - started, runs
        except FlakyFailure as exc:
            if any(isinstance(e, Found) for e in exc.exceptions):
                return time.monotonic() - started, runs
        runs += 100
    return None, runs


INVARIANT_OF = {"B16": "release-keeps-busy", "B5": "mapping-survives-claim",
                "B7": "collateral-fault", "B1": "duplicate-sysfs-file"}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="v6.1-deb")
    ap.add_argument("--bug", default="B16", choices=sorted(INVARIANT_OF))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--budget", type=float, default=60.0)
    args = ap.parse_args(argv)
    seconds, runs = search(args.profile, args.seed, args.budget, INVARIANT_OF[args.bug])
    print(json.dumps({"bug": args.bug, "profile": args.profile, "seed": args.seed,
                      "seconds": seconds, "examples": runs}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
