"""End to end: `iomemfuzz confirm` boots Debian's 6.1 kernel in QEMU and every line of three
shipped Programs agrees with the model: a /dev/mem mapping revoked by a claim, a sysfs
mapping revoked by a driver bind, and a sysfs remove/rescan. The three share one guest
boot; the whole test stays under two minutes under TCG.

The test installs the Debian packages it needs when they are missing and it runs as root
with apt-get (a CI container: the same thing `iomemfuzz confirm --install` does); otherwise
it is skipped and says which packages to install (docs/CONFIRM.md).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from iomemfuzz.fuzz.confirm import Options, confirm_files
from iomemfuzz.fuzz.confirm.guest import install_command, install_packages, missing_packages

ROOT = Path(__file__).resolve().parents[2]
SEEDS = ROOT / "corpus" / "seeds"
PROGRAMS = [
    SEEDS / "mapping-qemu-i440fx-devmem-revoke.prog",
    SEEDS / "mapping-qemu-i440fx-bind-revokes.prog",
    SEEDS / "pci-qemu-i440fx-remove-rescan.prog",
]


@pytest.mark.slow
def test_three_programs_confirm_on_a_real_kernel():
    missing = missing_packages("6.1")
    why = install_packages(missing)
    missing = missing_packages("6.1")
    if missing:
        pytest.skip(f"iomemfuzz confirm needs Debian packages that are not installed ({why}):"
                    f" {install_command(missing)}")
    out, err = io.StringIO(), io.StringIO()
    code = confirm_files([str(p) for p in PROGRAMS], Options(kernel="6.1"), as_json=True,
                         out=out, err=err)
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
    assert bind['r3 = bind(dev="0000:00:03.0")'] == "ok"
    assert "SIGBUS" in bind.values()
    assert rescan["r6 = rescan()"] == "ok"
