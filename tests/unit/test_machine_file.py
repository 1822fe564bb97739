"""Machine files (model/machine_file.py): the format, the dump -> Machine translation, the
`# machine:` header, and the round trip of every shipped capture: `iomemfuzz show` of a
Program on it prints the /proc/iomem, /proc/ioports and PCI device list of the dump."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from iomemfuzz.fuzz.executor import make_kernel, run
from iomemfuzz.fuzz.narration import narrate
from iomemfuzz.fuzz.program_parse import parse_program
from iomemfuzz.model.machine import MACHINES
from iomemfuzz.model.machine_file import (
    MachineFileError,
    load_dump,
    load_machine,
    machine_from_dump,
    parse_machine_file,
    shipped_machines,
)
from iomemfuzz.model.profile import resolve

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted(shipped_machines())
BAR_TYPES = {0x100: "io", 0x200: "mem"}


def booted(header: str):
    program = parse_program(f"# machine: {header}\n\niomem_is_exclusive()\n")
    return make_kernel(resolve("v6.1-deb"), program, program.ops)


def dump_devices(dump) -> list[str]:
    """The dump's PCI functions as `bdf driver=... BARi=[start-end type]` rows."""
    rows = []
    for dev in dump.devices:
        bars = []
        for i, start, end, flags in dev.resources:
            if i < 6 and flags & 0x300:
                bars.append(f"BAR{i}={start:#x}-{end:#x}:{BAR_TYPES[flags & 0x300]}")
        rows.append(f"{dev.bdf} driver={dev.driver or '-'} {' '.join(bars)}")
    return rows


def model_devices(kernel) -> list[str]:
    """The same rows from the model's `pci devices` section (what `show` prints)."""
    rows = []
    for line in kernel.describe()["pci devices"].splitlines():
        bdf, _state, driver, *_rest = line.split(" ")
        bars = []
        for m in re.finditer(r"BAR(\d)=\[(io|mem) +(0x[0-9a-f]+)(?:-(0x[0-9a-f]+))?", line):
            start = int(m.group(3), 16)
            end = int(m.group(4), 16) if m.group(4) else start
            bars.append(f"BAR{m.group(1)}={start:#x}-{end:#x}:{m.group(2)}")
        rows.append(f"{bdf} {driver} {' '.join(bars)}")
    return rows


def test_the_required_captures_ship():
    assert {"qemu-q35-seabios", "qemu-i440fx-512m-e1000-edu",
            "qemu-q35-server-like"} <= set(SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_capture_round_trips(name):
    dump = load_dump(name)
    assert dump.lossy == ()
    kernel = booted(name)
    state = kernel.describe()
    assert state["/proc/iomem"] == dump.iomem
    assert state["/proc/ioports"] == dump.ioports
    assert model_devices(kernel) == dump_devices(dump)


@pytest.mark.parametrize("name", SHIPPED)
def test_show_prints_the_capture(name):
    text = narrate(parse_program(f"# machine: {name}\n\niomem_is_exclusive()\n"))
    dump = load_dump(name)
    iomem = text.split("  /proc/iomem:\n", 1)[1].split("  /proc/ioports:\n", 1)[0]
    assert [ln[4:] for ln in iomem.splitlines()] == dump.iomem.splitlines()
    for dev in dump.devices:
        assert f"    {dev.bdf} added driver={dev.driver or '-'} " in text


def test_i440fx_capture_has_the_issue_17_shape():
    dump = load_dump("qemu-i440fx-512m-e1000-edu")
    assert "20000000-febfffff : PCI Bus 0000:00" in dump.iomem
    for name in ("IOAPIC 0", "HPET 0", "Local APIC"):
        assert f" : {name}" in dump.iomem
    # No RAM above 4 GiB: every System RAM line ends below it.
    for line in dump.iomem.splitlines():
        if line.endswith("System RAM"):
            assert int(line.split("-")[1].split()[0], 16) < 1 << 32
    ids = {(d.vendor, d.device) for d in dump.devices}
    assert {(0x8086, 0x100E), (0x1234, 0x11E8)} <= ids  # e1000, edu


def test_server_like_capture_has_a_64bit_prefetchable_bar_above_4g():
    dump = load_dump("qemu-q35-server-like")
    assert any(i < 6 and flags & 0x102000 == 0x102000 and start >= 1 << 32
               for dev in dump.devices for i, start, _end, flags in dev.resources)
    assert any(line.endswith("System RAM") and int(line.split("-")[0], 16) >= 1 << 32
               for line in dump.iomem.splitlines())
    assert "Not real hardware" in " ".join(dump.get_all("note"))


def test_program_runs_on_a_shipped_machine():
    program = parse_program(
        "# machine: qemu-i440fx-512m-e1000-edu\n\n"
        'r0 = open_resource(dev="0000:00:04.0")  # ok\n'
        "r1 = mmap(file=r0)  # ok\n"
        "touch(vma=r1, offset=0x10)  # = 0000:00:04.0/bar0+0x10\n")
    trace = run(program)
    assert [s.outcome.label for s in trace.steps[:-1]] == \
        ["ok", "ok", "= 0000:00:04.0/bar0+0x10"]


def test_header_resolution(tmp_path):
    assert load_machine("qemu-q35") is MACHINES["qemu-q35"]
    shipped = load_machine("qemu-q35-seabios")
    assert shipped is load_machine("qemu-q35-seabios")  # one object: snapshot cache key
    copy = tmp_path / "mine.machine"
    shutil.copy(shipped_machines()["qemu-q35-seabios"], copy)
    assert load_machine(f"file:{copy}").iomem == shipped.iomem
    with pytest.raises(KeyError, match="unknown machine"):
        load_machine("no-such-machine")


MINIMAL = """\
iomemfuzz-machine 1
[machine]
name tiny
[iomem]
00000000-3fffffff : System RAM
c0000000-febfffff : PCI Bus 0000:00
  c0000000-c0000fff : 0000:00:03.0
    c0000000-c0000fff : nic
  c0001000-c0001fff : 0000:00:04.0
[ioports]
0d00-ffff : PCI Bus 0000:00
  1000-101f : 0000:00:03.0
    1000-101f : nic
[pci 0000:00:03.0]
vendor 0x8086
driver nic
resource 0 0x00000000c0000000 0x00000000c0000fff 0x0000000000040200
resource 1 0x0000000000001000 0x000000000000101f 0x0000000000040101
[pci 0000:00:04.0]
driver uio_pci_generic
resource 0 0x00000000c0001000 0x00000000c0001fff 0x0000000000040200
"""


def test_driver_claims_round_trip():
    dump = parse_machine_file(MINIMAL)
    machine = machine_from_dump(dump)
    assert dump.lossy == ()
    assert machine.iomem == ("00000000-3fffffff : System RAM\n"
                             "c0000000-febfffff : PCI Bus 0000:00\n")
    nic, uio = machine.pci_devices
    assert (nic.driver, nic.claims) == ("nic", True)
    assert (uio.driver, uio.claims) == ("uio_pci_generic", False)  # never claims (B13)


def test_partial_or_renamed_claims_are_reported_lossy():
    text = MINIMAL.replace("    1000-101f : nic\n", "").replace(
        "    c0000000-c0000fff : nic", "    c0000000-c0000fff : nic-modern")
    dump = parse_machine_file(text)
    assert len(dump.lossy) == 1 and "0000:00:03.0" in dump.lossy[0]


@pytest.mark.parametrize("text, message", [
    ("hello\n", "not a machine file"),
    ("iomemfuzz-machine 2\n[machine]\n", "format '2' is not supported"),
    ("iomemfuzz-machine 1\n[machine]\n[iomem]\nnonsense\n[ioports]\n", "START-END"),
    ("iomemfuzz-machine 1\n[machine]\n[disks]\n", "unknown section"),
    ("iomemfuzz-machine 1\n[machine]\n[iomem]\n", "no [ioports] section"),
    (MINIMAL.replace("resource 0 0x00000000c0000000", "resource 0"), "INDEX START END"),
    (MINIMAL.replace("[pci 0000:00:04.0]", "[pci 00:04]"), "bad PCI address"),
])
def test_malformed_files_name_the_line(text, message):
    with pytest.raises(MachineFileError, match=re.escape(message)):
        parse_machine_file(text, "x.machine")


@pytest.mark.skipif(os.geteuid() != 0, reason="capture-machine.sh needs root")
def test_capture_script_output_parses(tmp_path):
    out = tmp_path / "host.machine"
    proc = subprocess.run(["sh", str(ROOT / "tools" / "capture-machine.sh"), "--name", "host",
                           "--note", "test run", "-o", str(out)],
                          capture_output=True, text=True, check=False)
    if "shows no addresses" in proc.stderr:
        pytest.skip("this kernel hides /proc/iomem addresses even from root")
    assert proc.returncode == 0, proc.stderr
    dump = parse_machine_file(out.read_text())
    assert dump.name == "host" and dump.get("note") == "test run"
    assert dump.iomem.strip() and dump.get("kernel") == os.uname().release
    machine_from_dump(dump)  # builds, lossy or not
