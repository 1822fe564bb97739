"""Whatever the fuzzer runs can be replayed from its text: running a decoded Program and
running its canonical text give the same Trace, on any profile."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from iomemfuzz.fuzz import decode, encode
from iomemfuzz.fuzz.executor import run, run_ops
from iomemfuzz.fuzz.program_format import format_program
from iomemfuzz.fuzz.program_parse import parse_program
from iomemfuzz.model.profile import PROFILES

SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _fingerprint(trace):
    return [(s.index, s.op, s.outcome, s.events, s.violations) for s in trace.steps]


@SETTINGS
@given(st.binary(max_size=400), st.sampled_from(sorted(PROFILES)))
def test_replaying_decoded_program_text_gives_the_same_trace(data, profile):
    program = decode.decode(data)
    # The fuzz target's fast mode checks whole-state invariants at the end only; compare
    # like with like (both modes are deterministic).
    for thorough in (False, True):
        direct = run_ops(program.ops, profile, thorough=thorough)  # the fuzz target
        replayed = run(parse_program(format_program(program)), profile, thorough=thorough)
        assert _fingerprint(direct) == _fingerprint(replayed)
    assert direct.accepted == replayed.accepted


@SETTINGS
@given(st.binary(max_size=400))
def test_encoded_program_runs_identically(data):
    program = decode.decode(data)
    again = decode.decode(encode.encode(program))
    assert _fingerprint(run(again)) == _fingerprint(run(program))
