#!/usr/bin/env python3
"""Regenerate the tables in the docs from the code's tables (operation list)."""

from __future__ import annotations

from pathlib import Path

from iomemfuzz.fuzz.ops import describe_ops

ROOT = Path(__file__).resolve().parent.parent
BEGIN, END = "<!-- ops:begin -->\n", "<!-- ops:end -->"


def main() -> None:
    path = ROOT / "corpus" / "README.md"
    text = path.read_text()
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    path.write_text(head + BEGIN + describe_ops() + END + tail)
    print(f"updated {path}")


if __name__ == "__main__":
    main()
