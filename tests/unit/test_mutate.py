"""The structure-aware mutator: total, size-bounded, and handle references keep naming
the line they named (or become nil) through every structural change."""

from __future__ import annotations

import random
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from iomemfuzz.fuzz import decode, mutate, textinput
from iomemfuzz.fuzz.executor import run
from iomemfuzz.fuzz.ops import Kind
from iomemfuzz.fuzz.ops.tree import ReleaseResource, RemoveResource, RequestRegion
from iomemfuzz.fuzz.program import Program
from iomemfuzz.fuzz.program_parse import parse_program

FAST = settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))

A = RequestRegion(start=0x1000)
B = RequestRegion(start=0x2000)


def _valid(ops) -> bool:
    bound = 0
    for o in ops:
        for name, a in type(o).args():
            value = getattr(o, name)
            if a.kind in (Kind.HANDLE, Kind.NODE) and isinstance(value, int) and value >= bound:
                return False
        bound += type(o).BINDS
    return True


def test_reorder_deleting_a_line_matches_program_delete():
    ops = [A, B, ReleaseResource(res=0), ReleaseResource(res=1)]
    via_reorder = mutate.reorder(ops, [0, 2, 3])
    via_program = list(Program().with_ops(ops).delete(1).ops)
    assert via_reorder == via_program == [A, ReleaseResource(res=0), ReleaseResource(res=None)]


def test_swap_keeps_references_on_their_lines():
    ops = [A, B, ReleaseResource(res=0), ReleaseResource(res=1)]
    swapped = mutate.reorder(ops, [1, 0, 2, 3])
    # B now binds r0 and A r1: each release still names the same claim.
    assert swapped == [B, A, ReleaseResource(res=1), ReleaseResource(res=0)]
    # A use moved before its creating line loses it.
    assert mutate.reorder(ops, [2, 0, 1, 3])[0] == ReleaseResource(res=None)


def test_duplicate_then_later_uses_name_the_copy():
    ops = [A, ReleaseResource(res=0)]
    assert mutate.reorder(ops, [0, 0, 1]) == [A, A, ReleaseResource(res=1)]


def test_insert_shifts_later_handles():
    ops = [A, ReleaseResource(res=0)]
    assert mutate.insert(ops, 0, B) == [B, A, ReleaseResource(res=1)]
    assert mutate.insert(ops, 2, RemoveResource(res=0)) == [*ops, RemoveResource(res=0)]


def test_splice_maps_tail_handles():
    head = [A]
    tail = [B, RequestRegion(start=0x3000), ReleaseResource(res=1), ReleaseResource(res=0)]
    spliced = mutate.splice(head, tail, 1, 1)
    # tail's r1 (kept) becomes the spliced Program's r1; tail's r0 (dropped) names r0.
    assert spliced == [A, RequestRegion(start=0x3000), ReleaseResource(res=1),
                       ReleaseResource(res=0)]
    assert mutate.splice([], tail, 0, 1)[-1] == ReleaseResource(res=None)


@FAST
@given(st.binary(max_size=400), st.integers(0, 2**32 - 1), st.integers(0, 600))
def test_mutate_is_total_and_bounded(data, seed, max_size):
    out = mutate.mutate(data, max_size, seed)
    assert isinstance(out, bytes) and len(out) <= max_size
    assert _valid(list(textinput.read(out).ops))


@FAST
@given(st.binary(max_size=300), st.binary(max_size=300), st.integers(0, 2**32 - 1),
       st.integers(0, 600))
def test_crossover_is_total_and_bounded(a, b, seed, max_size):
    out = mutate.crossover(a, b, max_size, seed)
    assert len(out) <= max_size
    assert _valid(list(textinput.read(out).ops))


def test_mutations_change_programs_and_are_seeded():
    rng = random.Random(3)
    changed = 0
    for i in range(200):
        data = textinput.write(decode.decode_ops(rng.randbytes(120)))
        out = mutate.mutate(data, 512, i)
        assert out == mutate.mutate(data, 512, i)  # deterministic for a seed
        changed += textinput.read(out).ops != textinput.read(data).ops
    assert changed > 150


def test_byte_mutator_gets_a_share():
    calls = []

    def bytes_only(data: bytes, max_size: int) -> bytes:
        calls.append(1)
        return data[:max_size]

    for seed in range(200):
        mutate.mutate(b"\x02\x00\x01", 64, seed, bytes_only)
    assert 40 < len(calls) < 120  # BYTE_SHARE of 200 calls


def test_truncation_keeps_prefixes_that_stop_with_a_task_parked():
    """B1 is a prefix of a seed: stepping a host probe to just before it creates sysfs
    files and stopping there lets the rest of boot (pci_sysfs_init) meet it."""
    text = (Path(__file__).resolve().parents[2] / "corpus" / "seeds"
            / "pci-boot-async-host-static.prog").read_text()
    ops = list(parse_program(text).ops)
    prefixes = set()
    for seed in range(400):
        out, at = mutate.mutate_ops(ops, random.Random(seed))
        if len(out) < len(ops) - 1 and out == ops[:len(out)]:
            prefixes.add(len(out))
            assert at == len(out)
    assert prefixes >= {1, 2, 3, 4, 5}
    assert any(s.startswith("duplicate-attributes/duplicate-filename/") for s in run(
        Program().with_ops(ops[:4]), "v6.1-deb").signatures)
