"""Capture the machine files shipped in model/machines/ by booting QEMU guests.

Each guest boots the Debian kernel of ``--kernel`` with the confirm initramfs
(fuzz/confirm/guest.py) and runs tools/capture-machine.sh inside; the file gets a
``qemu`` line with the machine arguments, which is what ``iomemfuzz confirm`` boots for a
Program on that machine. Needs the Debian packages ``iomemfuzz confirm`` needs
(docs/CONFIRM.md).

    python tools/capture_qemu_machines.py                 # every guest below
    python tools/capture_qemu_machines.py qemu-i440fx-512m-e1000-edu
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from iomemfuzz.fuzz.confirm.guest import build_image, find_kernel
from iomemfuzz.fuzz.confirm.qemu import Guest
from iomemfuzz.model.machine_file import MACHINE_DIR

# name -> (QEMU machine arguments, notes). Keep the arguments free of host paths: they
# are replayed by `iomemfuzz confirm` on other hosts.
GUESTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "qemu-q35-seabios": (
        ("-M", "q35", "-m", "4G", "-device", "VGA,addr=01.0",
         "-device", "virtio-net-pci,addr=02.0",
         "-device", "pcie-root-port,id=rp1,chassis=1,slot=1,addr=1c.0"),
        ("The default QEMU q35 guest as iomemfuzz confirm boots it: SeaBIOS (not OVMF),",
         "4 GiB (2 GiB below the 32-bit PCI hole, 2 GiB above 4 GiB), std VGA, virtio-net,",
         "the ICH9 LPC/AHCI/SMBus functions and one hotplug-capable PCIe root port (hot-added",
         "cards appear at 0000:01:00.0). No driver modules are loaded in the capture guest.",
         "QEMU reads of unassigned addresses return zeros where hardware returns all-ones.")),
    "qemu-i440fx-512m-e1000-edu": (
        ("-M", "pc", "-m", "512M", "-device", "e1000,addr=03.0", "-device", "edu,addr=04.0"),
        ("QEMU i440fx (pc) guest, SeaBIOS, 512 MiB: the PCI window starts at 0x20000000,",
         "IOAPIC/HPET/LAPIC pages, no RAM above 4 GiB. An e1000 (with its 256 KiB iPXE ROM)",
         "in slot 3 and an edu device in slot 4, both without a driver (no modules loaded);",
         "slots 5 and up take ACPI hot-add. QEMU reads of unassigned addresses return zeros.")),
    "qemu-q35-server-like": (
        ("-M", "q35", "-m", "6G", "-smp", "2",
         "-object", "memory-backend-ram,id=shm,size=1G,share=on",
         "-device", "VGA,addr=01.0", "-device", "virtio-net-pci,addr=02.0",
         "-device", "e1000,addr=03.0", "-device", "edu,addr=04.0",
         "-device", "qemu-xhci,addr=05.0", "-device", "intel-hda,addr=06.0",
         "-device", "pcie-root-port,id=rp1,chassis=1,slot=1,addr=1c.0,multifunction=on",
         "-device", "pcie-root-port,id=rp2,chassis=2,slot=2,addr=1c.1",
         "-device", "pcie-root-port,id=rp3,chassis=3,slot=3,addr=1c.2",
         "-device", "e1000e,bus=rp1",
         "-device", "ivshmem-plain,memdev=shm,bus=rp2",
         "-blockdev", "null-co,node-name=nvm0",
         "-device", "nvme,serial=iomemfuzz,drive=nvm0,bus=rp3"),
        ("Not real hardware: a QEMU q35 guest configured to have a server's shape. 6 GiB",
         "(4 GiB above 4 GiB), many functions on the root bus, three PCIe root ports with",
         "an e1000e, an ivshmem card whose 1 GiB BAR2 is 64-bit prefetchable (placed above",
         "4 GiB) and an NVMe controller. SeaBIOS; no driver modules loaded. QEMU reads of",
         "unassigned addresses return zeros where hardware returns all-ones.")),
}


def capture(name: str, series: str) -> str:
    args, notes = GUESTS[name]
    image = build_image(find_kernel(series))
    with Guest(image, args) as guest:
        reply = guest.call(f"sh sh /capture-machine.sh --name {name}")
        if not reply.ok or reply.values != ("0",):
            raise SystemExit(f"{name}: capture failed: {reply}")
        lines = list(reply.lines)
    # After the script's own [machine] lines (the blank line before [iomem]).
    at = lines.index("[iomem]") - 1
    extra = [f"note {n}" for n in notes] + [f"qemu {shlex.join(args)}",
                                            f"accel {guest.accel}"]
    return "\n".join(lines[:at] + extra + lines[at:]) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help=f"default: {', '.join(GUESTS)}")
    parser.add_argument("--kernel", default="6.1", help="kernel series (default 6.1)")
    parser.add_argument("--out", type=Path, default=MACHINE_DIR)
    args = parser.parse_args(argv)
    for name in args.names or GUESTS:
        if name not in GUESTS:
            parser.error(f"unknown guest {name!r}")
        text = capture(name, args.kernel)
        path = args.out / f"{name}.machine"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
