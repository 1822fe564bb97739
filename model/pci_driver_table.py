"""The PCI drivers the model knows by name, as data: their id tables and what their probe
does (enable, claim, fail). pci_driver.py runs them.

A driver not in :data:`DRIVERS` is a *generic driver*: ``module_load`` gives it the ids it is
loaded with, a machine that names it as some function's driver gives it that function's
ids (what udev's modalias lookup found), and its probe enables the device and, unless it
is a non-claiming driver (B13), requests every BAR under its own name.

Each row says where its behaviour was read (Debian 6.1.192; the same in 6.12.118).
"""

from __future__ import annotations

from iomemfuzz.model.errno import EINVAL
from iomemfuzz.model.pci_core import (
    ENABLE_ALL,
    ENABLE_MANAGED,
    ENABLE_NONE,
    PciDriver,
)
from iomemfuzz.model.pci_spec import PciDeviceSpec, PciId

_INTEL = 0x8086

# e1000_pci_tbl (drivers/net/ethernet/intel/e1000/e1000_main.c): Intel 8254x devices.
_E1000_DEVICES = (
    0x1000, 0x1001, 0x1004, 0x1008, 0x1009, 0x100C, 0x100D, 0x100E, 0x100F, 0x1010,
    0x1011, 0x1012, 0x1013, 0x1014, 0x1015, 0x1016, 0x1017, 0x1018, 0x1019, 0x101A,
    0x101D, 0x101E, 0x1026, 0x1027, 0x1028, 0x1075, 0x1076, 0x1077, 0x1078, 0x1079,
    0x107A, 0x107B, 0x107C, 0x108A, 0x1099, 0x10B5, 0x2E6E,
)
# e1000_is_need_ioport(): the models whose probe uses the I/O BAR too (pci_enable_device
# and all BARs); the others enable and claim memory only.
_E1000_NEED_IOPORT = frozenset({
    0x100E, 0x1015, 0x1017, 0x1016, 0x101E, 0x1013, 0x1018, 0x1078, 0x1014, 0x1076,
    0x107C, 0x1077, 0x1008, 0x1009, 0x100C, 0x100D, 0x100F, 0x1011, 0x1010, 0x1012,
    0x101D,
})

E1000 = PciDriver(
    # e1000_probe(): pci_enable_device() (or _mem), pci_request_selected_regions(...,
    # "e1000"); e1000_remove(): pci_release_selected_regions(), pci_disable_device().
    # After the claim, e1000_init_hw_struct() asks e1000_set_mac_type() (e1000_hw.c) for
    # the device's MAC type, which it knows for exactly the devices of the id table: any
    # other device id (bound through new_id or driver_override) fails the probe with -EIO,
    # and the unwind releases the regions and disables the device again.
    "e1000", claims=True, id_table=tuple(PciId(_INTEL, d) for d in _E1000_DEVICES),
    enable=ENABLE_ALL, io_devices=_E1000_NEED_IOPORT,
    known_devices=frozenset(_E1000_DEVICES))

UIO_PCI_GENERIC = PciDriver(
    # drivers/uio/uio_pci_generic.c probe(): pcim_enable_device(), claims nothing (it
    # exposes the BARs as UIO maps); no id table: it binds through new_id or
    # driver_override only.
    "uio_pci_generic", claims=False, enable=ENABLE_MANAGED)

VFIO_PCI = PciDriver(
    # drivers/vfio/pci/vfio_pci.c: an override-only catch-all id (PCI_ANY_ID entries
    # that count only with driver_override). vfio_pci_probe() enables nothing and claims
    # nothing; without an IOMMU group (and no CONFIG_VFIO_NOIOMMU, as in Debian)
    # vfio_group_find_or_alloc() fails and the probe returns -EINVAL.
    "vfio-pci", claims=False, id_table=(PciId(override_only=True),), enable=ENABLE_NONE,
    probe_error=-EINVAL)

DRIVERS: dict[str, PciDriver] = {d.name: d for d in (E1000, UIO_PCI_GENERIC, VFIO_PCI)}

# Ids a hot-added function gets when its line names a known driver but no ids: one the
# driver binds (QEMU's e1000 is an 82540EM).
EXAMPLE_IDS: dict[str, tuple[int, int, int]] = {"e1000": (_INTEL, 0x100E, 0x020000)}


def generic_driver(name: str, ids: tuple[PciId, ...] = (), claims: bool = True) -> PciDriver:
    """A driver the model does not know: probe enables memory and I/O and, if
    ``claims``, requests every BAR under ``name``."""
    return PciDriver(name, claims=claims, id_table=ids, enable=ENABLE_ALL)


def driver_for(name: str, specs: tuple[PciDeviceSpec, ...]) -> PciDriver:
    """The driver module ``name`` as it is loaded for the functions ``specs`` that name it
    (udev's modalias match): the known driver of that name, or a generic driver whose id
    table holds those functions' vendor:device ids and whose claiming follows the first
    of them."""
    if name in DRIVERS:
        return DRIVERS[name]
    ids = tuple(dict.fromkeys(PciId(s.vendor, s.device) for s in specs))
    return generic_driver(name, ids, specs[0].claims if specs else True)
