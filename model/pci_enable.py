"""drivers/pci/pci.c (and devres.c's managed variant): enabling and disabling a device, and
the region requests a driver makes for its BARs.

Functions take the :class:`~iomemfuzz.model.pci_core.PciCore` first (see pci_core's
docstring for the layout). Enabling is the **only** place the kernel turns a function's
decoding on (issue 17, point 1): ``pci_enable_resources()`` (pci_setup_res.py) writes the
command register. Disabling never turns it off again: it only clears bus mastering, which
the model does not follow. A driver's region claims go through the core's RegionBroker,
which is where ``__request_region`` runs (and, on the kernels that have it, revoke_iomem)
and where the Kernel keeps its ledger of who believes it holds what.
"""

from __future__ import annotations

from iomemfuzz.model import errno
from iomemfuzz.model.event import INFO, WARN
from iomemfuzz.model.ioport import IORESOURCE_IO, IORESOURCE_MEM, Resource
from iomemfuzz.model.pci_core import PCI_NUM_RESOURCES, PciCore, PciDev
from iomemfuzz.model.pci_setup_res import pci_enable_resources
from iomemfuzz.model.pci_spec import PCI_STD_NUM_BARS


def holder(dev: PciDev, name: str) -> str:
    """Who the Kernel's claim ledger says holds a driver's regions of ``dev``."""
    return f"driver {name} {dev.name}"


def pci_select_bars(dev: PciDev, flags: int) -> int:
    """Models `pci_select_bars()`, drivers/pci/pci.c, v6.1: the mask of resources whose
    flags meet ``flags`` (the ROM included, as the kernel computes it)."""
    return sum(1 << i for i in range(PCI_NUM_RESOURCES) if dev.resource[i].flags & flags)


def pci_enable_device_flags(pci: PciCore, dev: PciDev, flags: int) -> int:
    """Models `pci_enable_device_flags()` → `do_pci_enable_device()`, drivers/pci/pci.c,
    v6.1: counted — only the first enable does anything ("already enabled" otherwise);
    it runs `pci_enable_resources()` on the resources of the requested types (which
    turns their decoding on), and undoes the count if that fails."""
    dev.enable_cnt += 1
    if dev.enable_cnt > 1:
        return 0
    ret = pci_enable_resources(pci, dev, pci_select_bars(dev, flags))
    if ret < 0:
        dev.enable_cnt -= 1
    return ret


def pci_enable_device(pci: PciCore, dev: PciDev) -> int:
    """Models `pci_enable_device()`, drivers/pci/pci.c, v6.1: memory and I/O."""
    return pci_enable_device_flags(pci, dev, IORESOURCE_MEM | IORESOURCE_IO)


def pci_enable_device_mem(pci: PciCore, dev: PciDev) -> int:
    """Models `pci_enable_device_mem()`, drivers/pci/pci.c, v6.1: memory only."""
    return pci_enable_device_flags(pci, dev, IORESOURCE_MEM)


def pcim_enable_device(pci: PciCore, dev: PciDev) -> int:
    """Models `pcim_enable_device()`, drivers/pci/pci.c, v6.1 (devres.c in 6.12): as
    pci_enable_device, and devres disables the device again when the driver detaches."""
    ret = pci_enable_device(pci, dev)
    if ret == 0:
        dev.managed_enable = True
    return ret


def pci_disable_device(pci: PciCore, dev: PciDev) -> None:
    """Models `pci_disable_device()`, drivers/pci/pci.c, v6.1: warns when the device is
    not enabled; drops the count, and at zero `do_pci_disable_device()` clears bus
    mastering only — **memory and I/O decoding stay on**."""
    if dev.enable_cnt <= 0:
        pci.log.emit(WARN, f"pci {dev.name}: disabling already-disabled device",
                     dev=dev.name)
    dev.enable_cnt -= 1


def pci_request_selected_regions(pci: PciCore, dev: PciDev, bars: int, name: str) -> int:
    """Models `pci_request_selected_regions()` → `__pci_request_region()`,
    drivers/pci/pci.c, v6.1: a busy region named ``name`` for each BAR 0-5 in ``bars``
    with a length, via `__request_region()` on iomem/ioport (which is where revoke_iomem
    runs), in index order; on any failure the earlier ones are released and the call
    fails with -EBUSY. The ROM bit of the mask is ignored."""
    taken: list[tuple[Resource, int, int]] = []
    who = holder(dev, name)
    for i in range(PCI_STD_NUM_BARS):
        n = dev.bar_len(i)
        res = dev.resource[i]
        if not bars & (1 << i) or not n:
            continue
        root = (pci.resources.ioport_resource if res.flags & IORESOURCE_IO
                else pci.resources.iomem_resource)
        got = pci.broker.request_region(root, res.start, n, name, 0, who)
        if not isinstance(got, Resource):
            pci.log.emit(INFO, f"pci {dev.name}: BAR {i} {res!r}: can't reserve",
                         dev=dev.name, bar=i)
            for root2, start, size in reversed(taken):
                pci.broker.release_region(root2, start, size, who)
            return -errno.EBUSY
        taken.append((root, res.start, n))
    dev.devres.extend(taken)
    return 0


def pci_request_regions(pci: PciCore, dev: PciDev, name: str) -> int:
    """Models `pci_request_regions()`, drivers/pci/pci.c, v6.1: every BAR."""
    return pci_request_selected_regions(pci, dev, (1 << PCI_STD_NUM_BARS) - 1, name)


def pci_release_regions(pci: PciCore, dev: PciDev, name: str) -> None:
    """Models `pci_release_selected_regions()` / `pci_release_regions()`,
    drivers/pci/pci.c, v6.1: `__release_region()` of everything the probe requested
    (no revoke on release)."""
    who = holder(dev, name)
    for root, start, n in reversed(dev.devres):
        pci.broker.release_region(root, start, n, who)
    dev.devres.clear()
