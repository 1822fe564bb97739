"""How each operation runs on a real kernel, and which QEMU guest stands for a machine.

:data:`HOW` is keyed by operation name (the list in corpus/README.md, generated from
fuzz/ops/): each entry says which real mechanism runs the line, or why nothing can.
``tests/unit/test_confirm.py`` fails when an operation has no entry.

:func:`guest_for` turns a Program's machine into QEMU arguments: a machine file's own
``qemu`` line, the QEMU guest closest to a built-in machine, or (for a capture without
one) the chipset, RAM size and the devices QEMU can emulate, matched by PCI id.
:func:`device_for_hotadd` picks the emulated card a ``hotadd`` line inserts.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from iomemfuzz.model.machine_file import MachineDump, load_dump
from iomemfuzz.model.pci_driver_table import EXAMPLE_IDS

# Routes.
HELPER = "helper"  # a system call of the guest helper (fuzz/confirm/guest/helper.c)
SYSFS = "sysfs"  # a write to a sysfs file, through the helper
MODULE = "module"  # a kernel/resource.c call through the iomemfuzz_test module
QMP = "qmp"  # a QEMU monitor command (hot-plug)
INSMOD = "insmod"  # load or unload a driver: Debian's module, or a test-module driver
READ = "read"  # the helper reads a sysfs or /proc file (or the module walks the tree)
NONE = "none"  # cannot run on a real system


@dataclass(frozen=True, slots=True)
class How:
    route: str
    text: str  # what runs, or why nothing can


def _none(why: str) -> How:
    return How(NONE, why)


NOT_EXPORTED = "not exported to modules: only the kernel itself calls it"
SCHEDULER = "a scheduler line: a real kernel's interleavings cannot be chosen from outside"
NO_ASYNC_HOST = "x86 QEMU has no host bridge that probes without the rescan lock"

HOW: dict[str, How] = {
    # --- tree: kernel/resource.c through the test module --------------------------------
    "__request_region": How(MODULE, "__request_region()"),
    "__release_region": How(MODULE, "__release_region()"),
    "request_resource": How(MODULE, "request_resource() of a kzalloc'd struct"),
    "insert_resource": How(MODULE, "insert_resource() of a kzalloc'd struct"),
    "insert_resource_expand_to_fit": How(MODULE, "insert_resource_expand_to_fit() (CXL "
                                                 "namespace export)"),
    "release_resource": How(MODULE, "release_resource()"),
    "remove_resource": How(MODULE, "remove_resource()"),
    "release_child_resources": _none(NOT_EXPORTED),
    "adjust_resource": How(MODULE, "adjust_resource()"),
    "release_mem_region_adjustable": _none(NOT_EXPORTED + " (memory hot-unplug)"),
    "request_free_mem_region": How(MODULE, "request_free_mem_region()"),
    "alloc_free_mem_region": _none("exported to the CXL namespace only from 6.3 on"),
    "region_intersects": How(MODULE, "region_intersects()"),
    "iomem_is_exclusive": _none(NOT_EXPORTED + " (an mmap of the page shows it)"),
    "page_is_ram": How(MODULE, "page_is_ram()"),
    "walk_iomem_res_desc": _none("takes a callback: the test module does not offer it"),
    "walk_system_ram_res": _none(NOT_EXPORTED),
    "walk_mem_res": _none(NOT_EXPORTED),
    "walk_system_ram_range": _none(NOT_EXPORTED),
    "lookup_resource": _none(NOT_EXPORTED),
    "allocate_resource": _none("takes an alignment callback: the test module does not "
                               "offer it"),
    "reallocate_resource": _none(NOT_EXPORTED),
    "reserve_region_with_split": _none(NOT_EXPORTED + " (boot-time only)"),
    "devm_request_resource": _none("needs a struct device the test module does not have"),
    "merge_system_ram_resource": _none(NOT_EXPORTED + " (memory hotplug)"),
    "iomem_map_sanity_check": _none(NOT_EXPORTED),
    "read_proc_iomem": _none("reads as another process: the helper is one process"),
    "request_region": How(MODULE, "__request_region() with the macro's root and flags "
                                  "(a MUXED line the model blocks is not run: it would "
                                  "sleep)"),
    # --- mapping: the helper's system calls --------------------------------------------
    "process": _none("the helper is one root process; other processes are not run yet"),
    "exit": _none("the helper is one root process; other processes are not run yet"),
    "open_devmem": How(HELPER, "open(\"/dev/mem\")"),
    "open_resource": How(HELPER, "open(\"/sys/bus/pci/devices/DEV/resourceN[_wc]\")"),
    "open_legacy": How(HELPER, "open(\"/sys/class/pci_bus/BUS/legacy_mem|io\")"),
    "open_procfs": How(HELPER, "open(\"/proc/bus/pci/BB/DD.F\")"),
    "procfs_ioctl": How(HELPER, "ioctl(PCIIOC_*)"),
    "mmap": How(HELPER, "mmap()"),
    "spawn_mmap": _none(SCHEDULER),
    "munmap": How(HELPER, "munmap()"),
    "touch": How(HELPER, "a 32-bit load (or a load and store of the same value) under a "
                         "SIGBUS handler"),
    "ptrace_access": How(HELPER, "pread/pwrite of /proc/self/mem (the debugger's path)"),
    "read": How(HELPER, "pread()"),
    "write": How(HELPER, "pwrite() of the bytes a pread() returned"),
    "lseek": How(HELPER, "lseek()"),
    "close": How(HELPER, "close()"),
    "request_mem_region": How(MODULE, "__request_region(&iomem_resource, ...) "
                                      "(request_mem_region[_exclusive])"),
    "release_mem_region": How(MODULE, "__release_region(&iomem_resource, ...)"),
    # --- sched ---------------------------------------------------------------------------
    "boot_to": _none("the Program starts before boot; the guest boots on its own"),
    "step": _none(SCHEDULER),
    "request_muxed_region": _none(SCHEDULER + " (a MUXED waiter sleeps)"),
    # --- pci -----------------------------------------------------------------------------
    "hotadd": How(QMP, "device_add of an emulated card into a hotplug slot (ACPI hotplug "
                       "on i440fx slots, a PCIe root port on q35)"),
    "hotremove": How(QMP, "device_del (ACPI eject), waiting for the function to go"),
    "remove": How(SYSFS, "echo 1 > /sys/bus/pci/devices/DEV/remove"),
    "rescan": How(SYSFS, "echo 1 > /sys/bus/pci/rescan"),
    "bind": How(SYSFS, "echo DEV > /sys/bus/pci/drivers/DRIVER/bind (ENOENT until a "
                       "line loads DRIVER)"),
    "unbind": How(SYSFS, "echo DEV > /sys/bus/pci/drivers/DRIVER/unbind (no driver named: "
                         "the one the device's driver link names)"),
    "resize": How(SYSFS, "echo SIZE > /sys/bus/pci/devices/DEV/resourceN_resize"),
    "enable": How(SYSFS, "echo VALUE > /sys/bus/pci/devices/DEV/enable"),
    "dev_rescan": How(SYSFS, "echo 1 > /sys/bus/pci/devices/DEV/rescan"),
    "bus_rescan": How(SYSFS, "echo 1 > /sys/class/pci_bus/BUS/rescan"),
    "host_probe": _none(NO_ASYNC_HOST),
    # --- driver --------------------------------------------------------------------------
    "module_load": How(INSMOD, "insmod of Debian's module for a driver the model takes from "
                               "its source (e1000, uio_pci_generic, vfio-pci); any other "
                               "name is the model's generic driver, which the test module "
                               "registers with the line's ids and claims"),
    "module_unload": How(INSMOD, "rmmod, or the test module unregisters its driver"),
    "new_id": How(SYSFS, "echo ID > /sys/bus/pci/drivers/DRIVER/new_id"),
    "remove_id": How(SYSFS, "echo ID > /sys/bus/pci/drivers/DRIVER/remove_id"),
    "driver_override": How(SYSFS, "echo DRIVER > /sys/bus/pci/devices/DEV/driver_override"),
    "drivers_probe": How(SYSFS, "echo DEV > /sys/bus/pci/drivers_probe"),
    "drivers_autoprobe": How(SYSFS, "echo VALUE > /sys/bus/pci/drivers_autoprobe"),
    # --- observe -------------------------------------------------------------------------
    "read_busy": How(READ, "the test module walks the tree for busy entries (/proc/iomem "
                           "does not print the busy flag)"),
    "read_driver": How(READ, "readlink /sys/bus/pci/devices/DEV/driver"),
    "list_files": How(READ, "ls /sys/bus/pci/devices/DEV"),
    "read_resource": How(READ, "/sys/bus/pci/devices/DEV/resource, BAR addresses in the "
                               "model's places"),
}


# Operations that only look: when one of them cannot run, later lines still run in the
# state the model had. Any other line that cannot run may leave the real kernel in another
# state than the model's, and a later disagreement says so.
QUERIES = frozenset({
    "iomem_is_exclusive", "walk_iomem_res_desc", "walk_system_ram_res", "walk_mem_res",
    "walk_system_ram_range", "lookup_resource", "iomem_map_sanity_check", "read_proc_iomem",
    "region_intersects", "page_is_ram", "touch", "ptrace_access", "read", "lseek",
    "read_busy", "read_driver", "list_files", "read_resource",
})


# Device files a real kernel may show that the model deliberately leaves out of a PCI
# device's directory (model/pci_sysfs.py, STATIC_DEVICE_FILES: they depend on firmware,
# capabilities or driver children the model does not describe): list_files compares the
# rest, and says which of these it set aside.
UNMODELLED_FILES: dict[str, str] = {
    "firmware_node": "the device's ACPI companion (the firmware describes its slot)",
    "waiting_for_supplier": "fw_devlink's file, for a device with a firmware node",
    "link": "ASPM's link attribute group",
    "reset": "a reset method the device's capabilities give",
    "reset_method": "a reset method the device's capabilities give",
    "vpd": "the VPD capability",
    "label": "an ACPI or SMBIOS slot label",
    "index": "an SMBIOS slot index",
    "acpi_index": "an ACPI slot index",
    "msi_irqs": "MSI vectors a driver allocated",
    "iommu_group": "an IOMMU",
    "iommu": "an IOMMU",
    "current_link_speed": "a PCIe link", "current_link_width": "a PCIe link",
    "max_link_speed": "a PCIe link", "max_link_width": "a PCIe link",
    "aer_dev_correctable": "AER", "aer_dev_fatal": "AER", "aer_dev_nonfatal": "AER",
    "net": "the network interface a network driver registers under the device",
    "uio": "the UIO device uio_pci_generic registers under the device",
    "vfio-dev": "the VFIO device vfio-pci registers under the device",
}


def how(op: object) -> How:
    """The route for one operation, taking ``mode=spawn`` lines out (scheduler lines)."""
    entry = HOW.get(type(op).NAME, _none("unknown operation"))
    if getattr(op, "mode", "call") == "spawn":
        return _none(SCHEDULER + " (mode=spawn)")
    if type(op).NAME == "hotadd" and getattr(op, "host", "acpi") != "acpi":
        return _none(NO_ASYNC_HOST)
    for field in ("proc",):
        if getattr(op, field, None) is not None:
            return _none("runs as another process: the helper is one root process")
    return entry


# --- kernels -----------------------------------------------------------------------------

# Model profile -> the kernel command line words that make a Debian kernel behave as the
# profile says. Profiles not listed describe kernels or designs Debian does not ship.
PROFILE_CMDLINE: dict[str, str] = {
    "v6.1-deb": "",
    "v6.1": "",  # vanilla 6.1.0: the stable backports in Debian's kernel do not touch it
    "v6.1-deb-relaxed": "iomem=relaxed",
    "v6.1-deb-lockdown": "lockdown=integrity",
    "v6.12": "",  # Debian's 6.12.118, the `--kernel 6.12` guest
}


def profile_cmdline(profile: str) -> str | None:
    """The kernel command line for ``profile``, or None when no real kernel is it."""
    return PROFILE_CMDLINE.get(profile)


# --- emulated cards ----------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Card:
    """A QEMU PCI device model: its ``-device`` name and BARs (index, "mem"/"io", size,
    prefetchable 64-bit)."""

    qemu: str
    ids: tuple[int, int]
    bars: tuple[tuple[int, str, int, bool], ...]
    drivers: tuple[str, ...] = ()  # real drivers whose id table matches it
    extra: str = ""  # more -device properties


CARDS: tuple[Card, ...] = (
    Card("pci-testdev", (0x1B36, 0x0005), ((0, "mem", 0x1000, False), (1, "io", 0x100, False))),
    Card("edu", (0x1234, 0x11E8), ((0, "mem", 0x100000, False),)),
    # One 256-byte memory BAR (the SD host controller's registers): a sub-page BAR.
    Card("sdhci-pci", (0x1B36, 0x0007), ((0, "mem", 0x100, False),)),
    Card("e1000", (0x8086, 0x100E), ((0, "mem", 0x20000, False), (1, "io", 0x40, False)),
         drivers=("e1000",)),
)
# PCI ids -> the card, for captures without a qemu line.
CARD_BY_ID = {c.ids: c for c in CARDS} | {
    (0x1AF4, 0x1000): Card("virtio-net-pci", (0x1AF4, 0x1000), ()),
    (0x1234, 0x1111): Card("VGA", (0x1234, 0x1111), ()),
    (0x8086, 0x10D3): Card("e1000e", (0x8086, 0x10D3), ()),
    (0x1B36, 0x000D): Card("qemu-xhci", (0x1B36, 0x000D), ()),
    (0x8086, 0x2668): Card("intel-hda", (0x8086, 0x2668), ()),
}


def _bar_needs(bars_text: str) -> list[tuple[int, str, int, bool]]:
    from iomemfuzz.fuzz.ops.pci import parse_bars

    out = []
    for i, bar in enumerate(parse_bars(bars_text)):
        if bar is not None:
            out.append((i, "io" if bar.io else "mem", bar.size, bar.prefetch and bar.is64))
    return out


def device_for_hotadd(bars: str, ids: tuple[int, int] | None = None
                      ) -> tuple[Card, list[str]]:
    """The card that best stands for a hotadd of ``bars``, and the differences left
    (empty: every BAR matches in type and size). ``ids``: the vendor and device the line
    names outright (its ``ids``, or a known driver's example ids): drivers match by id, so
    a card with exactly those ids wins whatever its BARs; otherwise the card closest in
    BARs does."""
    needs = _bar_needs(bars)
    best: tuple[tuple[int, int, int], Card, list[str]] | None = None
    for card in CARDS:
        have = {i: (kind, size) for i, kind, size, _p in card.bars}
        diffs, covered, exact = [], 0, 0
        for i, kind, size, _pref in needs:
            if i not in have or have[i][0] != kind:
                diffs.append(f"BAR{i} {kind} {size:#x}: the {card.qemu} card has none")
                continue
            covered += 1
            if have[i][1] == size:
                exact += 1
            else:
                diffs.append(f"BAR{i} is {have[i][1]:#x} on the {card.qemu} card, "
                             f"{size:#x} in the model")
        for i, kind, size, _p in card.bars:
            if i not in {n[0] for n in needs}:
                diffs.append(f"the {card.qemu} card also has BAR{i} ({kind} {size:#x})")
        score = (int(card.ids == ids), covered, exact - len(diffs))
        if best is None or score > best[0]:
            best = (score, card, diffs)
    assert best is not None
    return best[1], best[2]


def hotadd_ids(op: object) -> tuple[tuple[int, int], tuple[int, int] | None]:
    """A hotadd line's (vendor, device) in the model, and the same if the line names
    them outright (``ids``, or a ``driver`` the model has example ids for), else None."""
    spec = op.spec()  # type: ignore[attr-defined]
    given = bool(getattr(op, "ids", "")) or getattr(op, "driver", "") in EXAMPLE_IDS
    ids = (spec.vendor, spec.device)
    return ids, ids if given else None


# --- machines ----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class GuestMachine:
    """QEMU arguments for a Program's machine, and how it takes hot-added cards."""

    name: str
    args: tuple[str, ...]
    q35: bool
    notes: tuple[str, ...] = ()


# Built-in machines -> the closest QEMU guest (the shipped capture of each is the model's
# view of that guest: `# machine: qemu-q35-seabios` runs the same as qemu-q35 would).
BUILTIN: dict[str, tuple[str, tuple[str, ...]]] = {
    "qemu-q35": ("qemu-q35-seabios", (
        "the model's qemu-q35 is an OVMF guest; the real one boots SeaBIOS (other RAM and "
        "window layout: addresses inside BARs are translated)",)),
    "qemu-q35-bare": ("", ("-M", "q35", "-m", "4G")),
    "minimal": ("", ("-M", "pc", "-m", "1G")),
}


def guest_for(machine: str | None) -> GuestMachine:
    """QEMU arguments for the Program header's machine (None: the default machine).
    KeyError for a machine no QEMU guest stands for."""
    name = machine or "qemu-q35"
    if name in BUILTIN:
        capture, rest = BUILTIN[name]
        if capture:
            dump = load_dump(capture)
            args = tuple(shlex.split(dump.get("qemu")))
            return GuestMachine(name, args, "q35" in args, rest)
        return GuestMachine(name, rest, "q35" in rest,
                            (f"the model's {name} is a hand-written layout; the real guest "
                             "is QEMU's (addresses inside BARs are translated)",))
    if name == "empty":
        raise KeyError("the 'empty' machine has no firmware at all: no real system boots "
                       "like it")
    dump = load_dump(name)
    if dump.get("qemu"):
        args = tuple(shlex.split(dump.get("qemu")))
        return GuestMachine(name, args, "q35" in args)
    return _from_dump(name, dump)


def _from_dump(name: str, dump: MachineDump) -> GuestMachine:
    """QEMU arguments approximating a capture of other hardware."""
    q35 = "PCI MMCONFIG" in dump.iomem
    ram = 0
    for line in dump.iomem.splitlines():
        if line.endswith(" : System RAM") and not line.startswith(" "):
            lo, hi = line.split(" : ")[0].split("-")
            ram += int(hi, 16) - int(lo, 16) + 1
    mib = max(256, -(-ram // (128 << 20)) * 128)
    args = ["-M", "q35" if q35 else "pc", "-m", f"{mib}M"]
    notes = []
    for dev in dump.devices:
        card = CARD_BY_ID.get((dev.vendor, dev.device))
        domain, bus, slot = dev.bdf[:4], dev.bdf[5:7], dev.bdf[8:]
        if card is not None and domain == "0000" and bus == "00":
            args += ["-device", f"{card.qemu},addr={slot}"]
        elif dev.pci_class >> 16 != 0x06:  # bridges come with the chipset
            notes.append(f"{dev.bdf} ({dev.vendor:04x}:{dev.device:04x}) has no QEMU "
                         "stand-in here")
    return GuestMachine(name, tuple(args), q35, tuple(notes))
