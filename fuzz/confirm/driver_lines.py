"""The driver lines: loading and unloading a driver module, and the driver files of
/sys/bus/pci (new_id, remove_id, drivers_probe, drivers_autoprobe) and of a device
(driver_override) (a mixin of :class:`~iomemfuzz.fuzz.confirm.session.Session`).

Which driver a ``module_load`` line loads follows what the model means by the name
(model/pci_driver_table.py):

* a driver the model takes from its real source (e1000, uio_pci_generic, vfio-pci) is
  Debian's own module, insmod'ed with the modules it needs: the model copies that
  driver's id table and probe, so only the real one answers for it;
* any other name is the model's *generic driver* (its probe enables the device and,
  unless ``claims=no``, requests every BAR under its name; its ids are the line's).
  Debian may ship a module of that name (``i915``), but the model does not mean that
  driver, so the test module registers a pci_driver of that name that does exactly what
  the generic driver does (guest/iomemfuzz_test.c, ``drvload``).

Ids a line names are the model's: a hot-added function the model gives ids a QEMU card
does not have is a card with other ids, so ids are translated the way device names are.
"""

from __future__ import annotations

from iomemfuzz.fuzz.confirm.guest import REAL_DRIVERS, module_name
from iomemfuzz.fuzz.confirm.results import status
from iomemfuzz.fuzz.ops.driver import parse_id_table
from iomemfuzz.model.pci_spec import PCI_ANY_ID

NOT_RUN = "not run"
MODULE_DIR = "/lib/iomemfuzz"
EEXIST = "EEXIST"


class DriverLines:
    """op_* runners for the driver family. ``self.loaded`` lists the real modules the
    Program loaded (cleanup unloads them); the test module's drivers go with
    ``ctl drvreset``."""

    def _id(self, vendor: int, device: int) -> tuple[int, int]:
        if PCI_ANY_ID in (vendor, device):
            return vendor, device
        return self.id_map.get((vendor, device), (vendor, device))

    def module_ids(self, text: str) -> str | None:
        """A module_load line's ids as the test module reads them ("-" for none), in
        the real cards' ids; None if they do not parse (the model answers EINVAL, which
        no real insmod of a driver would)."""
        try:
            table = parse_id_table(text)
        except ValueError:
            return None
        out = []
        for pid in table:
            vendor, device = self._id(pid.vendor, pid.device)
            out.append(f"{vendor:x}:{device:x}:{pid.pci_class:x}:{pid.class_mask:x}")
        return ",".join(out) or "-"

    def _insmod(self, driver: str) -> str:
        """insmod the modules a real driver needs, dependencies first: the answer for
        the driver's own module (EEXIST when it is loaded)."""
        needs = self.g.image.driver_modules.get(driver, (module_name(driver),))
        state = "ok"
        for module in needs:
            state = status(self.g.call(f"insmod {MODULE_DIR}/{module}.ko"))
            if state == "ok" and module == module_name(driver):
                self.loaded.append(module)
            elif state not in ("ok", EEXIST):
                return state
        return state

    def load_driver(self, driver: str, ids: str, claims: bool) -> str:
        """Load ``driver`` as module_load means it; its answer."""
        if driver in REAL_DRIVERS:
            return self._insmod(driver)
        return status(self.g.call(f"ctl drvload {driver} {int(claims)} {ids}"))

    def op_module_load(self, op, line):
        driver = op.driver
        if not driver or any(c.isspace() for c in driver):
            return NOT_RUN, "", "a driver name with spaces cannot be a module's"
        ids = "-"
        if driver not in REAL_DRIVERS:
            ids = self.module_ids(op.ids)
            if ids is None:
                return NOT_RUN, "", (f"ids {op.ids!r} do not parse: the model's EINVAL is "
                                     "its own, no real driver is loaded with them")
        state = self.load_driver(driver, ids, op.claims == "yes")
        self.refresh()
        note = "Debian's module" if driver in REAL_DRIVERS else \
            f"a test module driver ({'claims' if op.claims == 'yes' else 'never claims'})"
        return state, "", note

    def op_module_unload(self, op, line):
        driver = op.driver
        if driver in REAL_DRIVERS:
            state = status(self.g.call(f"rmmod {module_name(driver)}"))
            if state == "ok" and module_name(driver) in self.loaded:
                self.loaded.remove(module_name(driver))
        else:
            state = status(self.g.call(f"ctl drvunload {driver}"))
        self.refresh()
        return state, "", ""

    def _id_text(self, text: str) -> str:
        """new_id / remove_id text with the vendor and device in the real cards' ids."""
        words = text.split()
        try:
            vendor, device = (int(w, 16) for w in words[:2])
        except ValueError:
            return text  # fewer than two hex fields: the kernel's EINVAL either way
        real = self._id(vendor, device)
        return " ".join([f"{real[0]:04x}", f"{real[1]:04x}", *words[2:]])

    def op_new_id(self, op, line):
        return self._changes(f"/sys/bus/pci/drivers/{op.driver}/new_id",
                             self._id_text(op.id))

    def op_remove_id(self, op, line):
        return self._changes(f"/sys/bus/pci/drivers/{op.driver}/remove_id",
                             self._id_text(op.id))

    def op_driver_override(self, op, line):
        # An empty driver is a lone newline: it clears the override.
        return self._changes(f"{self._dev_path(op.dev)}/driver_override", op.driver)

    def op_drivers_probe(self, op, line):
        return self._changes("/sys/bus/pci/drivers_probe", self.real_name(op.dev))

    def op_drivers_autoprobe(self, op, line):
        state, detail, note = self._changes("/sys/bus/pci/drivers_autoprobe", op.value)
        if state == "ok":
            self.autoprobe_changed = True
        return state, detail, note
