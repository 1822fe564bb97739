"""The PCI lines: the sysfs files that act on a device or a bus (remove, rescan, bind,
unbind, resize, enable, per-device and per-bus rescan) and QMP hot-plug (a mixin of
:class:`~iomemfuzz.fuzz.confirm.session.Session`).

Every write is what ``echo TEXT > FILE`` does: one write(2) of the text and a newline.
The kernel's store functions read the text up to the newline (kstrtoul, sscanf,
sysfs_streq), so the newline changes nothing but makes the run what the op's doc says.
"""

from __future__ import annotations

import time

from iomemfuzz.fuzz.confirm.guest import GuestError
from iomemfuzz.fuzz.confirm.qemu import GuestDied
from iomemfuzz.fuzz.confirm.results import status

HOTPLUG_WAIT_S = 30.0
NOT_RUN = "not run"


class PciLines:
    """op_* runners for the pci family; real names of hot-added cards go into
    ``self.names``."""

    def _sysfs(self, path: str, text: str) -> str:
        return status(self.g.call(f"echo {path} {text}"))

    def _dev_path(self, model_dev: str) -> str:
        return f"/sys/bus/pci/devices/{self.real_name(model_dev)}"

    def _changes(self, path: str, text: str) -> tuple[str, str, str]:
        """A write that may add, remove, move, enable or bind devices: the real BARs,
        decode states and drivers are read again afterwards."""
        state = self._sysfs(path, text)
        self.refresh()
        return state, "", ""

    def op_remove(self, op, line):
        return self._changes(f"{self._dev_path(op.dev)}/remove", "1")

    def op_rescan(self, op, line):
        return self._changes("/sys/bus/pci/rescan", "1")

    def op_dev_rescan(self, op, line):
        return self._changes(f"{self._dev_path(op.dev)}/rescan", "1")

    def op_bus_rescan(self, op, line):
        # Root buses keep their names: the model's 0000:00 is the guest's.
        return self._changes(f"/sys/class/pci_bus/{op.bus}/rescan", "1")

    def op_enable(self, op, line):
        return self._changes(f"{self._dev_path(op.dev)}/enable", op.value)

    def op_bind(self, op, line):
        # The model's bind needs the driver loaded (a module_load line, or hotadd's
        # driver): the real bind file exists only then, so ENOENT comes out the same.
        state, detail, note = self._changes(f"/sys/bus/pci/drivers/{op.driver}/bind",
                                            self.real_name(op.dev))
        if state == "ok":
            self.bound.add(self.real_name(op.dev))
        return state, detail, note

    def op_unbind(self, op, line):
        driver = op.driver
        if not driver:
            # The driver the device is bound to. An unbound (or gone) device has none:
            # the model answers ENODEV, which is what any PCI driver's unbind file
            # answers for a device not bound to it (unbind_store), so the first driver
            # of the bus stands in.
            reply = self.g.call(f"readlink {self._dev_path(op.dev)}/driver")
            if reply.ok:
                driver = reply.values[0]
            else:
                drivers = self.g.call("ls /sys/bus/pci/drivers").lines
                if not drivers:
                    return NOT_RUN, "", "no PCI driver is registered in the guest"
                driver = drivers[0]
        return self._changes(f"/sys/bus/pci/drivers/{driver}/unbind",
                             self.real_name(op.dev))

    def op_resize(self, op, line):
        return self._changes(f"{self._dev_path(op.dev)}/resource{op.bar}_resize",
                             str(op.size))

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
            return NOT_RUN, "", "no hotplug slot in this guest takes that card"
        card = line.card
        assert card is not None
        if line.model_ids is not None and line.model_ids != card.ids:
            self.id_map[line.model_ids] = card.ids
        if op.driver:
            # The model loads the module udev would load for the card before the scan
            # (pciehp_configure_device); a driver it does not know gets the card's ids.
            state = self.load_driver(op.driver, f"{card.ids[0]:x}:{card.ids[1]:x}:0:0",
                                     op.claims == "yes")
            if state not in ("ok", "EEXIST"):  # EEXIST: loaded already, left as it is
                return NOT_RUN, "", f"loading {op.driver} failed ({state})"
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
            return NOT_RUN, "", f"QEMU refused the card: {exc}"
        after = self._wait_devices(lambda devs: len(devs - before) > 0)
        new = sorted(after - before)
        if not new:
            return "ETIMEDOUT", "", "the guest never saw the card"
        # On i440fx the card is in the model's own slot. The hotplug event may bring back
        # more than the card: acpiphp re-enumerates every occupied slot, so a function an
        # earlier line removed through sysfs (still in its slot) is found again.
        real = op.dev if op.dev in new else next(
            (d for d in new if d not in self.real_last), new[0])
        self.names[op.dev] = real
        self.hotadded[op.dev] = qid
        self.refresh()
        notes = [f"{card.qemu} card at {real}", *line.card_diffs]
        back = [d for d in new if d != real]
        if back:
            notes.append(f"the hotplug event also brought back {', '.join(back)} (removed "
                         "earlier, still in its slot: acpiphp rescans every occupied slot)")
            self.reappeared.update(back)
        return "ok", "", "; ".join(notes)

    def op_hotremove(self, op, line):
        qid = self.hotadded.get(op.dev)
        if qid is None:
            return NOT_RUN, "", "only cards the Program hot-added can be pulled"
        real = self.real_name(op.dev)
        self.g.qmp("device_del", id=qid)
        self._wait_devices(lambda devs: real not in devs)
        del self.hotadded[op.dev]
        self.refresh()
        return "ok", "", ""
