#!/usr/bin/env python3
"""Throughput of the resource-tree model's hot paths, in operations per second.

Measures, on trees of 100 and 1,000 nodes (``--nodes``):

* ``request+release``: one ``__request_region(iomem, …)`` plus the matching
  ``__release_region`` (the pair a driver claim and release costs);
* ``region_intersects``: one page query for System RAM, as devmem_is_allowed() makes.

Two tree shapes per size: ``machine`` is the default QEMU machine with PCI-like BARs (each
with a driver claim under it) added to its PCI window until the size is reached, so a
request descends one level like a real BAR claim; ``flat`` is one sibling list and the
request goes to its end (the worst case for the sibling walk).

Rates are per second of process CPU time, so a busy machine skews them less.

Usage: python tools/bench_model.py [--nodes 100 1000] [--seconds 1.0]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from iomemfuzz.model.ioport import IORES_DESC_NONE, IORESOURCE_MEM, IORESOURCE_SYSTEM_RAM, Resource
from iomemfuzz.model.machine import DEFAULT_MACHINE, build_resource_tree
from iomemfuzz.model.resource_check import preorder
from iomemfuzz.model.resource_tree import ResourceTree

PCI_WINDOW = 0xC0000000  # "PCI Bus 0000:00" of the default machine: [0xc0000000, 0xfebfffff]
BAR_SIZE = 0x4000


def machine_tree(nodes: int) -> tuple[ResourceTree, int]:
    """The default machine plus BAR + driver-claim pairs up to ``nodes`` nodes; returns the
    tree and a free address inside the window, in the middle of the BARs."""
    tree = build_resource_tree(DEFAULT_MACHINE)
    root = tree.iomem_resource
    window = next(r for r, _ in preorder(root)
                  if r.name == "PCI Bus 0000:00" and r.start == PCI_WINDOW)
    count = sum(1 for _ in preorder(root))
    addr = PCI_WINDOW
    while count < nodes:
        bar = Resource(addr, addr + BAR_SIZE - 1, "0000:00:00.0", IORESOURCE_MEM)
        assert tree.request_resource(window, bar) == 0
        count += 1
        if count < nodes:
            assert tree.request_mem_region(addr, BAR_SIZE, "drv") is not None
            count += 1
        addr += 2 * BAR_SIZE  # leave a gap after every BAR
    middle = PCI_WINDOW + ((addr - PCI_WINDOW) // 2 // (2 * BAR_SIZE)) * 2 * BAR_SIZE
    return tree, middle + BAR_SIZE


def flat_tree(nodes: int) -> tuple[ResourceTree, int]:
    """``nodes`` busy top-level regions; the free address is after the last one."""
    tree = ResourceTree()
    base = 0x100000000
    for i in range(nodes):
        assert tree.request_mem_region(base + i * 0x10000, 0x1000, "n") is not None
    return tree, base + nodes * 0x10000


def rate(fn: Callable[[], object], seconds: float) -> float:
    """Calls of ``fn`` per second of this process's CPU time (other load on the machine
    does not count), measured in batches for at least ``seconds``."""
    batch, calls, start = 1000, 0, time.process_time()
    while True:
        for _ in range(batch):
            fn()
        calls += batch
        elapsed = time.process_time() - start
        if elapsed >= seconds:
            return calls / elapsed


def bench(shape: str, nodes: int, seconds: float) -> dict[str, float]:
    tree, addr = (machine_tree if shape == "machine" else flat_tree)(nodes)
    root = tree.iomem_resource
    request, release = tree._request_region, tree._release_region

    def pair() -> None:
        request(root, addr, 0x1000, "bench", 0)
        release(root, addr, 0x1000)

    assert request(root, addr, 0x1000, "probe", 0) is not None, "bench address not free"
    release(root, addr, 0x1000)
    assert not tree.log.events, tree.log.events
    query = tree.region_intersects
    return {
        "request+release": rate(pair, seconds),
        "region_intersects": rate(
            lambda: query(addr, 0x1000, IORESOURCE_SYSTEM_RAM, IORES_DESC_NONE), seconds),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--seconds", type=float, default=1.0,
                        help="minimum measuring time per figure")
    args = parser.parse_args()
    print(f"{'shape':8} {'nodes':>6} {'request+release pairs/s':>24} "
          f"{'region_intersects/s':>20}")
    for nodes in args.nodes:
        for shape in ("machine", "flat"):
            figures = bench(shape, nodes, args.seconds)
            print(f"{shape:8} {nodes:>6} {figures['request+release']:>24,.0f} "
                  f"{figures['region_intersects']:>20,.0f}")


if __name__ == "__main__":
    main()
