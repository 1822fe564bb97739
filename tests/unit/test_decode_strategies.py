"""fuzz/strategies.py: what ops() and programs() draw is valid, round-trips as canonical
text, and (decodable=True) lies inside the encoder's domain."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from iomemfuzz.fuzz import decode, encode
from iomemfuzz.fuzz.executor import run
from iomemfuzz.fuzz.ops import ordered_ops
from iomemfuzz.fuzz.program_format import format_program
from iomemfuzz.fuzz.program_parse import parse_program
from iomemfuzz.fuzz.strategies import ops, programs

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(programs())
def test_programs_round_trip_as_canonical_text(program):
    text = format_program(program)
    assert parse_program(text) == program
    assert format_program(parse_program(text)) == text


@FAST
@given(programs(decodable=True))
def test_decodable_programs_are_inside_the_encoder_domain(program):
    assert decode.decode(encode.encode(program)) == program


@FAST
@given(ops(handles=3))
def test_ops_draws_registered_operations_with_bound_handles(o):
    assert type(o) in ordered_ops()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs(max_lines=8, metadata=False))
def test_drawn_programs_run(program):
    trace = run(program)
    assert len(trace.steps) == len(program.lines) + 1
