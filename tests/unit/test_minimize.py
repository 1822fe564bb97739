"""The minimizer: same signature on the same profile, deterministic, coarse to fine,
records (never follows) other signatures, and writes replayable corpus files."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from iomemfuzz.fuzz import decode
from iomemfuzz.fuzz.cli import main
from iomemfuzz.fuzz.executor import run
from iomemfuzz.fuzz.minimize import NothingToMinimize, minimize, minimize_file
from iomemfuzz.fuzz.ops import ordered_ops
from iomemfuzz.fuzz.program_file import read_program
from iomemfuzz.fuzz.program_format import format_program
from iomemfuzz.fuzz.program_parse import parse_program
from iomemfuzz.fuzz.replay import check_program

GAP = 0xFE000000
# B16 needs callers that break their contract (a release of what was never requested,
# or with another length): the misuse profile.
MISUSE = "# profile: v6.1-deb-misuse\n"
RELEASE = "busy-consistency/release-without-claim/__release_region/wrong-size"
NEVER = "busy-consistency/release-without-claim/__release_region/never-requested"
NULL_DEREF = "kernel-sanity/null-deref/__release_resource"

NOISY_B16 = parse_program(f"""\
# profile: v6.1-deb-misuse
region_intersects(start=0x1000, size=0x2000)
r0 = __request_region(start={GAP:#x}, n=0x100, name="drv")
iomem_is_exclusive(addr={GAP:#x})
r1 = __request_region(start=0xfd000000, n=0x100)
page_is_ram(pfn=0x100)
__release_region(start={GAP:#x}, n=0x80)
release_resource(res=r1)
region_intersects(start={GAP:#x})
""")


def test_noise_is_dropped_and_the_signature_kept():
    result = minimize(NOISY_B16)
    assert result.signature == RELEASE
    assert result.trace.signatures[0] == RELEASE
    # The claim and the shorter release: without the claim it would be a release of a
    # range nobody holds, another mechanism (NEVER), which the minimizer does not follow.
    assert [type(ln.op).NAME for ln in result.program.lines] == [
        "__request_region", "__release_region"]
    assert result.original_length == len(NOISY_B16.lines)


def test_minimization_is_deterministic():
    first = minimize(NOISY_B16)
    second = minimize(NOISY_B16)
    assert first.program == second.program and first.runs == second.runs


def test_other_signatures_are_recorded_not_followed():
    program = parse_program(MISUSE + f"""\
r0 = request_resource()
release_resource(res=r0)
__release_region(start={GAP:#x}, n=0x80)
""")
    assert run(program).signatures[0] == NULL_DEREF
    result = minimize(program, signature=NEVER)
    assert NEVER in result.trace.signatures
    assert NULL_DEREF in result.others
    assert run(result.others[NULL_DEREF], "v6.1-deb-misuse").signatures[0] == NULL_DEREF


def test_values_shrink_together_and_towards_simplest():
    program = parse_program(MISUSE + f"""\
r0 = request_resource(start={GAP + 0x2345:#x}, end={GAP + 0x2345:#x})
release_resource(res=r0)
release_resource(res=r0)
""")
    sig = run(program).signatures[0]
    result = minimize(program)
    assert result.signature == sig
    for line, original in zip(result.program.lines, program.lines, strict=False):
        for name, a in type(line.op).args():
            value = getattr(line.op, name)
            if isinstance(value, int) and isinstance(getattr(original.op, name), int):
                assert value <= getattr(original.op, name) or value == a.simplest


def test_schedule_lines_are_dropped_when_not_needed():
    schedule = [c for c in ordered_ops() if c.SCHEDULE and not c.CONTROLS_BOOT
                and not c.BINDS]
    if not schedule:
        pytest.skip("no schedule operations registered")
    program = NOISY_B16.with_ops([*NOISY_B16.ops[:3], schedule[0](), *NOISY_B16.ops[3:]])
    result = minimize(program)
    assert not any(type(o).SCHEDULE for o in result.program.ops)


def test_clean_program_has_nothing_to_minimize():
    with pytest.raises(NothingToMinimize):
        minimize(parse_program(f"r0 = __request_region(start={GAP:#x}, n=0x100)\n"))
    with pytest.raises(NothingToMinimize):
        minimize(NOISY_B16, signature="kernel-sanity/hang")


def _random_finding_programs(count: int) -> list:
    """Decoded Programs that find something, on the misuse profile (random bytes break
    the driver contract often; on the default profile findings are rare), at most
    3,000 tries: this runs at collection."""
    rng = random.Random(11)
    out = []
    for _ in range(3000):
        program = decode.decode(rng.randbytes(rng.randrange(50, 300))).with_headers(
            profile="v6.1-deb-misuse")
        if run(program).signatures:
            out.append(program)
            if len(out) == count:
                break
    return out


@pytest.mark.parametrize("program", _random_finding_programs(6))
def test_properties_on_decoded_findings(program):
    sig = run(program).signatures[0]
    result = minimize(program, max_runs=600)
    assert result.signature == sig
    # The minimized Program is bare: it runs on the profile it was minimized for.
    assert run(result.program, program.profile).signatures[0] == sig  # same first one
    assert len(result.program.lines) <= len(program.lines)
    # A second pass finds nothing more to drop (the passes run to a fixpoint).
    again = minimize(result.program, program.profile, max_runs=600)
    assert len(again.program.lines) == len(result.program.lines)


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.binary(min_size=20, max_size=200))
def test_minimized_program_keeps_signature_and_never_grows(data):
    program = decode.decode(data)
    sigs = run(program).signatures
    if not sigs:
        return
    result = minimize(program, max_runs=300)
    assert run(result.program).signatures[0] == sigs[0]
    assert len(result.program.lines) <= len(program.lines)


def test_corpus_form_replays(tmp_path):
    source = tmp_path / "noisy.prog"
    source.write_text(format_program(NOISY_B16))
    out = tmp_path / "min.prog"
    _result, text = minimize_file(source, out)
    assert out.read_text() == text
    program = read_program(str(out))
    assert program.profile == "v6.1-deb-misuse"
    assert program.expectations()[None][0] == f"finding {RELEASE}"
    assert program.header("replay") == f"iomemfuzz replay --profile v6.1-deb-misuse {out}"
    assert all(line.expect is not None for line in program.lines)
    assert check_program(program, str(out), text).ok


def test_cli_minimize(tmp_path, capsys):
    source = tmp_path / "noisy.prog"
    source.write_text(format_program(NOISY_B16))
    assert main(["minimize", str(source)]) == 0
    out = capsys.readouterr()
    assert f"# expect: finding {RELEASE}" in out.out
    assert "8 -> 2 operations" in out.err
    assert main(["minimize", str(source), "-o", str(tmp_path / "m.prog")]) == 0
    assert main(["replay", str(tmp_path / "m.prog")]) == 0
    clean = tmp_path / "clean.prog"
    clean.write_text(f"r0 = __request_region(start={GAP:#x}, n=0x100)\n")
    assert main(["minimize", str(clean)]) == 2
