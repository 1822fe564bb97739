"""Run a planned Program inside a booted guest, line by line, and say what the real kernel did.

Each line's real answer is put in the model's vocabulary (``ok``, an errno name,
``SIGBUS``, ``= 0x4``, ``= 0000:00:03.0/bar0+0x10``, ``= ram``, ``= unbacked``), so the
report compares two labels. What an access reached comes from where the address lies in
the real system and the device's state: inside a BAR of a present device with memory
decode on is that device's register (named as the model names it), with decode off is
``unbacked``; inside System RAM is ``ram``; elsewhere a load of zeros (QEMU) or all-ones
(hardware's master abort) is ``unbacked`` (:meth:`Session.classify`).

Names and addresses differ between the model and the guest (the guest's firmware placed
the BARs, and a card hot-added on q35 sits behind a root port), so the session keeps two
tables: model device name -> real device name, and model BAR -> real BAR. An address a
line writes that lies inside a model BAR moves to the same offset of the real BAR.
"""

from __future__ import annotations

from dataclasses import dataclass

from iomemfuzz.fuzz.confirm.driver_lines import DriverLines
from iomemfuzz.fuzz.confirm.observe_lines import ObserveLines
from iomemfuzz.fuzz.confirm.pci_lines import NOT_RUN, PciLines
from iomemfuzz.fuzz.confirm.plan import BarMap, LinePlan, Plan
from iomemfuzz.fuzz.confirm.qemu import Guest, GuestDied
from iomemfuzz.fuzz.confirm.resource_lines import ResourceLines
from iomemfuzz.fuzz.confirm.results import (
    LineResult,
    ProgramResult,
    RealFile,
    RealMap,
    iomem_changes,
    status,
)
from iomemfuzz.fuzz.confirm.translate import QUERIES
from iomemfuzz.model.ioport import IORESOURCE_IO, IORESOURCE_MEM

__all__ = ["LineResult", "ProgramResult", "Session", "read_bars"]

FAULTS = ("SIGBUS", "SIGSEGV")
# Why an access through one hot-added card cannot reach another on a q35 guest.
Q35_PORTS = ("on q35 every hot-added card sits behind its own PCIe root port, in a bridge "
             "window no other card shares, so one card's page never holds another's "
             "registers; the model's cards share the root bus window")
ALL_ONES_32 = 0xFFFFFFFF
KERNEL_SANITY = "kernel-sanity/"


# Per device: a "D" line (name, driver link, the low byte of the COMMAND register), then
# the first six lines of its resource file (the BARs).
BARS_SCRIPT = ("for d in /sys/bus/pci/devices/*; do "
               "echo \"D ${d##*/} $(od -An -tx1 -j4 -N1 $d/config) $(readlink $d/driver)\"; "
               "head -6 $d/resource; done")
PCI_COMMAND_MEMORY = 0x2


@dataclass
class RealDevice:
    bars: dict[int, tuple[int, int]]
    driver: str
    decodes: bool  # PCI_COMMAND_MEMORY is set


def read_bars(guest: Guest) -> dict[str, RealDevice]:
    """Every real device's BARs, driver and memory decode state, from sysfs."""
    out: dict[str, RealDevice] = {}
    dev = None
    index = 0
    for line in guest.sh(BARS_SCRIPT):
        words = line.split()
        if words and words[0] == "D":
            command = int(words[2], 16) if len(words) > 2 else 0
            driver = words[3].rsplit("/", 1)[-1] if len(words) > 3 else ""
            dev = out[words[1]] = RealDevice({}, driver, bool(command & PCI_COMMAND_MEMORY))
            index = 0
            continue
        if dev is None or len(words) != 3:
            continue
        start, end, flags = (int(w, 16) for w in words)
        if flags & (IORESOURCE_IO | IORESOURCE_MEM) and end > start > 0:
            dev.bars[index] = (start, end)
        index += 1
    return out


def _span(op: object) -> tuple[int | None, int]:
    """The physical range a line names outright (not through a BAR), if any."""
    start = getattr(op, "start", None)
    if isinstance(start, int):
        if isinstance(getattr(op, "end", None), int):
            return start, max(start, op.end)
        size = getattr(op, "n", None) or getattr(op, "size", None) or 1
        return start, start + size - 1
    return None, 0


def _around(iomem: str, lo: int, hi: int) -> list[str]:
    """The /proc/iomem lines meeting [lo, hi], device BARs and kernel image lines left
    out (BARs are translated; the kernel's own placement is random)."""
    out = []
    for line in iomem.splitlines():
        rng, _, name = line.strip().partition(" : ")
        a, _, b = rng.partition("-")
        if not b or name.startswith(("0000:", "Kernel ")):
            continue
        if int(a, 16) <= hi and lo <= int(b, 16):
            out.append(line.strip())
    return out


class Session(ResourceLines, PciLines, DriverLines, ObserveLines):
    """One Program on one guest."""

    def __init__(self, guest: Guest, plan: Plan, result: ProgramResult,
                 hotplug_ports: list[str]) -> None:
        self.g = guest
        self.plan = plan
        self.result = result
        self.ports = list(hotplug_ports)  # free PCIe root ports of a q35 guest, by QMP id
        self.names: dict[str, str] = {}  # model device -> real device
        self.real: dict[str, RealDevice] = {}
        self.real_last: dict[str, dict[int, tuple[int, int]]] = {}
        self.model_last: BarMap = {}
        self.objs: dict[int, object] = {}
        self.moved: dict[int, tuple[int, int]] = {}  # line -> (model, real) address
        self.hotadded: dict[str, str] = {}  # model device -> QMP id
        self.bound: set[str] = set()  # real devices a bind line bound
        self.loaded: list[str] = []  # real driver modules the Program loaded
        # Model (vendor, device) -> the ids of the card that stands for that function.
        self.id_map: dict[tuple[int, int], tuple[int, int]] = {}
        self.autoprobe_changed = False
        self.unrun: dict[int, str] = {}  # lines a runner could not run: why
        self.reappeared: set[str] = set()  # removed functions a hotplug event found again

    # --- names and addresses -------------------------------------------------------------

    def refresh(self) -> None:
        self.real = read_bars(self.g)
        for dev, found in self.real.items():
            self.real_last[dev] = dict(found.bars)

    def real_name(self, model_dev: str) -> str:
        return self.names.get(model_dev, model_dev)

    def model_name(self, real_dev: str) -> str:
        for m, r in self.names.items():
            if r == real_dev:
                return m
        return real_dev

    def to_real(self, addr: int, line: LinePlan) -> int:
        """A model physical address -> the real one (same offset in the same BAR)."""
        for bars in (line.bars_before, self.model_last):
            for dev, by_bar in bars.items():
                for i, (start, end) in by_bar.items():
                    if start <= addr <= end:
                        real = self.real_last.get(self.real_name(dev), {}).get(i)
                        if real is not None:
                            moved = real[0] + addr - start
                            if moved != addr:
                                self.moved.setdefault(line.index, (addr, moved))
                            return moved
        return addr

    def classify(self, phys: int, value: int | None) -> str:
        """What a load at real address ``phys`` that returned ``value`` reached: a present
        device's BAR if its memory decode is on; a removed device's BAR (it may still
        decode, issue 17) if the load returned non-zero; else RAM, or nothing."""
        self.refresh()
        for dev, found in self.real.items():
            for i, (start, end) in found.bars.items():
                if start <= phys <= end:
                    if not found.decodes:
                        return "unbacked"
                    return f"{self.model_name(dev)}/bar{i}+{phys - start:#x}"
        for dev, bars in self.real_last.items():
            if dev in self.real:
                continue
            for i, (start, end) in bars.items():
                if start <= phys <= end and value:
                    return f"{self.model_name(dev)}/bar{i}+{phys - start:#x}"
        if self._in_ram(phys):
            return "ram"
        # Nothing decodes it: QEMU reads zeros, hardware (a master abort) all-ones.
        return "unbacked" if value in (0, None, ALL_ONES_32, 0xFF) else "firmware"

    def _in_ram(self, phys: int) -> bool:
        for line in self.result.iomem_boot.splitlines():
            if line.startswith(" ") or not line.endswith(" : System RAM"):
                continue
            lo, hi = (int(x, 16) for x in line.split(" : ")[0].split("-"))
            if lo <= phys <= hi:
                return True
        return False

    # --- running -------------------------------------------------------------------------

    def run(self) -> None:
        self.refresh()
        for dev in self.real:
            self.names.setdefault(dev, dev)
        try:
            self._run_lines()
        except GuestDied:
            done = {r.index for r in self.result.lines}
            crashed = self.result.lines[-1].index if self.result.lines else 0
            for line in self.plan.lines:
                if line.index not in done:
                    self.result.lines.append(LineResult(
                        line.index, line.text, line.model,
                        note=line.skip or f"the kernel crashed at line {crashed}"))
            raise

    def _run_lines(self) -> None:
        for line in self.plan.lines:
            res = LineResult(line.index, line.text, line.model)
            self.result.lines.append(res)
            if line.skip:
                res.note = line.skip
                continue
            self.model_last.update(line.bars_before)
            try:
                real, detail, note = self.line(line)
            except GuestDied as exc:
                res.real, res.detail = "oops", str(exc)
                # A crash is what the model's kernel-sanity oracle predicts.
                res.agree = any(v.startswith(KERNEL_SANITY) for v in line.violations)
                res.note = ("the model found " + ", ".join(line.violations)
                            if res.agree else "the real kernel crashed")
                self.result.error = "" if res.agree else "the guest died"
                self.result.oops = self.g.console()[-3000:]
                raise
            if real == NOT_RUN:
                # The runner found the line cannot run here after all: not a verdict.
                res.note = note
                self.unrun[line.index] = note
                continue
            res.real, res.detail, res.note = real, detail, note
            res.agree = real == line.model
            if not res.agree:
                res.env = self.environment(line)
            res.dmesg = tuple(self.g.sh("dmesg -c -r"))

    def environment(self, line: LinePlan) -> str:
        """Why a disagreeing line may be the environment, not the model: the card that
        stands for a hot-added device differs, or the real /proc/iomem differs from the
        model's around the addresses the line names."""
        devs = {getattr(line.op, "dev", None)}
        for h in line.uses:
            obj = self.objs.get(h)
            file = obj.file if isinstance(obj, RealMap) else obj
            if isinstance(file, RealFile):
                devs.add(file.dev)
        hotadded = {o.op.dev for o in self.plan.lines if o.op.NAME == "hotadd"}
        reached = line.model[2:].split("/", 1)[0] if line.model.startswith("= ") else ""
        if (self.plan.guest is not None and self.plan.guest.q35 and reached in hotadded
                and devs & hotadded and reached not in devs):
            return Q35_PORTS
        for other in self.plan.lines:
            if other.op.NAME == "hotadd" and other.op.dev in devs and other.card_diffs:
                return "the emulated card differs: " + "; ".join(other.card_diffs)
        if self.reappeared:
            return (f"a hotplug event brought back {', '.join(sorted(self.reappeared))}, "
                    "which the model has removed (acpiphp rescans every occupied slot; the "
                    "model's hot-add scans the card's slot only, as pciehp does)")
        if line.index in self.moved:
            model_addr, real_addr = self.moved[line.index]
            return (f"{model_addr:#x} lies in a model BAR; the real BAR puts it at "
                    f"{real_addr:#x} (another place relative to RAM and the other BARs)")
        for other in self.plan.lines[:line.index]:
            if (other.skip or other.index in self.unrun) and other.op.NAME not in QUERIES:
                return (f"line {other.index} ({other.text}) changes the model's state but "
                        "does not run for real")
        lo, hi = _span(line.op)
        if lo is None:
            lo, hi = self._devmem_span(line)
        if lo is None:
            return ""
        for bars in (line.bars_before, self.model_last):
            for dev, by_bar in bars.items():
                for i, (start, end) in by_bar.items():
                    if start <= hi and lo <= end and not start <= lo <= end:
                        return (f"[{lo:#x}-{hi:#x}] runs into {dev} BAR{i} in the model; "
                                "the real BAR is elsewhere")
        io = getattr(line.op, "parent", None) == "ioport" or \
            getattr(line.op, "macro", "").startswith("io")
        title = "/proc/ioports" if io else "/proc/iomem"
        model = _around(self.plan.model_ioports_boot if io else self.plan.model_iomem_boot,
                        lo, hi)
        real = _around(self.result.ioports_boot if io else self.result.iomem_boot, lo, hi)
        if model != real:
            return (f"the real {title} differs from the model's in [{lo:#x}-{hi:#x}] "
                    f"(model: {'; '.join(model) or 'nothing'}; real: "
                    f"{'; '.join(real) or 'nothing'})")
        return ""

    def _devmem_span(self, line: LinePlan) -> tuple[int | None, int]:
        """The physical range a read, write or mmap of /dev/mem names."""
        op = line.op
        if op.NAME not in ("read", "write", "mmap"):
            return None, 0
        file = self._obj(op.file, RealFile)
        if file is None or file.kind != "devmem":
            return None, 0
        size = getattr(op, "count", None) or getattr(op, "length", 1) or 1
        return op.offset, op.offset + size - 1

    def to_model_text(self, line: str) -> str:
        """A real /proc/iomem change line in the model's names and addresses."""
        sign, text = line[0], line[2:]
        rng, _, name = text.partition(" :")
        lo, hi = (int(x, 16) for x in rng.split("-"))
        name = self.model_name(name.strip())
        for dev, bars in self.real_last.items():
            for i, (start, end) in bars.items():
                model = self.plan.bars_end.get(self.model_name(dev), {}).get(i) or \
                    self.model_last.get(self.model_name(dev), {}).get(i)
                if model is not None and start <= lo <= hi <= end:
                    lo, hi = model[0] + lo - start, model[0] + hi - start
                    return f"{sign} {lo:08x}-{hi:08x} : {name}"
        return f"{sign} {lo:08x}-{hi:08x} : {name}"

    def compare_iomem(self) -> None:
        """Set the result's iomem change fields from the boot and end /proc/iomem."""
        r = self.result
        if not r.iomem_end:
            return
        r.model_iomem_changes = tuple(iomem_changes(self.plan.model_iomem_boot,
                                                    self.plan.model_iomem))
        real = [self.to_model_text(t) for t in iomem_changes(r.iomem_boot, r.iomem_end)]
        r.iomem_changes = tuple(sorted(real, key=lambda t: (t[2:], t[0])))
        r.iomem_changes_agree = r.iomem_changes == r.model_iomem_changes

    def line(self, line: LinePlan) -> tuple[str, str, str]:
        """(real label, detail, note) of one line."""
        op = line.op
        method = getattr(self, "op_" + op.NAME.lstrip("_"), None)
        if method is None:
            return "not run", "", f"no runner for {op.NAME}"
        return method(op, line)

    def _bind(self, line: LinePlan, obj: object | None) -> None:
        if line.handle is not None:
            self.objs[line.handle] = obj

    def _obj(self, handle: int | None, kind: type) -> object | None:
        obj = self.objs.get(handle) if handle is not None else None
        return obj if isinstance(obj, kind) else None

    # --- files and mappings --------------------------------------------------------------

    def _open(self, line: LinePlan, path: str, mode: str, file: RealFile) -> tuple:
        reply = self.g.call(f"open {path} {mode}")
        if reply.ok:
            file.fd = int(reply.values[0])
            self._bind(line, file)
        return status(reply), path, ""

    def op_open_devmem(self, op, line):
        return self._open(line, "/dev/mem", op.mode, RealFile(-1, "devmem"))

    def op_open_resource(self, op, line):
        dev = self.real_name(op.dev)
        suffix = "_wc" if op.variant == "wc" else ""
        return self._open(line, f"/sys/bus/pci/devices/{dev}/resource{op.bar}{suffix}", "rw",
                          RealFile(-1, "resource", op.dev, op.bar))

    def op_open_procfs(self, op, line):
        dev = self.real_name(op.dev)
        bus, slot = dev[5:7], dev[8:]
        return self._open(line, f"/proc/bus/pci/{bus}/{slot}", "rw",
                          RealFile(-1, "procfs", op.dev))

    def op_open_legacy(self, op, line):
        return self._open(line, f"/sys/class/pci_bus/{op.bus}/legacy_{op.file}", "rw",
                          RealFile(-1, "legacy"))

    def op_procfs_ioctl(self, op, line):
        file = self._obj(op.file, RealFile)
        if file is None:
            return "EBADF", "", ""
        return status(self.g.call(f"ioctl {file.fd} {op.cmd}")), "", ""

    def _file_offset(self, file: RealFile, offset: int, line: LinePlan) -> int:
        # /dev/mem and procfs mmaps take a physical address; resourceN takes a BAR offset.
        return self.to_real(offset, line) if file.kind in ("devmem", "procfs") else offset

    def op_mmap(self, op, line):
        file = self._obj(op.file, RealFile)
        if file is None:
            return "EBADF", "", ""
        offset = self._file_offset(file, op.offset, line)
        reply = self.g.call(f"mmap {file.fd} {offset:#x} {op.length:#x} {op.flags} {op.prot}")
        if reply.ok:
            phys = offset
            if file.kind == "resource":
                bar = self.real_last.get(self.real_name(file.dev), {}).get(file.bar)
                phys = (bar[0] if bar else 0) + offset
            self._bind(line, RealMap(int(reply.values[0]), file, offset, phys))
        return status(reply), f"real offset {offset:#x}", ""

    def op_munmap(self, op, line):
        vma = self._obj(op.vma, RealMap)
        if vma is None:
            return "EBADF", "", ""
        return status(self.g.call(f"munmap {vma.mid}")), "", ""

    def _phys(self, vma: RealMap, offset: int) -> int:
        return vma.phys + offset

    def _access(self, op, line, command: str):
        vma = self._obj(op.vma, RealMap)
        if vma is None:
            return "EBADF", "", ""
        write = op.access == "write"
        reply = self.g.call(f"{command} {vma.mid} {op.offset:#x} {'w' if write else 'r'}")
        state = status(reply)
        phys = self._phys(vma, op.offset)
        if state != "ok":
            return state, f"phys {phys:#x}", ""
        if write or line.model == "= anon":
            # A store returns nothing to look at; a private copy reads like the page it
            # copied. Only "it did not fault" is observable.
            same = line.model not in FAULTS and not line.model.startswith("E")
            return (line.model if same else "ok", f"phys {phys:#x}",
                    "only 'no fault' is observable for this access")
        value = int(reply.values[0], 16)
        return f"= {self.classify(phys, value)}", f"phys {phys:#x} read {value:#x}", ""

    def op_touch(self, op, line):
        return self._access(op, line, "touch")

    def op_ptrace_access(self, op, line):
        return self._access(op, line, "pmem")

    def _rw(self, op, line, command: str):
        file = self._obj(op.file, RealFile)
        if file is None:
            return "EBADF", "", ""
        offset = self.to_real(op.offset, line) if file.kind == "devmem" else op.offset
        reply = self.g.call(f"{command} {file.fd} {offset:#x} {op.count:#x}")
        if not reply.ok:
            return status(reply), f"offset {offset:#x}", ""
        detail = f"offset {offset:#x} bytes {reply.values[1]}" if len(reply.values) > 1 \
            else ""
        return f"= {reply.values[0]}", detail, ""

    def op_read(self, op, line):
        return self._rw(op, line, "pread")

    def op_write(self, op, line):
        return self._rw(op, line, "pwrite")

    def op_lseek(self, op, line):
        file = self._obj(op.file, RealFile)
        if file is None:
            return "EBADF", "", ""
        offset = op.offset
        if file.kind == "devmem" and op.whence == "set":
            offset = self.to_real(offset, line)
        reply = self.g.call(f"lseek {file.fd} {offset:#x} {op.whence}")
        if not reply.ok:
            return status(reply), "", ""
        return f"= {reply.values[0]}", "", ""

    def op_close(self, op, line):
        file = self._obj(op.file, RealFile)
        if file is None:
            return "EBADF", "", ""
        return status(self.g.call(f"close {file.fd}")), "", ""

    # --- between Programs ----------------------------------------------------------------

    def cleanup(self) -> None:
        """Undo what the Program did, as far as possible, so the guest can run the next."""
        self.g.call("reset")
        for real in sorted(self.bound):
            self.g.call(f"wr /sys/bus/pci/devices/{real}/driver/unbind {real}")
        self.g.call("sh for f in /sys/bus/pci/devices/*/driver_override; do "
                    "echo > $f; done")
        self.g.call("ctl reset")
        for model_dev, qid in list(self.hotadded.items()):
            real = self.real_name(model_dev)
            self.g.qmp("device_del", id=qid)
            self._wait_devices(lambda devs, r=real: r not in devs)
        self.g.call("ctl drvreset")
        for module in reversed(self.loaded):
            self.g.call(f"rmmod {module}")
        if self.autoprobe_changed:
            self.g.call("echo /sys/bus/pci/drivers_autoprobe 1")
        self.g.sh("dmesg -c")
