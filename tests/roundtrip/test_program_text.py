"""Program text: canonical round trips, strict errors with file/line/column."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from iomemfuzz.fuzz.ops.tree import ReleaseRegion, RequestRegion
from iomemfuzz.fuzz.program import Line, Program
from iomemfuzz.fuzz.program_format import format_program
from iomemfuzz.fuzz.program_parse import ProgramSyntaxError, parse_program

CANONICAL = """\
# profile: v6.1-deb
# catalog: B16
# expect: finding busy-consistency/release-without-claim
# expect@next-2026: finding busy-consistency/release-without-claim
# A driver releases half of what it claimed.

# the claim
r0 = __request_region(start=0xfe000000, n=0x100, flags=MEM|BUSY, name="d\\"q")  # ok
__release_region(start=0xfe000000, n=0x80)  # ok
r1 = request_resource(parent=r0, start=0x10, end=0x1f)  # EBUSY
release_resource(res=r1)  # = 0x2
release_resource()
# trailing words
"""


def test_canonical_text_round_trips():
    program = parse_program(CANONICAL, "x.prog")
    assert format_program(program) == CANONICAL
    assert parse_program(format_program(program)) == program


def test_parsed_structure():
    p = parse_program(CANONICAL)
    assert p.profile == "v6.1-deb"
    assert p.catalog == ("B16",)
    assert p.expectations() == {
        None: ("finding busy-consistency/release-without-claim",),
        "next-2026": ("finding busy-consistency/release-without-claim",),
    }
    assert p.notes == ("A driver releases half of what it claimed.",)
    first = p.lines[0]
    assert first.comments == ("the claim",)
    assert first.op == RequestRegion(start=0xFE000000, n=0x100, flags=0x80000200, name='d"q')
    assert first.expect == "ok"
    assert p.lines[2].op.parent == 0  # r0
    assert p.lines[3].expect == "= 0x2"
    assert p.trailer == ("trailing words",)


def test_defaults_are_omitted_and_accepted():
    p = Program((Line(ReleaseRegion()),))
    assert format_program(p) == "__release_region()\n"
    assert parse_program("__release_region(parent=iomem, n=0x1)\n") == p


def test_dangling_handle_is_nil_not_an_error():
    p = parse_program("release_resource(res=r7)\n")
    assert p.lines[0].op.res is None
    assert format_program(p) == "release_resource()\n"


def test_handles_are_renumbered_densely():
    text = "r5 = __request_region()\nr9 = __request_region()\nrelease_resource(res=r9)\n"
    assert format_program(parse_program(text)) == (
        "r0 = __request_region()\nr1 = __request_region()\nrelease_resource(res=r1)\n")


def test_delete_turns_references_to_nil_and_renumbers():
    p = parse_program("r0 = __request_region()\nr1 = __request_region()\n"
                      "release_resource(res=r0)\nrelease_resource(res=r1)\n")
    q = p.delete(0)
    assert format_program(q) == (
        "r0 = __request_region()\nrelease_resource()\nrelease_resource(res=r0)\n")


BAD = [
    ("frobnicate()\n", 1, 1, "unknown operation 'frobnicate'"),
    ("__release_region(start=0x10\n", 1, 28, "expected ',' or ')'"),
    ("__release_region(start=zz)\n", 1, 24, "expected a number"),
    ("__release_region(bogus=1)\n", 1, 18, "has no argument 'bogus'"),
    ("__release_region(start=1, start=2)\n", 1, 27, "given twice"),
    ("__release_region()  # maybe\n", 1, 23, "expected an outcome"),
    ("r0 = __release_region()\n", 1, 1, "does not create a handle"),
    ("# profile: v6.1-deb\n\n__request_region(flags=MEM|NOPE)\n", 3, 24, "unknown flag"),
    ("__request_region(name=\"abc)\n", 1, 28, "unterminated string"),
    ("__request_region(start=0x10000000000000000)\n", 1, 24, "out of range"),
    ("r0 = __request_region()\nr0 = __request_region()\n", 2, 1, "bound twice"),
    ("__request_region(parent=pcie)\n", 1, 25, "expected iomem, ioport"),
]


@pytest.mark.parametrize(("text", "line", "column", "message"), BAD)
def test_syntax_errors_name_file_line_and_column(text, line, column, message):
    with pytest.raises(ProgramSyntaxError) as info:
        parse_program(text, "bad.prog")
    err = info.value
    assert (err.path, err.line, err.column) == ("bad.prog", line, column), str(err)
    assert message in err.message
    assert str(err).startswith(f"bad.prog:{line}:{column}: ")


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_random_text_parses_or_raises_syntax_error(text):
    try:
        parse_program(text, "fuzz.prog")
    except ProgramSyntaxError as err:
        assert err.line >= 1 and err.column >= 1


_PIECES = st.sampled_from([
    "r0 = ", "__request_region(", "__release_region(", "request_resource(", ")", "(",
    ", ", "start=", "n=", "0x1000", "MEM|BUSY", "parent=", "r0", "nil", "iomem", "# ok",
    "# EBUSY", "# = 0x1", "\n", "# profile: v6.1-deb\n", "#", "=", '"x"', "res=", " ",
])


@settings(max_examples=500, deadline=None)
@given(st.lists(_PIECES, max_size=30))
def test_mutated_text_parses_or_raises_syntax_error(pieces):
    text = "".join(pieces)
    try:
        program = parse_program(text, "fuzz.prog")
    except ProgramSyntaxError as err:
        assert err.line >= 1 and err.column >= 1
    else:
        # Whatever parses has a canonical form that is a fixed point.
        canon = format_program(program)
        assert format_program(parse_program(canon)) == canon
