#!/usr/bin/env python3
"""Fuzz target: the Program reader and the text form (bytes in, as a file holds them).

Invariants, for any bytes:

* reading them as a Program file (``parse_program_bytes``: UTF-8, size and line limits, the
  grammar) returns a Program or raises ``ProgramSyntaxError`` with a line and column of
  the text (>= 1) — nothing else, however malformed, huge or strange the input;
* the canonical text of what was read parses back to the same Program, and is its own
  canonical text (``format(parse(format(p))) == format(p)``).

Only the reader is instrumented (``fuzz/program.py`` and the flag names it parses): the
coverage that guides this target is the reader's. Seeds are the corpus files themselves,
and ``.clusterfuzzlite/program_text.dict`` holds the grammar's words. Run directly::

    fuzz/targets/program_text.py -dict=.clusterfuzzlite/program_text.dict corpus/seeds

CI runs it for 100,000 inputs (tests/integration/test_program_text_target.py).
"""

import sys

import atheris

with atheris.instrument_imports(include=["iomemfuzz.fuzz.program", "iomemfuzz.fuzz.flags"]):
    from iomemfuzz.fuzz import program


def test_one_input(data: bytes) -> None:
    try:
        read = program.parse_program_bytes(data, "<input>")
    except program.ProgramSyntaxError as exc:
        if exc.line < 1 or exc.column < 1 or exc.path != "<input>":
            raise AssertionError(f"bad position in {exc!r}") from None
        return
    text = program.format_program(read)
    again = program.parse_program(text, "<canonical>")
    if again != read:
        raise AssertionError(f"the canonical text reads back differently:\n{text}")
    if program.format_program(again) != text:
        raise AssertionError(f"the canonical text is not a fixed point:\n{text}")


def main(argv: list[str]) -> None:
    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
