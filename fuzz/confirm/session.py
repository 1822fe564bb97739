"""Run a planned Program inside a booted guest, line by line, and say what the real kernel did.

Each line's real answer is put in the model's vocabulary (``ok``, an errno name,
``SIGBUS``, ``= 0x4``, ``= 0000:00:03.0/bar0+0x10``, ``= ram``, ``= unbacked``), so the
report compares two labels. What an access reached is read from the value a load
returned and where the address lies in the real system: inside a BAR of a device and
non-zero is that device (named as the model names it); zero is ``unbacked`` (QEMU answers
reads that nothing decodes with zeros; hardware answers all-ones); inside System RAM is
``ram``.

Names and addresses differ between the model and the guest (the guest's firmware placed
the BARs, and a card hot-added on q35 sits behind a root port), so the session keeps two
tables: model device name -> real device name, and model BAR -> real BAR. An address a
line writes that lies inside a model BAR moves to the same offset of the real BAR.
"""

from __future__ import annotations

import errno as errno_mod
import time
from dataclasses import dataclass, field

from iomemfuzz.fuzz.confirm.guest import DRIVER_MODULES, GuestError
from iomemfuzz.fuzz.confirm.plan import BarMap, LinePlan, Plan
from iomemfuzz.fuzz.confirm.qemu import Guest, GuestDied, Reply
from iomemfuzz.model.resource import (
    IORESOURCE_EXCLUSIVE,
    IORESOURCE_IO,
    IORESOURCE_MEM,
    IORESOURCE_MUXED,
)

REGION_NAMES = {0: "INTERSECTS", 1: "DISJOINT", 2: "MIXED"}
MACRO_ROOT_FLAGS = {"io": ("ioport", 0), "io_muxed": ("ioport", IORESOURCE_MUXED),
                    "mem": ("iomem", 0), "mem_muxed": ("iomem", IORESOURCE_MUXED),
                    "mem_exclusive": ("iomem", IORESOURCE_EXCLUSIVE)}
HOTPLUG_WAIT_S = 30.0
FAULTS = ("SIGBUS", "SIGSEGV")
ALL_ONES_32 = 0xFFFFFFFF
KERNEL_SANITY = "kernel-sanity/"


@dataclass
class LineResult:
    index: int
    text: str
    model: str
    real: str | None = None  # None: not run
    agree: bool | None = None
    note: str = ""  # why not run, or what differs in the environment
    detail: str = ""  # raw facts: the value a load returned, the real address
    env: str = ""  # for a disagreement: how the real system differs from the model's
    dmesg: tuple[str, ...] = ()


@dataclass
class ProgramResult:
    path: str
    machine: str
    profile: str
    qemu: tuple[str, ...] = ()
    kernel: str = ""
    accel: str = ""
    lines: list[LineResult] = field(default_factory=list)
    skip: str = ""
    error: str = ""
    iomem_boot: str = ""
    iomem_end: str = ""
    model_iomem_end: str = ""
    oops: str = ""  # the console's end when the kernel crashed
    notes: tuple[str, ...] = ()

    @property
    def disagreements(self) -> list[LineResult]:
        return [ln for ln in self.lines if ln.agree is False]


@dataclass
class RealFile:
    fd: int
    kind: str  # devmem, resource, procfs, legacy
    dev: str = ""  # model device name (resource/procfs)
    bar: int = 0


@dataclass
class RealMap:
    mid: int
    file: RealFile
    offset: int  # the real mmap offset


def _errname(reply: Reply) -> str:
    number = int(reply.values[0]) if reply.values else 0
    return errno_mod.errorcode.get(number, f"E{number}")


def _status(reply: Reply) -> str:
    if reply.status == "sig":
        return reply.values[0]
    if reply.status == "err":
        return _errname(reply)
    return "ok"


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


class Session:
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
        self.hotadded: dict[str, str] = {}  # model device -> QMP id
        self.bound: set[str] = set()  # real devices a bind line bound
        self.loaded: list[str] = []  # real driver modules a bind line loaded

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
                            return real[0] + addr - start
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
        for other in self.plan.lines:
            if other.op.NAME == "hotadd" and other.op.dev in devs and other.card_diffs:
                return "the emulated card differs: " + "; ".join(other.card_diffs)
        lo, hi = _span(line.op)
        if lo is None:
            return ""
        model = _around(self.plan.model_iomem_boot, lo, hi)
        real = _around(self.result.iomem_boot, lo, hi)
        if model != real:
            return (f"the real /proc/iomem differs from the model's in [{lo:#x}-{hi:#x}] "
                    f"(model: {'; '.join(model) or 'nothing'}; real: "
                    f"{'; '.join(real) or 'nothing'})")
        return ""

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
        return _status(reply), path, ""

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
        return _status(self.g.call(f"ioctl {file.fd} {op.cmd}")), "", ""

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
            self._bind(line, RealMap(int(reply.values[0]), file, offset))
        return _status(reply), f"real offset {offset:#x}", ""

    def op_munmap(self, op, line):
        vma = self._obj(op.vma, RealMap)
        if vma is None:
            return "EBADF", "", ""
        return _status(self.g.call(f"munmap {vma.mid}")), "", ""

    def _phys(self, vma: RealMap, offset: int) -> int:
        if vma.file.kind == "resource":
            bar = self.real_last.get(self.real_name(vma.file.dev), {}).get(vma.file.bar)
            return (bar[0] if bar else 0) + vma.offset + offset
        return vma.offset + offset

    def _access(self, op, line, command: str):
        vma = self._obj(op.vma, RealMap)
        if vma is None:
            return "EBADF", "", ""
        write = op.access == "write"
        reply = self.g.call(f"{command} {vma.mid} {op.offset:#x} {'w' if write else 'r'}")
        status = _status(reply)
        phys = self._phys(vma, op.offset)
        if status != "ok":
            return status, f"phys {phys:#x}", ""
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
            return _status(reply), f"offset {offset:#x}", ""
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
            return _status(reply), "", ""
        return f"= {reply.values[0]}", "", ""

    def op_close(self, op, line):
        file = self._obj(op.file, RealFile)
        if file is None:
            return "EBADF", "", ""
        return _status(self.g.call(f"close {file.fd}")), "", ""

    # --- kernel/resource.c through the test module ---------------------------------------

    def _ctl(self, command: str) -> tuple[Reply, str]:
        reply = self.g.call(f"ctl {command}")
        return reply, _status(reply)

    def _root(self, node: object) -> str | None:
        if node in ("iomem", "ioport"):
            return str(node)
        if isinstance(node, int) and self.objs.get(node) == "module":
            return f"h{node}"
        return None

    def _claim(self, line: LinePlan, root: str, start: int, n: int, flags: int,
               name: str) -> tuple:
        if root == "iomem":
            start = self.to_real(start, line)
        reply, status = self._ctl(f"region {root} {start:#x} {n:#x} {flags:#x} "
                                  f"{line.handle} {name}")
        if reply.ok:
            self._bind(line, "module")
        return status, f"start {start:#x}", ""

    def op_request_region(self, op, line):
        if op.NAME == "__request_region":
            root = self._root(op.parent)
            if root is None:
                return "EBADF", "", ""
            return self._claim(line, root, op.start, op.n, op.flags, op.name)
        root, flags = MACRO_ROOT_FLAGS.get(op.macro, ("ioport", 0))
        return self._claim(line, root, op.start, op.n, flags, op.name)

    def op_request_mem_region(self, op, line):
        flags = IORESOURCE_EXCLUSIVE if op.exclusive == "yes" else 0
        return self._claim(line, "iomem", op.start, op.n, flags, op.name or "drv")

    def _release(self, line: LinePlan, root: str, start: int, n: int) -> tuple:
        if root == "iomem":
            start = self.to_real(start, line)
        return self._ctl(f"release {root} {start:#x} {n:#x}")[1], f"start {start:#x}", ""

    def op_release_region(self, op, line):
        root = self._root(op.parent)
        if root is None:
            return "EBADF", "", ""
        return self._release(line, root, op.start, op.n)

    def op_release_mem_region(self, op, line):
        return self._release(line, "iomem", op.start, op.n)

    def _new_struct(self, op, line, command: str):
        root = self._root(op.parent)
        if root is None:
            return "EBADF", "", ""
        start, end = op.start, op.end
        if root == "iomem":
            start, end = self.to_real(start, line), self.to_real(end, line)
        reply, status = self._ctl(f"{command} {root} {start:#x} {end:#x} {op.flags:#x} "
                                  f"{op.desc} {line.handle} {op.name}")
        # The struct is the line's handle whatever the answer (the model's rule too).
        if reply.ok or reply.status == "err":
            self._bind(line, "module")
        return status, "", ""

    def op_request_resource(self, op, line):
        return self._new_struct(op, line, "reqres")

    def op_insert_resource(self, op, line):
        return self._new_struct(op, line, "insres")

    def op_insert_resource_expand_to_fit(self, op, line):
        return self._new_struct(op, line, "insfit")

    def _on_struct(self, op, command: str, args: str = ""):
        root = self._root(op.res)
        if root is None:
            return "EBADF", "", ""
        return self._ctl(f"{command} {root}{args}")[1], "", ""

    def op_release_resource(self, op, line):
        return self._on_struct(op, "relres")

    def op_remove_resource(self, op, line):
        return self._on_struct(op, "rmres")

    def op_adjust_resource(self, op, line):
        return self._on_struct(op, "adjres", f" {op.start:#x} {op.size:#x}")

    def op_request_free_mem_region(self, op, line):
        root = self._root(op.base)
        if root is None:
            return "EBADF", "", ""
        reply, status = self._ctl(f"freemem {root} {op.size:#x} {line.handle} {op.name}")
        if reply.ok:
            self._bind(line, "module")
        return status, "", ""

    def op_region_intersects(self, op, line):
        start = self.to_real(op.start, line)
        reply, status = self._ctl(f"intersects {start:#x} {op.size:#x} {op.flags:#x} "
                                  f"{op.desc}")
        if not reply.ok:
            return status, "", ""
        return f"= {REGION_NAMES.get(int(reply.values[0]), reply.values[0])}", "", ""

    def op_page_is_ram(self, op, line):
        reply, status = self._ctl(f"pageram {op.pfn:#x}")
        if not reply.ok:
            return status, "", ""
        return f"= {'true' if int(reply.values[0]) else 'false'}", "", ""

    # --- PCI: sysfs writes and hot-plug --------------------------------------------------

    def _sysfs(self, path: str, text: str) -> str:
        return _status(self.g.call(f"wr {path} {text}"))

    def _dev_path(self, model_dev: str) -> str:
        return f"/sys/bus/pci/devices/{self.real_name(model_dev)}"

    def op_remove(self, op, line):
        status = self._sysfs(f"{self._dev_path(op.dev)}/remove", "1")
        self.refresh()
        return status, "", ""

    def op_rescan(self, op, line):
        status = self._sysfs("/sys/bus/pci/rescan", "1")
        self.refresh()
        return status, "", ""

    def _load(self, driver: str) -> str:
        """insmod a real driver (and what it needs) the first time a line binds it: with
        drivers_autoprobe 0 the load binds nothing by itself."""
        for module in DRIVER_MODULES[driver]:
            if module not in self.loaded:
                reply = self.g.call(f"sh insmod /lib/iomemfuzz/{module}.ko 2>&1")
                if reply.values != ("0",):
                    return f"insmod {module} failed: {' '.join(reply.lines)}"
                self.loaded.append(module)
        return ""

    def op_bind(self, op, line):
        real = self.real_name(op.dev)
        driver = op.driver or "drv"
        note = ""
        if driver in DRIVER_MODULES:
            failed = self._load(driver)
            if failed:
                return "not run", "", failed
        if driver not in self.plan.modules:
            status = self._sysfs(f"{self._dev_path(op.dev)}/driver_override", driver)
            if status != "ok":
                return status, "", "driver_override failed"
        elif (op.claims == "yes") != (driver == "e1000"):
            note = f"the real {driver} {'claims' if driver == 'e1000' else 'never claims'}"
        status = self._sysfs(f"/sys/bus/pci/drivers/{driver}/bind", real)
        if status == "ok":
            self.bound.add(real)
        return status, "", note

    def op_unbind(self, op, line):
        return self._sysfs(f"{self._dev_path(op.dev)}/driver/unbind",
                           self.real_name(op.dev)), "", ""

    def op_resize(self, op, line):
        return self._sysfs(f"{self._dev_path(op.dev)}/resource{op.bar}_resize",
                           str(op.size)), "", ""

    def _wait_devices(self, until) -> set[str]:
        deadline = time.monotonic() + HOTPLUG_WAIT_S
        while True:
            devs = set(self.g.sh("ls /sys/bus/pci/devices"))
            if until(devs) or time.monotonic() > deadline:
                return devs
            time.sleep(0.3)

    def _port(self, model_dev: str) -> dict[str, object] | None:
        """Where a hot-added card goes: the model's own slot on an i440fx root bus (ACPI
        hotplug), else the next free PCIe root port of a q35 guest."""
        if self.plan.guest is not None and not self.plan.guest.q35:
            if model_dev[:8] != "0000:00:" or not model_dev.endswith(".0"):
                return None
            return {"bus": "pci.0", "addr": f"{int(model_dev[8:10], 16):#x}"}
        return {"bus": self.ports.pop(0)} if self.ports else None

    def op_hotadd(self, op, line):
        port = self._port(op.dev)
        if port is None:
            return "not run", "", "no hotplug slot in this guest takes that card"
        card = line.card
        assert card is not None
        before = set(self.g.sh("ls /sys/bus/pci/devices"))
        qid = f"ha{line.index}"
        props = {"driver": card.qemu, "id": qid, **port}
        if op.rom:
            assert self.g.workdir is not None
            rom = self.g.workdir / f"rom-{op.rom:#x}.bin"
            rom.write_bytes(b"\x55\xaa" + bytes(op.rom - 2))
            props["romfile"] = str(rom)
        else:
            props["rombar"], props["romfile"] = 0, ""
        try:
            self.g.qmp("device_add", **props)
        except GuestDied:
            raise
        except GuestError as exc:
            return "not run", "", f"QEMU refused the card: {exc}"
        after = self._wait_devices(lambda devs: len(devs - before) > 0)
        new = sorted(after - before)
        if not new:
            return "ETIMEDOUT", "", "the guest never saw the card"
        self.names[op.dev] = new[0]
        self.hotadded[op.dev] = qid
        self.refresh()
        notes = [f"{card.qemu} card at {new[0]}", *line.card_diffs]
        return "ok", "", "; ".join(notes)

    def op_hotremove(self, op, line):
        qid = self.hotadded.get(op.dev)
        if qid is None:
            return "not run", "", "only cards the Program hot-added can be pulled"
        real = self.real_name(op.dev)
        self.g.qmp("device_del", id=qid)
        self._wait_devices(lambda devs: real not in devs)
        del self.hotadded[op.dev]
        self.refresh()
        return "ok", "", ""

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
        for module in reversed(self.loaded):
            self.g.call(f"sh rmmod {module}")
        self.g.sh("dmesg -c")
