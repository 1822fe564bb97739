"""``iomemfuzz confirm``: replay Programs on a real Linux kernel in QEMU (issue 19).

A Program's lines that a real system can run are run in a QEMU guest booting a Debian
kernel, and each line's real outcome is compared with the model's:

* :mod:`.translate` - how each operation runs for real (or why it cannot), and which QEMU
  guest stands for the Program's machine;
* :mod:`.plan` - the model's run, line by line, and the guest a Program needs;
* :mod:`.guest` - the kernel, the static helper, the test module and the initramfs (built
  into a cache outside the repository);
* :mod:`.qemu` - one running guest: serial command channel and QMP;
* :mod:`.session` - one Program in a guest: names, addresses, outcomes;
* :mod:`.report` - the table and JSON.

Programs that need the same guest share one boot: after each Program the session undoes
what it can (mappings, files, claims, binds, hot-added cards) and the guest is rebooted
only when /proc/iomem, /proc/ioports or the device list still differ from boot.

Exit codes: 0 every runnable line agrees, 1 a disagreement (or a guest that died),
2 usage or input errors (a missing file, a syntax error, missing packages), 3 an internal
error (QEMU failed in a way the input does not explain).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TextIO

from iomemfuzz.fuzz.confirm.guest import (
    GuestError,
    build_image,
    find_kernel,
    install_command,
    install_packages,
    missing_packages,
)
from iomemfuzz.fuzz.confirm.plan import Plan, make_plan, runnable
from iomemfuzz.fuzz.confirm.qemu import Guest, GuestDied
from iomemfuzz.fuzz.confirm.report import render_json, render_text
from iomemfuzz.fuzz.confirm.session import ProgramResult, Session
from iomemfuzz.fuzz.program_file import read_program
from iomemfuzz.fuzz.program_parse import ProgramSyntaxError
from iomemfuzz.model.machine_file import MachineFileError
from iomemfuzz.model.profile import ProfileError

EXIT_AGREE, EXIT_DISAGREE, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3
# PCIe root ports added to q35 guests for hot-added cards: slot 0x10 and up.
HOTPLUG_SLOT0 = 0x10
# What a Program may leave behind that the next one would notice: the trees, the devices
# with their drivers, enable counts and decode bits (IO, MEM), the registered drivers and
# drivers_autoprobe.
STATE_SCRIPT = ("cat /proc/iomem /proc/ioports /sys/bus/pci/drivers_autoprobe; "
                "ls /sys/bus/pci/drivers; for d in /sys/bus/pci/devices/*; do "
                "echo ${d##*/} $(readlink $d/driver) $(cat $d/enable) "
                "$(( 0x$(od -An -tx1 -j4 -N1 $d/config | tr -d ' ') & 3 )); done")

__all__ = ["EXIT_AGREE", "EXIT_DISAGREE", "EXIT_INTERNAL", "EXIT_USAGE", "Options",
           "confirm_files", "confirm_plans"]


@dataclass(frozen=True, slots=True)
class Options:
    kernel: str = "6.1"
    append: str = ""
    profile: str | None = None
    # Install missing Debian packages (as root) instead of stopping with the command.
    install: bool = False


@dataclass(frozen=True, slots=True)
class _GuestKey:
    args: tuple[str, ...]
    q35: bool
    cmdline: str


def _group(plans: list[Plan]) -> dict[_GuestKey, list[Plan]]:
    groups: dict[_GuestKey, list[Plan]] = {}
    for plan in plans:
        if plan.guest is not None and runnable(plan):
            key = _GuestKey(plan.guest.args, plan.guest.q35, plan.cmdline)
            groups.setdefault(key, []).append(plan)
    return groups


def _guest_args(key: _GuestKey, plans: list[Plan]) -> tuple[tuple[str, ...], list[str]]:
    ports = []
    args = list(key.args)
    if key.q35:
        for n in range(max(p.hotadds for p in plans)):
            ports.append(f"hp{n}")
            args += ["-device", f"pcie-root-port,id=hp{n},chassis={40 + n},"
                                f"addr={HOTPLUG_SLOT0 + n:#x}"]
    return tuple(args), ports


def _append(options: Options, key: _GuestKey) -> str:
    words = [key.cmdline, options.append, "iomemfuzz.load=iomemfuzz_test"]
    return " ".join(w for w in words if w)


def _result(plan: Plan) -> ProgramResult:
    guest = plan.guest
    return ProgramResult(plan.path, guest.name if guest else str(plan.program.header(
        "machine")), plan.profile, notes=guest.notes if guest else (),
        model_iomem_end=plan.model_iomem)


def confirm_plans(plans: list[Plan], options: Options) -> list[ProgramResult]:
    """Run the plans (booting as few guests as the state allows); one result each."""
    results = {id(p): _result(p) for p in plans}
    for plan in plans:
        if not runnable(plan):
            lines = [ln for ln in plan.lines if ln.skip]
            results[id(plan)].skip = plan.skip or "no line of it can run on a real system"
            if lines and not plan.skip:
                results[id(plan)].skip += "; " + "; ".join(
                    sorted({ln.skip for ln in lines}))
    groups = _group(plans)
    if not groups:
        return [results[id(p)] for p in plans]
    image = build_image(find_kernel(options.kernel))
    for key, group in groups.items():
        args, ports = _guest_args(key, group)
        append = _append(options, key)
        todo = list(group)
        while todo:
            with Guest(image, args, append) as guest:
                boot_state = guest.sh(STATE_SCRIPT)
                iomem_boot = "\n".join(guest.sh("cat /proc/iomem")) + "\n"
                ioports_boot = "\n".join(guest.sh("cat /proc/ioports")) + "\n"
                while todo:
                    plan = todo.pop(0)
                    result = results[id(plan)]
                    result.qemu, result.accel = args, guest.accel
                    result.kernel = image.kernel.release
                    result.iomem_boot = iomem_boot
                    result.ioports_boot = ioports_boot
                    session = Session(guest, plan, result, ports)
                    try:
                        session.run()
                        result.iomem_end = "\n".join(guest.sh("cat /proc/iomem")) + "\n"
                        session.compare_iomem()
                        session.cleanup()
                        clean = guest.sh(STATE_SCRIPT) == boot_state
                    except GuestDied as exc:
                        if not any(ln.real == "oops" for ln in result.lines):
                            result.error = result.error or str(exc)
                        clean = False
                    if not clean:
                        break  # reboot for the rest
    return [results[id(p)] for p in plans]


def confirm_files(paths: list[str], options: Options, *, as_json: bool = False,
                  out: TextIO | None = None, err: TextIO | None = None) -> int:
    """``iomemfuzz confirm``: parse, plan, run, report; the exit code."""
    out = out or sys.stdout
    err = err or sys.stderr
    plans = []
    for path in paths:
        try:
            program = read_program(path)
            plans.append(make_plan(program, path, options.profile))
        except (ProgramSyntaxError, ProfileError, MachineFileError, OSError) as exc:
            print(f"error: {exc}", file=err)
            return EXIT_USAGE
    if not plans:
        print("iomemfuzz confirm: no Programs given", file=err)
        return EXIT_USAGE
    try:
        missing = missing_packages(options.kernel) if any(map(runnable, plans)) else []
    except GuestError as exc:
        print(f"error: {exc}", file=err)
        return EXIT_USAGE
    if missing and options.install:
        print(f"installing Debian packages: {' '.join(missing)}", file=err)
        why = install_packages(missing)
        if why is not None:
            print(f"error: could not install them: {why}", file=err)
        missing = missing_packages(options.kernel)
    if missing:
        print("iomemfuzz confirm needs Debian packages that are not installed; as root run:\n"
              f"  apt-get update && {install_command(missing)}", file=err)
        return EXIT_USAGE
    try:
        results = confirm_plans(plans, options)
    except GuestError as exc:
        print(f"internal error: {exc}", file=err)
        return EXIT_INTERNAL
    out.write(render_json(results) if as_json else render_text(results))
    if any(r.disagreements or r.error for r in results):
        return EXIT_DISAGREE
    return EXIT_AGREE

