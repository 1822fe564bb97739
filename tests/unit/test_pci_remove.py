"""drivers/pci/remove.c as the model runs it: what a removal takes with it."""

from __future__ import annotations

from iomemfuzz.fuzz.executor import run
from iomemfuzz.fuzz.program_parse import parse_program
from iomemfuzz.model.profile import resolve

# The removal stops the device (its driver lets go), then parks in the middle of taking
# its sysfs files away; drivers_probe binds the driver again before pci_destroy_dev.
REBIND_DURING_REMOVAL = """\
r0 = remove(dev="0000:00:1f.3", mode=spawn)
step(task=r0)
r1 = drivers_probe(dev="0000:00:1f.3")
"""


def test_a_driver_bound_during_the_removal_is_unbound_by_device_del():
    """Old model: pci_destroy_dev left the driver bound, so the BAR left the tree with the
    driver's claim inside it (busy-consistency/claim-lost/pci_stop_and_remove_bus_device).
    device_del() calls bus_remove_device(), which releases the driver first."""
    trace = run(parse_program(REBIND_DURING_REMOVAL), resolve("v6.1-deb"))
    assert [s.outcome.status for s in trace.steps[:-1]] == ["ok", "ok", "ok"]
    assert not trace.signatures


# The same removal, with the probe spawned and parked inside the driver's probe (it holds
# the device lock) when the program ends and the removal runs on.
PROBE_HOLDS_THE_LOCK = """\
r0 = remove(dev="0000:00:1f.3", mode=spawn)
step(task=r0)
r1 = drivers_probe(dev="0000:00:1f.3", mode=spawn)
step(task=r1)
"""


def test_device_del_waits_for_a_probe_that_holds_the_device_lock():
    """Old model: pci_destroy_dev freed the pci_dev under the parked probe
    (kernel-sanity/use-after-free-pci-dev/pci_device_probe). device_del() marks the
    device dead under the device lock, so it waits for the probe; bus_remove_device()
    then unbinds what the probe bound."""
    trace = run(parse_program(PROBE_HOLDS_THE_LOCK), resolve("v6.1-deb"))
    assert not trace.signatures
