"""Machines and the /proc/iomem text format (spec §2.15): parse, render, round trips on the
default machine and on real-looking dumps, the name -> flags table, and fast boot."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from iomemfuzz.model.ioport import (
    IORES_DESC_ACPI_NV_STORAGE,
    IORES_DESC_ACPI_TABLES,
    IORES_DESC_CRASH_KERNEL,
    IORES_DESC_CXL,
    IORES_DESC_PERSISTENT_MEMORY_LEGACY,
    IORES_DESC_RESERVED,
    IORES_DESC_SOFT_RESERVED,
    IORESOURCE_BUSY,
    IORESOURCE_IO,
    IORESOURCE_MEM,
    IORESOURCE_READONLY,
    IORESOURCE_SYSRAM_DRIVER_MANAGED,
    IORESOURCE_SYSTEM_RAM,
    IORESOURCE_WINDOW,
    Resource,
)
from iomemfuzz.model.machine import (
    DEFAULT_MACHINE,
    IOMEM_DEFAULT_FLAGS,
    IOPORT_DEFAULT_FLAGS,
    MACHINES,
    Machine,
    ProcIomemSyntaxError,
    build_resource_tree,
    build_tree,
    name_flags,
    parse_proc_iomem,
    render_proc_iomem,
    shape,
)
from iomemfuzz.model.resource import REGION_INTERSECTS
from iomemfuzz.model.resource_check import preorder, tree_problems
from iomemfuzz.model.resource_tree import ResourceTree

DATA = Path(__file__).resolve().parents[1] / "data"
DUMPS = sorted(DATA.glob("*.iomem")) + sorted(DATA.glob("*.ioports"))
MEM, BUSY, RAM = IORESOURCE_MEM, IORESOURCE_BUSY, IORESOURCE_SYSTEM_RAM | IORESOURCE_BUSY


def root_for(path: Path, tree: ResourceTree) -> Resource:
    return tree.ioport_resource if path.suffix == ".ioports" else tree.iomem_resource


def test_there_are_enough_dumps():
    assert len([p for p in DUMPS if p.suffix == ".iomem"]) >= 3


@pytest.mark.parametrize("path", DUMPS, ids=[p.name for p in DUMPS])
def test_dump_round_trips_and_is_well_formed(path):
    text = path.read_text()
    tree = ResourceTree()
    root = parse_proc_iomem(text, root_for(path, tree))
    assert render_proc_iomem(root) == text
    assert tree_problems(root) == []
    again = parse_proc_iomem(render_proc_iomem(root), root_for(path, ResourceTree()))
    assert shape(again) == shape(root)


@pytest.mark.parametrize("machine", MACHINES.values(), ids=list(MACHINES))
def test_machine_round_trips(machine):
    tree = build_resource_tree(machine)
    assert render_proc_iomem(tree.iomem_resource) == machine.iomem
    assert render_proc_iomem(tree.ioport_resource) == machine.ioports
    for root in (tree.iomem_resource, tree.ioport_resource):
        assert tree_problems(root) == []
        rebuilt = parse_proc_iomem(render_proc_iomem(root), Resource(root.start, root.end,
                                                                     root.name, root.flags))
        assert shape(rebuilt) == shape(root)


def test_default_machine_has_the_expected_landmarks_and_no_bars():
    tree = build_resource_tree(DEFAULT_MACHINE)
    names = {r.name for r, _ in preorder(tree.iomem_resource)}
    for name in ("System RAM", "Reserved", "Video ROM", "System ROM", "PCI Bus 0000:00",
                 "IOAPIC 0", "Local APIC", "HPET 0", "ACPI Tables", "ACPI Non-volatile Storage",
                 "Kernel code", "Kernel data", "Kernel bss", "PCI MMCONFIG 0000 [bus 00-ff]"):
        assert name in names
    assert not any(n and n[:5] == "0000:" for n in names)  # BARs belong to the PCI model
    # ...and the functions behind those BARs are declared for it to enumerate.
    assert {d.name for d in DEFAULT_MACHINE.pci_devices} >= {"0000:00:01.0", "0000:00:02.0"}
    kernel_code = next(r for r, _ in preorder(tree.iomem_resource) if r.name == "Kernel code")
    assert kernel_code.parent.name == "System RAM" and kernel_code.flags == RAM


def test_build_is_fresh_every_time_and_not_slab():
    one, two = (build_resource_tree(DEFAULT_MACHINE) for _ in range(2))
    assert one.iomem_resource.child is not two.iomem_resource.child
    one.release_mem_region(0x1000, 0x9F000)  # release the busy low RAM node of tree one
    assert shape(two.iomem_resource) == DEFAULT_MACHINE.iomem_shape()
    assert not any(r.slab for r, _ in preorder(two.iomem_resource))


def test_build_tree_refuses_a_non_empty_tree():
    tree = build_resource_tree(DEFAULT_MACHINE)
    with pytest.raises(ValueError, match="not empty"):
        build_tree(DEFAULT_MACHINE, tree)


def test_machine_is_frozen_and_hashable():
    machine = MACHINES["minimal"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        machine.name = "x"
    assert hash(machine) == hash(dataclasses.replace(machine))


def test_nested_system_ram_is_seen_in_the_cxl_dump():
    tree = ResourceTree()
    parse_proc_iomem((DATA / "cxl-dax.iomem").read_text(), tree.iomem_resource)
    kmem = [r for r, d in preorder(tree.iomem_resource) if r.name == "System RAM (kmem)"]
    assert [len(list(_ancestors(r))) for r in kmem] == [3, 3]
    assert tree.region_intersects(0x4080000000, 0x1000, IORESOURCE_SYSTEM_RAM, 0) == (
        REGION_INTERSECTS)
    assert tree.page_is_ram(0x4080000000 >> 12)


def _ancestors(res: Resource):
    while res.parent is not None and res.parent.parent is not None:
        res = res.parent
        yield res


# --- format details -------------------------------------------------------------------------


def test_depth_is_capped_at_max_iores_level_and_parsed_back_by_containment():
    text = (DATA / "pci-many-bars.iomem").read_text()
    tree = ResourceTree()
    parse_proc_iomem(text, tree.iomem_resource)
    depths = {r.name: d for r, d in preorder(tree.iomem_resource) if r.name in ("igb", "nvme")}
    assert depths == {"igb": 7, "nvme": 6}
    assert "          d0200000-d021ffff : igb\n" in text  # printed at the cap (10 spaces)


def test_width_unprivileged_and_bad_name():
    tree = ResourceTree()
    tree.request_region(0x60, 1, None)
    tree.request_mem_region(0x1000, 0x10, "x")
    assert render_proc_iomem(tree.ioport_resource) == "0060-0060 : <BAD>\n"
    assert render_proc_iomem(tree.iomem_resource) == "00001000-0000100f : x\n"
    assert render_proc_iomem(tree.iomem_resource, privileged=False) == (
        "00000000-00000000 : x\n")
    back = parse_proc_iomem("0060-0060 : <BAD>\n", Resource(0, 0xFFFF, "PCI IO",
                                                              IORESOURCE_IO))
    assert back.child.name is None


def test_render_of_a_tree_built_by_operations_round_trips():
    tree = build_resource_tree(DEFAULT_MACHINE)
    root = tree.iomem_resource
    tree.request_mem_region(0xC0000000, 0x1000, "drv")
    tree.insert_resource(root, Resource(0xC0000000, 0xC0FFFFFF, "PCI Bus 0000:01", MEM))
    tree.request_mem_region(0xFEC00000, 0x400, "busy-under-busy?")  # fails: IOAPIC busy
    text = render_proc_iomem(root)
    again = parse_proc_iomem(text, Resource(0, root.end, "PCI mem", MEM))
    assert [(r.start, r.end, r.name, d) for r, d in preorder(again)] == [
        (r.start, r.end, r.name, d) for r, d in preorder(root)]


def test_render_stops_on_a_cyclic_tree():
    root = Resource(0, 0xFFFF, "PCI IO", IORESOURCE_IO)
    a = Resource(1, 2, "a")
    a.parent, root.child, a.sibling = root, a, a
    assert render_proc_iomem(root, max_lines=5).count("\n") == 5


@pytest.mark.parametrize(("text", "message"), [
    ("0000-00ff : a\n    0010-001f : b\n", "deeper"),
    ("0000-00ff : a\n   0010-001f : b\n", "even"),
    ("0000-00ff : a\n  0100-01ff : b\n", "not inside"),
    ("0000-00ff : a\n0080-01ff : b\n", "overlaps"),
    ("0100-01ff : a\n0000-00ff : b\n", "overlaps or precedes"),
    ("0000-00ff a\n", "expected"),
    ("0000-1ffff : big\n", "not inside"),
])
def test_parse_errors_name_the_line(text, message):
    with pytest.raises(ProcIomemSyntaxError, match=message) as info:
        parse_proc_iomem(text, Resource(0, 0xFFFF, "PCI IO", IORESOURCE_IO))
    assert info.value.lineno == len(text.splitlines())


def test_parse_accepts_an_empty_node():
    root = parse_proc_iomem("00001000-00000fff : empty\n00001000-00001fff : next\n",
                            Resource(0, (1 << 64) - 1, "PCI mem", MEM))
    assert [p.kind for p in tree_problems(root)] == ["I3-empty"]


# --- name -> flags table -----------------------------------------------------------------------


@pytest.mark.parametrize(("name", "start", "flags", "desc"), [
    ("System RAM", 0x1000, RAM, 0),
    ("Kernel code", 0x1000000, RAM, 0),
    ("Kernel rodata", 0x1000000, RAM, 0),
    ("Kernel data", 0x1000000, RAM, 0),
    ("Kernel bss", 0x1000000, RAM, 0),
    ("Crash kernel", 0x1000000, RAM, IORES_DESC_CRASH_KERNEL),
    ("Reserved", 0, MEM | BUSY, IORES_DESC_RESERVED),  # below 1 MiB: busy
    ("Reserved", 0x7FFE0000, MEM, IORES_DESC_RESERVED),
    ("reserved", 0x7FFE0000, MEM, IORES_DESC_RESERVED),
    ("ACPI Tables", 0x7E0AE000, MEM | BUSY, IORES_DESC_ACPI_TABLES),
    ("ACPI Non-volatile Storage", 0x800000, MEM | BUSY, IORES_DESC_ACPI_NV_STORAGE),
    ("Soft Reserved", 0x2080000000, MEM, IORES_DESC_SOFT_RESERVED),
    ("Persistent Memory (legacy)", 0x500000000, MEM, IORES_DESC_PERSISTENT_MEMORY_LEGACY),
    ("Video ROM", 0xC0000, MEM | BUSY | IORESOURCE_READONLY, 0),
    ("PCI Bus 0000:00", 0xC0000000, MEM | IORESOURCE_WINDOW, 0),
    ("IOAPIC 0", 0xFEC00000, MEM | BUSY, 0),
    ("HPET 0", 0xFED00000, MEM, 0),
    ("Local APIC", 0xFEE00000, MEM | BUSY, 0),
    ("CXL Window 0", 0x4080000000, MEM, IORES_DESC_CXL),
    ("dax0.0", 0x4080000000, IORESOURCE_SYSTEM_RAM, 0),
    ("System RAM (kmem)", 0x4080000000, RAM | IORESOURCE_SYSRAM_DRIVER_MANAGED, 0),
    ("0000:00:02.0", 0xE0000000, MEM, 0),
    ("PNP0103:00", 0xFED00000, MEM, 0),
    ("virtio-pci-modern", 0xE1000000, IOMEM_DEFAULT_FLAGS, 0),
])
def test_iomem_name_flags(name, start, flags, desc):
    assert name_flags(name, start, io=False) == (flags, desc)


@pytest.mark.parametrize(("name", "flags"), [
    ("PCI Bus 0000:00", IORESOURCE_IO | IORESOURCE_WINDOW),
    ("0000:00:1f.4", IORESOURCE_IO),
    ("pnp 00:05", IORESOURCE_IO),
    ("QEMU0002:00", IORESOURCE_IO),
    ("keyboard", IOPORT_DEFAULT_FLAGS),
    ("ACPI PM_TMR", IOPORT_DEFAULT_FLAGS),
])
def test_ioport_name_flags(name, flags):
    assert name_flags(name, 0x60, io=True) == (flags, 0)


def test_a_machine_from_a_dump_boots():
    text = (DATA / "laptop-reserved-holes.iomem").read_text()
    machine = Machine("laptop", "dump", text, (DATA / "laptop.ioports").read_text())
    tree = build_resource_tree(machine)
    assert render_proc_iomem(tree.iomem_resource) == text
    # A driver can claim inside a non-busy Reserved hole above 1 MiB, not below it.
    assert tree.request_mem_region(0x40000000, 0x1000, "drv") is not None
    assert tree.request_mem_region(0x9F000, 0x1000, "drv") is None
