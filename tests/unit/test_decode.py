"""bytes -> Program: total, deterministic, built from the op table, biased the way a kernel
developer picks values; and the encoder that inverts it on its own outputs."""

from __future__ import annotations

import dataclasses
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from iomemfuzz.fuzz import decode, decode_fields, decode_tables, encode
from iomemfuzz.fuzz import ops as ops_module
from iomemfuzz.fuzz.ops import Kind, Op, arg, op, ordered_ops
from iomemfuzz.fuzz.ops.tree import ReleaseResource, RequestRegion
from iomemfuzz.fuzz.program import Program
from iomemfuzz.fuzz.program_format import format_program
from iomemfuzz.fuzz.program_parse import parse_program

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _handle_refs_are_bound_earlier(program: Program) -> bool:
    bound = 0
    for line in program.lines:
        for name, a in type(line.op).args():
            value = getattr(line.op, name)
            if a.kind in (Kind.HANDLE, Kind.NODE) and isinstance(value, int) and value >= bound:
                return False
        bound += type(line.op).BINDS
    return True


@FAST
@given(st.binary(max_size=1024))
def test_every_byte_string_decodes_to_a_valid_program(data):
    program = decode.decode(data)
    assert len(program.lines) <= min(len(data), decode.MAX_OPS)
    assert _handle_refs_are_bound_earlier(program)
    # Valid means: its canonical text parses back to the same Program.
    assert parse_program(format_program(program)) == program
    assert decode.decode(data) == program  # deterministic


@FAST
@given(st.binary(max_size=600), st.integers(0, 600))
def test_truncating_input_keeps_every_complete_operation(data, cut):
    whole = decode.decode(data).lines
    part = decode.decode(data[:cut]).lines
    # Records are self-delimiting: all but the possibly truncated last one are unchanged.
    keep = max(0, len(part) - 1)
    assert part[:keep] == whole[:keep]


def test_short_inputs_give_short_programs():
    assert decode.decode(b"") == Program()
    assert len(decode.decode(b"\x01").lines) == 1
    assert len(decode.decode(b"\x01\x00" * 10).lines) == 10
    # Empty records are padding: runs of zero bytes add no operations.
    assert decode.decode(bytes(10)) == Program()
    assert len(decode.decode(b"\x01\x00" + bytes(20) + b"\x01\x00").lines) == 2


@FAST
@given(st.binary(max_size=1024))
def test_encode_inverts_decode_on_decoder_outputs(data):
    program = decode.decode(data)
    assert decode.decode(encode.encode(program)) == program


def test_every_registered_operation_is_reachable_by_its_number():
    classes = ordered_ops()
    assert decode.op_table()[0] == classes
    for cls in classes:
        assert type(decode.decode(bytes([2, *decode.selector(cls)])).lines[0].op) is cls


def test_a_new_family_is_picked_up_without_touching_the_decoder(monkeypatch):
    monkeypatch.setattr(ops_module, "REGISTRY", dict(ops_module.REGISTRY))
    decode.op_table.cache_clear()
    try:
        @op("test_only_probe", family="test")
        class Probe(Op):
            """A probe with one field of each numeric kind."""

            addr: int = arg(Kind.ADDR, 0)
            size: int = arg(Kind.SIZE, 1)

        # selector (family slot, index in the family), addr: table entry 7
        program = decode.decode(bytes([5, *decode.selector(Probe), 1, 7, 0]))
        assert type(program.lines[0].op) is Probe
        assert program.lines[0].op.addr == decode_tables.tables()[Kind.ADDR][7]
        assert decode.decode(encode.encode(program)) == program
    finally:
        decode.op_table.cache_clear()


def test_machine_regions_are_in_the_value_tables():
    from iomemfuzz.model.kernel import Kernel
    from iomemfuzz.model.resource_check import preorder

    addrs = set(decode_tables.tables()[Kind.ADDR])
    sizes = set(decode_tables.tables()[Kind.SIZE])
    for node, depth in preorder(Kernel().resources.iomem_resource):
        if depth == 0 and node.start in decode_tables.machine_values()[0]:
            assert node.start in addrs or len(addrs) == 256
    for edge in (0, 1, 0xFFF, 0x1000, 0x1001, (1 << 64) - 1):
        assert edge in sizes


def test_values_lean_on_tables_earlier_values_and_existing_handles():
    rng = random.Random(7)
    interesting = set(decode_tables.tables()[Kind.ADDR]) | set(decode_tables.tables()[Kind.SIZE])
    picked = reused = total = 0
    refs = fitting = 0
    for _ in range(400):
        program = decode.decode(rng.randbytes(300))
        seen: set[int] = set()
        binders: list[str] = []
        for line in program.lines:
            for name, a in type(line.op).args():
                value = getattr(line.op, name)
                if a.kind in (Kind.ADDR, Kind.SIZE):
                    total += 1
                    picked += value in interesting or value == a.simplest
                    reused += value in seen
                    seen.add(value)
                elif a.kind is Kind.HANDLE and any(
                        not a.choices or b in a.choices for b in binders):
                    # A handle of the kind the field names exists: it should be used.
                    refs += 1
                    fitting += value is not None and (
                        not a.choices or binders[value] in a.choices)
            if type(line.op).BINDS:
                binders.append(type(line.op).NAME)
    assert picked / total > 0.5
    assert reused / total > 0.1
    assert fitting / refs > 0.6


def test_low_selector_bytes_pick_an_operation_that_uses_the_latest_handle():
    state = decode_fields.State()
    first = decode.decode_record(decode.selector(RequestRegion), state)
    assert type(first).BINDS
    users = decode.consumers(type(first).NAME)
    assert users
    for b in range(decode.CONSUMER_SLOTS):
        o = decode.decode_record(bytes([b]), state.copy())
        assert type(o) in users


def test_earlier_values_can_be_reused_exactly():
    state = decode_fields.State()
    first = RequestRegion(start=0xFE000000, n=0x100)
    data = encode.encode_op(first, state)
    second = dataclasses.replace(RequestRegion(), start=0xFE000000, n=0x80)
    record = encode.encode_op(second, state)
    # start comes from the pool (2 bytes), n = 0x100 >> 1 is a nudge of a pool value.
    assert len(record) < 12
    assert decode.decode_ops(data + record) == [first, second]


def test_handles_follow_their_lines_through_the_encoding():
    program = Program().with_ops([RequestRegion(start=0x1000), RequestRegion(start=0x2000),
                                  ReleaseResource(res=0), ReleaseResource(res=1),
                                  ReleaseResource(res=None)])
    assert decode.decode(encode.encode(program)) == program


def test_encode_rejects_what_it_cannot_carry():
    with pytest.raises(ValueError):
        encode.encode(parse_program("# profile: v6.1\n\n__release_region()\n"))
    with pytest.raises(ValueError):
        encode.encode(Program().with_ops([RequestRegion(name="x" * 40)]))
    with pytest.raises(ValueError):
        encode.encode_ops([ReleaseResource()] * (decode.MAX_OPS + 1))


def test_handle_fields_prefer_the_operations_they_name(monkeypatch):
    from iomemfuzz.fuzz.ops.tree import RequestResource

    monkeypatch.setattr(ops_module, "REGISTRY", dict(ops_module.REGISTRY))
    decode.op_table.cache_clear()
    try:
        @op("test_only_user", family="test")
        class User(Op):
            """Uses a claim made by __request_region."""

            res: int | None = arg(Kind.HANDLE, None, choices=("__request_region",))

        data = bytes([2, *decode.selector(RequestRegion), 2, *decode.selector(RequestResource),
                      3, *decode.selector(User), 0])
        ops = decode.decode_ops(data)
        # The most recent handle is r1 (request_resource); the typed choice is r0.
        assert ops[2] == User(res=0)
        assert decode.decode_ops(encode.encode_ops(ops)) == ops
    finally:
        decode.op_table.cache_clear()


def test_follow_slots_pick_an_operation_on_the_latest_address():
    state = decode_fields.State()
    # parent: iomem; start: mode TABLE, the 6th table address
    decode.decode_record(bytes([*decode.selector(RequestRegion), 0, 1, 5]), state)
    latest = state.addrs[0]
    assert latest == decode_tables.tables()[Kind.ADDR][5]
    near = decode.followers()
    assert RequestRegion in near
    for b in range(decode.CONSUMER_SLOTS, decode.SELECT_BASE):
        o = decode.decode_record(bytes([b, 3, 0x10]), state.copy())
        assert type(o) in near
        first_addr = next(getattr(o, n) for n, a in type(o).args() if a.kind is Kind.ADDR)
        a = next(a for _, a in type(o).args() if a.kind is Kind.ADDR)
        assert first_addr == decode_tables.fit(latest, a)


def test_addresses_and_sizes_are_reused_by_kind():
    state = decode_fields.State()
    encode.encode_op(RequestRegion(start=0xFE000000, n=0x100), state)
    assert state.addrs[0] == 0xFE000000 and 0xFE0000FF in state.addrs
    assert state.sizes == [0x100]
