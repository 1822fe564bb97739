"""The fuzz engines generate issue 17's operations: both are built from the operation
table, so random bytes decode to them, hypothesis draws them, and their NAME fields are
suggested what exists (the machines' devices, the driver table's drivers)."""

from __future__ import annotations

import random

from hypothesis import HealthCheck, find, given, settings
from iomemfuzz.fuzz import decode, encode
from iomemfuzz.fuzz.ops import REGISTRY, Kind, load_families
from iomemfuzz.fuzz.ops.pci import DEVS, DRIVERS
from iomemfuzz.fuzz.program import Line, Program
from iomemfuzz.fuzz.strategies import ops_of, programs
from iomemfuzz.model.machine_file import load_machine
from iomemfuzz.model.pci_driver_table import DRIVERS as KNOWN

NEW_OPS = ("module_load", "module_unload", "new_id", "remove_id", "driver_override",
           "drivers_probe", "enable", "dev_rescan", "bus_rescan", "read_busy",
           "read_driver", "list_files", "read_resource")


def _classes():
    load_families()
    return [REGISTRY[name] for name in NEW_OPS]


def test_every_new_operation_is_in_the_encoders_domain():
    for cls in _classes():
        program = Program((Line(cls()),))
        assert decode.decode(encode.encode(program)) == program, cls.NAME


def test_random_bytes_decode_to_every_new_operation():
    rng = random.Random(17)
    seen: set[str] = set()
    for _ in range(4000):
        data = rng.randbytes(rng.randrange(8, 96))
        seen.update(type(o).NAME for o in decode.decode_ops(data))
        if seen >= set(NEW_OPS):
            break
    assert set(NEW_OPS) <= seen, sorted(set(NEW_OPS) - seen)


def test_hypothesis_draws_every_new_operation():
    seen: set[str] = set()

    @settings(max_examples=1500, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(programs(max_lines=3, metadata=False))
    def draw(program):
        seen.update(type(o).NAME for o in program.ops)

    draw()
    assert set(NEW_OPS) <= seen, sorted(set(NEW_OPS) - seen)


def test_name_fields_suggest_devices_and_drivers():
    i440fx = load_machine("qemu-i440fx-512m-e1000-edu")
    assert {s.name for s in i440fx.pci_devices} <= set(DEVS)
    assert set(KNOWN) <= set(DRIVERS)
    for cls in _classes():
        for name, a in cls.args():
            if a.kind is Kind.NAME and name == "dev":
                assert a.choices == DEVS, cls.NAME
            if a.kind is Kind.NAME and name == "driver":
                assert set(KNOWN) <= set(a.choices), cls.NAME


def test_strategies_draw_valid_new_operations():
    fast = settings(max_examples=10, deadline=None, database=None,
                    suppress_health_check=list(HealthCheck))
    for cls in _classes():
        drawn = find(ops_of(cls, handles=2), lambda o: True, settings=fast)
        assert type(drawn) is cls
