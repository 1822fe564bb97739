"""iomemfuzz confirm without QEMU: the translation table covers every operation, machines
become QEMU guests, hotadd lines get the closest card, plans say what runs and why not,
the report renders, and the initramfs archive is well formed."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import pytest
from iomemfuzz.fuzz.cli import main
from iomemfuzz.fuzz.confirm import Options, confirm_files
from iomemfuzz.fuzz.confirm.guest import _cpio_newc
from iomemfuzz.fuzz.confirm.plan import make_plan, runnable
from iomemfuzz.fuzz.confirm.report import render_json, render_text
from iomemfuzz.fuzz.confirm.session import LineResult, ProgramResult, _around, _span
from iomemfuzz.fuzz.confirm.translate import (
    HOW,
    INSMOD,
    MODULE,
    NONE,
    QMP,
    READ,
    SYSFS,
    device_for_hotadd,
    guest_for,
    how,
    profile_cmdline,
)
from iomemfuzz.fuzz.ops import load_families
from iomemfuzz.fuzz.program_file import read_program
from iomemfuzz.fuzz.program_parse import parse_program

ROOT = Path(__file__).resolve().parents[2]


def test_every_operation_has_a_route():
    ops = set(load_families())
    assert set(HOW) == ops
    for name, entry in HOW.items():
        assert entry.text, name


def test_routes_of_the_issue_19_kinds():
    ops = load_families()
    assert how(ops["touch"]()).route == "helper"
    assert how(ops["request_mem_region"]()).route == MODULE
    assert how(ops["bind"]()).route == SYSFS
    assert how(ops["hotadd"]()).route == QMP
    assert how(ops["step"]()).route == NONE
    assert how(ops["bind"](mode="spawn")).route == NONE
    assert how(ops["hotadd"](host="async")).route == NONE
    # Issue 17's driver, sysfs and observation lines run too.
    assert how(ops["module_load"]()).route == INSMOD
    for name in ("enable", "new_id", "remove_id", "driver_override", "drivers_probe",
                 "drivers_autoprobe", "dev_rescan", "bus_rescan"):
        assert how(ops[name]()).route == SYSFS, name
    for name in ("read_busy", "read_driver", "list_files", "read_resource"):
        assert how(ops[name]()).route == READ, name


def test_machines_become_qemu_guests():
    q35 = guest_for(None)
    assert q35.q35 and "-M" in q35.args and "q35" in q35.args
    i440fx = guest_for("qemu-i440fx-512m-e1000-edu")
    assert i440fx.args == ("-M", "pc", "-m", "512M", "-device", "e1000,addr=03.0",
                           "-device", "edu,addr=04.0")
    assert not i440fx.q35
    with pytest.raises(KeyError):
        guest_for("empty")


def test_hotadd_cards():
    card, diffs = device_for_hotadd("mem:0x1000")
    assert card.qemu == "pci-testdev" and diffs == ["the pci-testdev card also has BAR1 "
                                                    "(io 0x100)"]
    card, _ = device_for_hotadd("mem:0x1000", (0x8086, 0x100E))
    assert card.qemu == "e1000"  # drivers match by id: the named ids win over the BARs
    card, diffs = device_for_hotadd("mem:0x100")
    assert card.qemu == "sdhci-pci" and diffs == []
    card, diffs = device_for_hotadd("mem:0x100000")
    assert card.qemu == "edu" and diffs == []


def test_profiles_that_are_real_kernels():
    assert profile_cmdline("v6.1-deb") == ""
    assert profile_cmdline("v6.1-deb-relaxed") == "iomem=relaxed"
    assert profile_cmdline("v6.12") == ""  # Debian's 6.12 image
    assert profile_cmdline("v6.1-deb-claim-fails") is None  # a design alternative


def test_plan_of_a_seed():
    path = ROOT / "corpus" / "seeds" / "mapping-qemu-sysfs-bind-unbind.prog"
    plan = make_plan(read_program(str(path)), str(path))
    assert runnable(plan)
    # The hot-added card decodes nothing until the enable line (issue 17, point 1).
    assert [ln.model for ln in plan.lines][:6] == ["ok", "ok", "ok", "= unbacked", "ok",
                                                   "= 0000:00:03.0/bar0+0x10"]
    assert plan.hotadds == 1
    # Every line runs: enable and module_load are sysfs writes and a real insmod.
    assert not [ln.text for ln in plan.lines if ln.skip]


def test_plan_skips_what_cannot_run_and_what_depends_on_it():
    program = parse_program(
        'r0 = hotadd(dev="0001:00:00.0", host=async)\n'
        'r1 = open_resource(dev="0001:00:00.0")\n'
        'r2 = remove(dev="0001:00:00.0")\n'
        "r3 = mmap(file=r1)\n"
        "r4 = open_devmem()\n")
    plan = make_plan(program, "<test>")
    skips = [ln.skip for ln in plan.lines]
    assert "host bridge" in skips[0]
    assert "comes from line 0" in skips[1] and "comes from line 0" in skips[2]
    assert "uses r1" in skips[3]
    assert skips[4] == ""


def test_plan_of_a_boot_program_runs_nothing():
    path = ROOT / "corpus" / "findings" / "v6.1-deb" / "b2-hot-add-inside-pci-sysfs-init.prog"
    plan = make_plan(read_program(str(path)), str(path))
    assert not runnable(plan) and "boot" in plan.skip


def test_a_program_with_nothing_runnable_needs_no_qemu(capsys):
    path = ROOT / "corpus" / "seeds" / "tree-b28-muxed-waiter-hangs.prog"
    assert main(["confirm", str(path)]) == 0
    assert "not run:" in capsys.readouterr().out


def test_usage_errors_exit_2(tmp_path):
    bad = tmp_path / "bad.prog"
    bad.write_text("nonsense(\n")
    err = io.StringIO()
    assert confirm_files([str(bad)], Options(), err=err) == 2
    assert confirm_files([str(tmp_path / "missing.prog")], Options(), err=err) == 2


def test_report_renders_agreement_and_skips():
    result = ProgramResult("x.prog", "qemu-q35", "v6.1-deb", ("-M", "q35"), "6.1.0", "tcg")
    result.lines = [LineResult(0, "r0 = open_devmem()", "ok", "ok", True),
                    LineResult(1, "touch(vma=r1)", "= ram", "= unbacked", False,
                               env="the emulated card differs"),
                    LineResult(2, "step(task=r0)", "ok", note="a scheduler line")]
    text = render_text([result])
    assert "NO" in text and "environment? the emulated card differs" in text
    assert "not runnable:" in text and "a scheduler line" in text
    assert text.rstrip().endswith("0 passed, 1 failed")
    data = json.loads(render_json([result]))
    assert data[0]["lines"][1]["agree"] is False


def test_iomem_neighbourhood():
    iomem = ("00000000-00000fff : Reserved\n"
             "00100000-3fffffff : System RAM\n"
             "  01000000-01ffffff : Kernel code\n"
             "c0000000-febfffff : PCI Bus 0000:00\n"
             "  c0000000-c0000fff : 0000:00:03.0\n")
    assert _around(iomem, 0x2000000, 0xc0000010) == ["00100000-3fffffff : System RAM",
                                                     "c0000000-febfffff : PCI Bus 0000:00"]
    ops = load_families()
    assert _span(ops["request_mem_region"](start=0x1000, n=0x100)) == (0x1000, 0x10FF)
    assert _span(ops["insert_resource"](start=0x10, end=0x20)) == (0x10, 0x20)
    assert _span(ops["touch"]())[0] is None


def test_initramfs_archive_is_newc():
    blob = _cpio_newc([("bin", 0o040755, b""), ("init", 0o100755, b"#!/bin/sh\n")])
    assert blob.startswith(b"070701")
    assert b"TRAILER!!!" in blob and len(blob) % 4 == 0
    assert gzip.decompress(gzip.compress(blob)) == blob
