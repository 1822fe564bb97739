#!/usr/bin/env python3
"""Print the libFuzzer dictionary of the program_text fuzz target: the words of the Program
grammar (operation and argument names, choices, flag names, header keys, profile and
machine names, outcomes, punctuation). ``.clusterfuzzlite/program_text.dict`` is this
output; tests/integration/test_program_text_target.py fails when it is stale::

    .venv/bin/python tools/cflite/program_text_dict.py > .clusterfuzzlite/program_text.dict
"""

from __future__ import annotations

from iomemfuzz.fuzz.flags import NAMES
from iomemfuzz.fuzz.ops import REGISTRY, Kind, load_families
from iomemfuzz.fuzz.program import EXPECT_AT, HEADER_KEYS
from iomemfuzz.model import errno
from iomemfuzz.model.machine import MACHINES
from iomemfuzz.model.profile import ALLOWED_VALUES, PROFILES

PUNCTUATION = ("r0 = ", "r1", "nil", "0x", "(", ")", ", ", "=", '"', '\\"', "\\\\", "|",
               "  # ", "# = ", "\r\n", "\n\n", "finding ", "clean", ":")
OUTCOMES = ("ok", "SIGBUS", "SIGSEGV", "blocked")


def words() -> list[str]:
    load_families()
    out: set[str] = set(PUNCTUATION) | set(OUTCOMES) | set(NAMES)
    for name, cls in REGISTRY.items():
        out.add(name + "(")
        for arg_name, arg in cls.args():
            out.add(arg_name + "=")
            if arg.kind in (Kind.CHOICE, Kind.NODE):
                out.update(arg.choices)
    out.update(f"# {key}: " for key in HEADER_KEYS)
    out.add(f"# {EXPECT_AT}")
    out.update(PROFILES)
    out.update(MACHINES)
    out.update(f"{key}=" for key in ALLOWED_VALUES)
    out.update(v for values in ALLOWED_VALUES.values() for v in values if v)
    out.update(errno.BY_NAME)
    return sorted(out)


def quoted(word: str) -> str:
    """One dictionary line: printable ASCII as is, everything else as \\xNN bytes."""
    body = "".join(
        "\\" + chr(b) if chr(b) in '"\\' else chr(b) if 32 <= b < 127 else f"\\x{b:02x}"
        for b in word.encode("utf-8"))
    return f'"{body}"'


def dictionary() -> str:
    return "".join(quoted(w) + "\n" for w in words())


if __name__ == "__main__":
    print(dictionary(), end="")
