"""tools/import_cycles.py: model/ has no import cycle, fuzz/ none beyond the allow-listed
ones, and the tool sees the imports that hide (lazy, TYPE_CHECKING, relative)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "tools" / "import_cycles.py"


def _tool():
    spec = importlib.util.spec_from_file_location("import_cycles", TOOL)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_repository_has_no_import_cycle_but_the_known_fuzz_ones():
    done = subprocess.run([sys.executable, str(TOOL)], capture_output=True, text=True,
                          cwd=ROOT, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "CYCLE:" not in done.stdout and "STALE" not in done.stdout
    cycle_lines = [line for line in done.stdout.splitlines() if line.startswith("known")]
    assert not [line for line in cycle_lines if "iomemfuzz.model" in line], cycle_lines


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


def test_lazy_type_checking_and_relative_imports_all_close_cycles(tmp_path):
    _write(tmp_path, {
        "model/__init__.py": "",
        # a -> b at top level, b -> a inside a function.
        "model/a.py": "from iomemfuzz.model import b\n",
        "model/b.py": "def f():\n    from iomemfuzz.model.a import X\n",
        # c -> d relatively, d -> c under TYPE_CHECKING.
        "model/c.py": "from .d import Y\n",
        "model/d.py": ("from typing import TYPE_CHECKING\n"
                       "if TYPE_CHECKING:\n    from iomemfuzz.model.c import Z\n"),
        # A three-module cycle through a subpackage, with a parent-relative import.
        "fuzz/__init__.py": "",
        "fuzz/e.py": "import iomemfuzz.fuzz.sub.f\n",
        "fuzz/sub/__init__.py": "",
        "fuzz/sub/f.py": "from ..g import W\n",
        "fuzz/g.py": "import importlib\nimportlib.import_module('iomemfuzz.fuzz.e')\n",
        # No cycle: h imports i only.
        "fuzz/h.py": "from iomemfuzz.fuzz import i\n",
        "fuzz/i.py": "import os\n",
    })
    tool = _tool()
    modules = tool.module_files(tmp_path)
    found = tool.cycles(tool.import_graph(modules))
    assert found == [
        ("iomemfuzz.fuzz.e", "iomemfuzz.fuzz.sub.f", "iomemfuzz.fuzz.g"),
        ("iomemfuzz.model.a", "iomemfuzz.model.b"),
        ("iomemfuzz.model.c", "iomemfuzz.model.d"),
    ]


def test_a_fixed_allow_listed_cycle_fails_until_it_is_deleted(tmp_path, capsys, monkeypatch):
    _write(tmp_path, {"model/__init__.py": "", "fuzz/__init__.py": ""})
    tool = _tool()
    assert tool.KNOWN_CYCLES == ()  # every cycle of the repository is gone
    monkeypatch.setattr(tool, "KNOWN_CYCLES", (("iomemfuzz.fuzz.a", "iomemfuzz.fuzz.b"),))
    assert tool.main([str(tmp_path)]) == 1
    assert "STALE" in capsys.readouterr().out
