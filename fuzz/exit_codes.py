"""The exit codes every ``iomemfuzz`` command uses, and the error that means "your input".

One table, printed by ``iomemfuzz --help`` and README: scripts and CI tell a finding (1)
from a bad argument or unreadable file (2) from a bug in iomemfuzz itself (3).
"""

from __future__ import annotations

import textwrap

OK = 0
FINDING = 1
INPUT = 2
INTERNAL = 3
INTERRUPTED = 130

TABLE: tuple[tuple[int, str], ...] = (
    (OK, "clean: every expectation holds, nothing found"),
    (FINDING, "a finding, or an expectation that does not hold"),
    (INPUT, "usage or input error: a bad argument, a missing, unreadable or malformed "
            "file, a disk that refused a write, a workdir another job holds"),
    (INTERNAL, "internal error: iomemfuzz itself failed (one line says where the "
               "traceback was written; --debug prints it), or a fuzz job's model raised "
               "or hung on an input"),
    (INTERRUPTED, "interrupted by Ctrl-C (a fuzz job: also SIGTERM); a fuzz job still "
                  "stores and summarises what it found"),
)
# When several apply (a fuzz job can find bugs and then meet a full disk), the first of
# these wins.
PRECEDENCE = (INTERRUPTED, INPUT, INTERNAL, FINDING, OK)


def table_text(indent: str = "  ", width: int = 88) -> str:
    """The table as the ``--help`` epilog prints it."""
    lines = []
    for code, text in TABLE:
        lines += textwrap.wrap(text, width, initial_indent=f"{indent}{code:<4} ",
                               subsequent_indent=indent + " " * 5)
    lines += textwrap.wrap(f"When several apply, the first in the order "
                           f"{', '.join(map(str, PRECEDENCE))} wins.", width,
                           initial_indent=indent, subsequent_indent=indent)
    return "\n".join(lines)


def worst(codes: list[int] | tuple[int, ...] | set[int]) -> int:
    """The code to exit with when each of ``codes`` applies."""
    for code in PRECEDENCE:
        if code in codes:
            return code
    return OK


class InputError(Exception):
    """A usage or input problem the user can fix (exit code 2). The message is one line
    that says what is wrong and, where it helps, what would be right."""
