"""CI replays every corpus file with its expectations: one test per file."""

from __future__ import annotations

from pathlib import Path

import pytest
from iomemfuzz.fuzz.corpus import program_files
from iomemfuzz.fuzz.program_file import read_program
from iomemfuzz.fuzz.replay import check_program

CORPUS = Path(__file__).resolve().parents[2] / "corpus"
FILES = sorted(program_files([CORPUS]))


def test_corpus_is_not_empty():
    assert FILES, f"no .prog files under {CORPUS}"


@pytest.mark.parametrize("path", FILES, ids=[str(f.relative_to(CORPUS)) for f in FILES])
def test_replay(path: Path):
    program = read_program(str(path))
    result = check_program(program, str(path), path.read_text(encoding="utf-8"))
    assert result.ok, "\n".join(str(m) for m in result.mismatches)
