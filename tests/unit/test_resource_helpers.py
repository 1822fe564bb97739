"""include/linux/ioport.h helpers: the kunit vectors of kernel/resource_kunit.c (spec §8.1)
plus the other pure helpers and the %pR format."""

from __future__ import annotations

import pytest
from iomemfuzz.model.ioport import (
    IORESOURCE_BUS,
    IORESOURCE_BUSY,
    IORESOURCE_DISABLED,
    IORESOURCE_DMA,
    IORESOURCE_IO,
    IORESOURCE_IRQ,
    IORESOURCE_MEM,
    IORESOURCE_MEM_64,
    IORESOURCE_PREFETCH,
    IORESOURCE_REG,
    IORESOURCE_SIZEALIGN,
    IORESOURCE_STARTALIGN,
    IORESOURCE_SYSRAM,
    IORESOURCE_SYSTEM_RAM,
    IORESOURCE_UNSET,
    IORESOURCE_WINDOW,
    U64_MAX,
    Resource,
    format_resource,
    resource_contains,
    resource_ext_type,
    resource_intersection,
    resource_overlaps,
    resource_set_range,
    resource_set_size,
    resource_size,
    resource_type,
    resource_union,
)
from iomemfuzz.model.resource_alloc import resource_alignment

# kernel/resource_kunit.c fixed ranges.
R = {
    "r0": (0x0000, 0xFFFF),
    "r1": (0x1234, 0x2345),
    "r2": (0x4567, 0x5678),
    "r3": (0x6789, 0x789A),
    "r4": (0x2000, 0x7000),
}

# (a, b, ret, out.start, out.end); out stays (0, 0) when ret is False.
UNION = [
    ("r1", "r0", True, 0x0000, 0xFFFF),
    ("r2", "r0", True, 0x0000, 0xFFFF),
    ("r3", "r0", True, 0x0000, 0xFFFF),
    ("r4", "r0", True, 0x0000, 0xFFFF),
    ("r2", "r1", False, 0, 0),
    ("r3", "r1", False, 0, 0),
    ("r4", "r1", True, 0x1234, 0x7000),
    ("r2", "r3", False, 0, 0),
    ("r2", "r4", True, 0x2000, 0x7000),
    ("r3", "r4", True, 0x2000, 0x789A),
]

INTERSECTION = [
    ("r1", "r0", True, 0x1234, 0x2345),
    ("r2", "r0", True, 0x4567, 0x5678),
    ("r3", "r0", True, 0x6789, 0x789A),
    ("r4", "r0", True, 0x2000, 0x7000),
    ("r2", "r1", False, 0, 0),
    ("r3", "r1", False, 0, 0),
    ("r4", "r1", True, 0x2000, 0x2345),
    ("r2", "r3", False, 0, 0),
    ("r2", "r4", True, 0x4567, 0x5678),
    ("r3", "r4", True, 0x6789, 0x7000),
]


def _res(name: str) -> Resource:
    return Resource(*R[name])


@pytest.mark.parametrize("swap", [False, True], ids=["a-b", "b-a"])
@pytest.mark.parametrize(("a", "b", "ret", "start", "end"), UNION)
def test_resource_union_kunit(a, b, ret, start, end, swap):
    r1, r2 = (_res(b), _res(a)) if swap else (_res(a), _res(b))
    out = Resource(0, 0)
    assert resource_union(r1, r2, out) is ret
    assert (out.start, out.end) == (start, end)


@pytest.mark.parametrize("swap", [False, True], ids=["a-b", "b-a"])
@pytest.mark.parametrize(("a", "b", "ret", "start", "end"), INTERSECTION)
def test_resource_intersection_kunit(a, b, ret, start, end, swap):
    r1, r2 = (_res(b), _res(a)) if swap else (_res(a), _res(b))
    out = Resource(0, 0)
    assert resource_intersection(r1, r2, out) is ret
    assert (out.start, out.end) == (start, end)


@pytest.mark.parametrize("helper", [resource_union, resource_intersection])
def test_out_untouched_on_false_keeps_old_value_and_other_fields(helper):
    out = Resource(0x55, 0x66, "keep", IORESOURCE_MEM, 3)
    assert helper(Resource(0, 1), Resource(2, 3), out) is False
    assert (out.start, out.end, out.name, out.flags, out.desc) == (0x55, 0x66, "keep",
                                                                   IORESOURCE_MEM, 3)


def test_helpers_write_only_start_and_end():
    out = Resource(1, 1, "x", IORESOURCE_IO, 7)
    assert resource_union(Resource(0, 10), Resource(5, 20), out)
    assert (out.start, out.end, out.name, out.flags, out.desc) == (0, 20, "x", IORESOURCE_IO, 7)


def test_adjacent_ranges_are_not_merged_or_intersected():
    out = Resource(0, 0)
    assert not resource_union(Resource(0, 0xFFF), Resource(0x1000, 0x1FFF), out)
    assert not resource_intersection(Resource(0, 0xFFF), Resource(0x1000, 0x1FFF), out)


@pytest.mark.parametrize(("start", "end", "size"), [
    (0x1000, 0x1FFF, 0x1000),
    (5, 5, 1),
    (0, U64_MAX, 0),  # the whole space wraps to 0
    (0x1000, 0xFFF, 0),  # empty node
    (0x2000, 0xFFF, U64_MAX - 0xFFF),  # inverted node: wraps
])
def test_resource_size_is_u64(start, end, size):
    assert resource_size(Resource(start, end)) == size


def test_type_and_ext_type():
    r = Resource(0, 1, flags=IORESOURCE_SYSTEM_RAM | IORESOURCE_BUSY | IORESOURCE_PREFETCH)
    assert resource_type(r) == IORESOURCE_MEM
    assert resource_ext_type(r) == IORESOURCE_SYSRAM


@pytest.mark.parametrize(("f1", "f2", "r1", "r2", "expected"), [
    (IORESOURCE_MEM, IORESOURCE_MEM, (0, 0xFF), (0x10, 0x1F), True),
    (IORESOURCE_MEM, IORESOURCE_MEM, (0, 0xFF), (0, 0xFF), True),
    (IORESOURCE_MEM, IORESOURCE_MEM, (0x10, 0x1F), (0, 0xFF), False),
    (IORESOURCE_MEM, IORESOURCE_IO, (0, 0xFF), (0x10, 0x1F), False),  # types differ
    (IORESOURCE_MEM | IORESOURCE_UNSET, IORESOURCE_MEM, (0, 0xFF), (0x10, 0x1F), False),
    (IORESOURCE_MEM, IORESOURCE_MEM | IORESOURCE_UNSET, (0, 0xFF), (0x10, 0x1F), False),
    # Only the type bits are compared; BUSY or SYSRAM do not matter.
    (IORESOURCE_SYSTEM_RAM, IORESOURCE_MEM | IORESOURCE_BUSY, (0, 0xFF), (1, 2), True),
])
def test_resource_contains(f1, f2, r1, r2, expected):
    assert resource_contains(Resource(*r1, flags=f1), Resource(*r2, flags=f2)) is expected


@pytest.mark.parametrize(("r1", "r2", "expected"), [
    ((0, 0xFF), (0xFF, 0x1FF), True),
    ((0, 0xFF), (0x100, 0x1FF), False),
    ((0x100, 0x1FF), (0, 0xFF), False),
    ((0, U64_MAX), (5, 5), True),
])
@pytest.mark.parametrize("swap", [False, True])
def test_resource_overlaps_is_symmetric_and_ignores_flags(r1, r2, expected, swap):
    a, b = Resource(*r1, flags=IORESOURCE_IO), Resource(*r2, flags=IORESOURCE_MEM)
    if swap:
        a, b = b, a
    assert resource_overlaps(a, b) is expected


def test_set_size_and_range_wrap():
    r = Resource(0x1000, 0)
    resource_set_size(r, 0)
    assert r.end == 0xFFF
    resource_set_range(r, 0, 0)
    assert (r.start, r.end) == (0, U64_MAX)


@pytest.mark.parametrize(("flags", "expected"), [
    (IORESOURCE_SIZEALIGN, 0x100),
    (IORESOURCE_STARTALIGN, 0x1000),
    (IORESOURCE_SIZEALIGN | IORESOURCE_STARTALIGN, 0),
    (0, 0),
])
def test_resource_alignment(flags, expected):
    assert resource_alignment(Resource(0x1000, 0x10FF, flags=flags)) == expected


@pytest.mark.parametrize(("res", "decode", "text"), [
    (Resource(0xA0000, 0xBFFFF, flags=IORESOURCE_MEM), True, "[mem 0x000a0000-0x000bffff]"),
    (Resource(0x1000, 0x1FFF, flags=IORESOURCE_MEM | IORESOURCE_MEM_64 | IORESOURCE_PREFETCH
              | IORESOURCE_WINDOW | IORESOURCE_DISABLED), True,
     "[mem 0x00001000-0x00001fff 64bit pref window disabled]"),
    (Resource(0x380000000000, 0x3807FFFFFFFF, flags=IORESOURCE_MEM), True,
     "[mem 0x380000000000-0x3807ffffffff]"),
    (Resource(0x60, 0x60, flags=IORESOURCE_IO), True, "[io  0x0060]"),
    (Resource(0x2E, 0x2F, flags=IORESOURCE_IO), False, "[io  0x002e-0x002f flags 0x100]"),
    (Resource(0, 0x3F, flags=IORESOURCE_MEM | IORESOURCE_UNSET), True, "[mem size 0x00000040]"),
    (Resource(9, 9, flags=IORESOURCE_IRQ), True, "[irq 9]"),
    (Resource(1, 3, flags=IORESOURCE_DMA), True, "[dma 1-3]"),
    (Resource(0, 0xFF, flags=IORESOURCE_BUS), True, "[bus 00-ff]"),
    # REG (0x300) has the IO bit, which vsprintf tests first.
    (Resource(0, 7, flags=IORESOURCE_REG), True, "[io  0x0000-0x0007]"),
    (Resource(0, 7), True, "[??? 0x00000000-0x00000007 flags 0x0]"),
])
def test_format_resource_matches_vsprintf(res, decode, text):
    assert format_resource(res, decode) == text


def test_repr_is_percent_pR():
    assert repr(Resource(0x1000, 0x10FF, "d1", IORESOURCE_MEM | IORESOURCE_BUSY)) == (
        "[mem 0x00001000-0x000010ff]")
