#!/usr/bin/env python3
"""Fuzz target: the Program reader and the text form (bytes in, as a file holds them).

Invariants, for any bytes:

* reading them as a Program file (``parse_program_bytes``: UTF-8, size and line limits, the
  grammar) returns a Program or raises ``ProgramSyntaxError`` with a line and column of
  the text (>= 1) — nothing else, however malformed, huge or strange the input;
* the canonical text of what was read parses back to the same Program, and is its own
  canonical text (``format(parse(format(p))) == format(p)``).

Only the reader is instrumented (``fuzz/program*.py``: the Program types, the parser, the
file reader and the writer, and the flag names it parses): the coverage that guides this
target is the reader's. Seeds are the corpus files themselves,
and ``.clusterfuzzlite/program_text.dict`` holds the grammar's words. Run directly::

    fuzz/targets/program_text.py -dict=.clusterfuzzlite/program_text.dict corpus/seeds

CI runs it for 100,000 inputs (tests/integration/test_program_text_target.py).
"""

import sys

import atheris

READER = ["iomemfuzz.fuzz.program", "iomemfuzz.fuzz.program_parse", "iomemfuzz.fuzz.program_file",
          "iomemfuzz.fuzz.program_format", "iomemfuzz.fuzz.flags"]
with atheris.instrument_imports(include=READER):
    from iomemfuzz.fuzz.program_file import parse_program_bytes
    from iomemfuzz.fuzz.program_format import format_program
    from iomemfuzz.fuzz.program_parse import ProgramSyntaxError, parse_program


def test_one_input(data: bytes) -> None:
    try:
        read = parse_program_bytes(data, "<input>")
    except ProgramSyntaxError as exc:
        if exc.line < 1 or exc.column < 1 or exc.path != "<input>":
            raise AssertionError(f"bad position in {exc!r}") from None
        return
    text = format_program(read)
    again = parse_program(text, "<canonical>")
    if again != read:
        raise AssertionError(f"the canonical text reads back differently:\n{text}")
    if format_program(again) != text:
        raise AssertionError(f"the canonical text is not a fixed point:\n{text}")


def main(argv: list[str]) -> None:
    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
