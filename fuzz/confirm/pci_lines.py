"""The PCI lines: sysfs writes (remove, rescan, bind, unbind, resize) and QMP hot-plug
(a mixin of :class:`~iomemfuzz.fuzz.confirm.session.Session`)."""

from __future__ import annotations

import time

from iomemfuzz.fuzz.confirm.guest import DRIVER_MODULES, GuestError
from iomemfuzz.fuzz.confirm.qemu import GuestDied
from iomemfuzz.fuzz.confirm.results import status

HOTPLUG_WAIT_S = 30.0


class PciLines:
    """op_* runners for the pci family; real names of hot-added cards go into
    ``self.names``."""


    def _sysfs(self, path: str, text: str) -> str:
        return status(self.g.call(f"wr {path} {text}"))

    def _dev_path(self, model_dev: str) -> str:
        return f"/sys/bus/pci/devices/{self.real_name(model_dev)}"

    def op_remove(self, op, line):
        state = self._sysfs(f"{self._dev_path(op.dev)}/remove", "1")
        self.refresh()
        return state, "", ""

    def op_rescan(self, op, line):
        state = self._sysfs("/sys/bus/pci/rescan", "1")
        self.refresh()
        return state, "", ""

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
            state = self._sysfs(f"{self._dev_path(op.dev)}/driver_override", driver)
            if state != "ok":
                return state, "", "driver_override failed"
        elif (op.claims == "yes") != (driver == "e1000"):
            note = f"the real {driver} {'claims' if driver == 'e1000' else 'never claims'}"
        state = self._sysfs(f"/sys/bus/pci/drivers/{driver}/bind", real)
        if state == "ok":
            self.bound.add(real)
        return state, "", note

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
