"""No module of model/ or fuzz/ (subpackages included) is over the project's 700-line limit.

A module that grows past it is split along a seam into modules named for one concept
(as fuzz/program*.py and fuzz/decode*.py were), not granted an exception.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LIMIT = 700
PACKAGES = ("model", "fuzz")


def _modules() -> list[Path]:
    return sorted(path for name in PACKAGES for path in (ROOT / name).rglob("*.py")
                  if "__pycache__" not in path.parts)


def test_the_packages_have_modules_to_check():
    names = {p.relative_to(ROOT).as_posix() for p in _modules()}
    assert {"model/kernel.py", "fuzz/program.py", "fuzz/decode.py"} <= names


def test_no_module_is_over_the_line_limit():
    over = []
    for path in _modules():
        count = len(path.read_text(encoding="utf-8").splitlines())
        if count > LIMIT:
            over.append(f"{path.relative_to(ROOT)}: {count} lines")
    assert not over, f"modules over {LIMIT} lines (split them by concept):\n" + "\n".join(over)
