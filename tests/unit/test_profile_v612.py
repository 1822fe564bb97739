"""The v6.12 profile: each setting it changes from 6.1-deb answers as Debian 6.12.118 does
(docs/KERNELS.md, "6.1 → 6.12")."""

from __future__ import annotations

import pytest
from iomemfuzz.fuzz.executor import run
from iomemfuzz.fuzz.program_parse import parse_program
from iomemfuzz.model.event import WARN
from iomemfuzz.model.kernel import Kernel
from iomemfuzz.model.profile import PROFILES, resolve

V612 = "v6.12"
DEB = "v6.1-deb"


def labels(text: str, profile: str) -> list[str]:
    trace = run(parse_program(text), resolve(profile))
    return [s.outcome.label for s in trace.steps[:-1]]


def test_the_row_is_v61_deb_plus_the_changes_of_docs_kernels():
    deb, v612 = PROFILES[DEB].settings(), PROFILES[V612].settings()
    changed = {k for k in deb if deb[k] != v612[k]}
    assert changed == {"pci_resource_llseek_fixed", "host_probe_takes_rescan_lock",
                       "gfr_steps_by_align", "muxed_wait_loses_wakeup",
                       "generic_access_phys_refuses_ram", "lapic_in_iomem"}
    assert PROFILES["next-2026"].host_probe_takes_rescan_lock


@pytest.mark.parametrize(("profile", "expected"), [(DEB, "= 0x0"), (V612, "ENODEV")])
def test_lseek_on_a_removed_resource_file(profile, expected):
    text = ('r0 = hotadd(dev="0000:00:03.0")\nr1 = open_resource(dev="0000:00:03.0")\n'
            'r2 = remove(dev="0000:00:03.0")\nlseek(file=r1, whence=end)\n')
    assert labels(text, profile)[-1] == expected


@pytest.mark.parametrize(("profile", "expected"), [(DEB, "ERANGE"), (V612, "ok")])
def test_alloc_free_mem_region_from_iomem_itself(profile, expected):
    text = "r0 = alloc_free_mem_region(size=0x10000000, align=0x10000000)\n"
    assert labels(text, profile) == [expected]


@pytest.mark.parametrize(("profile", "removal"), [(DEB, "ok"), (V612, "blocked")])
def test_remove_waits_for_a_host_probe_only_on_612(profile, removal):
    text = ('r0 = hotadd(dev="0001:00:00.0", host=async)\nr1 = host_probe(mode=spawn)\n'
            'step(task=r1, until="before pci_create_sysfs_dev_files")\n'
            'r2 = remove(dev="0001:00:00.0")\n')
    assert labels(text, profile)[-1] == removal


def test_vmd_takes_no_lock_on_612():
    text = ('r0 = hotadd(dev="0001:00:00.0", host=vmd)\nr1 = host_probe(mode=spawn)\n'
            'step(task=r1, until="before pci_create_sysfs_dev_files")\n'
            'r2 = remove(dev="0001:00:00.0")\n')
    assert labels(text, V612)[-1] == "ok"


@pytest.mark.parametrize(("profile", "errno_", "warns"), [(DEB, -12, True),
                                                           (V612, -22, False)])
def test_generic_access_phys_of_a_copied_page(profile, errno_, warns):
    k = Kernel(resolve(profile))
    proc = k.init_process()
    file = k.open_mem(proc, True)
    vma = k.mmap(file, 0x80000, 1, False, True)
    assert k.touch(vma, 0x8, True).target.kind == "anon"
    mark = len(k.log.events)
    assert k.mm.generic_access_phys(vma, 0x8)[0] == errno_
    assert any(e.kind == WARN for e in k.log.since(mark)) is warns
    assert k.access_remote(vma, 0x8, 4, False)[0] == -5  # the debugger sees EIO


@pytest.mark.parametrize(("profile", "last"), [(DEB, "blocked"), (V612, "ok")])
def test_muxed_wakeup_in_the_unlock_window(profile, last):
    text = ('r0 = request_muxed_region(name="a")\n'
            'r1 = request_muxed_region(name="b", mode=spawn)\n'
            'step(task=r1, until="before set_current_state")\n'
            "__release_region(parent=ioport, start=0x2e, n=0x2)\n"
            "step(task=r1)\n")
    assert labels(text, profile)[-1] == last
