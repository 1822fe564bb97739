#!/usr/bin/env python3
"""Regenerate the docs that are generated from the code's tables: the operation list in
corpus/README.md and the bug catalog in docs/CATALOG.md (from fuzz/catalog.toml)."""

from __future__ import annotations

from pathlib import Path

from iomemfuzz.fuzz.catalog import load, markdown
from iomemfuzz.fuzz.ops import describe_ops

ROOT = Path(__file__).resolve().parent.parent
BEGIN, END = "<!-- ops:begin -->\n", "<!-- ops:end -->"
CATALOG_MD = ROOT / "docs" / "CATALOG.md"


def main() -> None:
    path = ROOT / "corpus" / "README.md"
    text = path.read_text()
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    path.write_text(head + BEGIN + describe_ops() + END + tail)
    print(f"updated {path}")
    CATALOG_MD.write_text(markdown(load()))
    print(f"updated {CATALOG_MD}")


if __name__ == "__main__":
    main()
