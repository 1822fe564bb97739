"""End to end: `iomemfuzz confirm` boots Debian's 6.1 kernel in QEMU and every line of three
shipped Programs agrees with the model: a /dev/mem mapping revoked by a claim, a sysfs
mapping revoked by a driver bind, and a sysfs remove/rescan. The three share one guest
boot; the whole test stays under two minutes under TCG.

The Debian packages come from `.ci/run` (docs/CONFIRM.md); without them the test is
skipped and says which packages to install.
"""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import pytest
from iomemfuzz.fuzz.confirm import Options, confirm_files
from iomemfuzz.fuzz.confirm.guest import install_command, missing_packages

ROOT = Path(__file__).resolve().parents[2]
SEEDS = ROOT / "corpus" / "seeds"
PROGRAMS = [
    SEEDS / "mapping-qemu-i440fx-devmem-revoke.prog",
    SEEDS / "mapping-qemu-i440fx-bind-revokes.prog",
    SEEDS / "pci-qemu-i440fx-remove-rescan.prog",
]
BUDGET_S = 120.0


@pytest.mark.slow
def test_three_programs_confirm_on_a_real_kernel():
    missing = missing_packages("6.1")
    if missing:
        pytest.skip("iomemfuzz confirm needs Debian packages that are not installed "
                    f"(.ci/run installs them): {install_command(missing)}")
    out, err = io.StringIO(), io.StringIO()
    began = time.monotonic()
    code = confirm_files([str(p) for p in PROGRAMS], Options(kernel="6.1"), as_json=True,
                         out=out, err=err)
    took = time.monotonic() - began
    assert code == 0, out.getvalue() + err.getvalue()
    results = json.loads(out.getvalue())
    assert [r["path"] for r in results] == [str(p) for p in PROGRAMS]
    for r in results:
        ran = [ln for ln in r["lines"] if ln["real"] is not None]
        assert ran and all(ln["agree"] for ln in ran), r
        assert r["kernel"].startswith("6.1.")
    # What each Program is about really happened in the guest.
    devmem, bind, rescan = ({ln["text"]: ln["real"] for ln in r["lines"]} for r in results)
    assert devmem["touch(vma=r1)"] == "SIGBUS"
    assert bind['r2 = bind(dev="0000:00:03.0", driver="e1000")'] == "ok"
    assert "SIGBUS" in bind.values()
    assert rescan["r6 = rescan()"] == "ok"
    assert took < BUDGET_S, f"confirm took {took:.0f} s"
