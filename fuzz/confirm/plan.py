"""What a confirm run needs to know before it boots: the model's answer for every line, the
BAR layout the model had before each line, the route of each line, and the guest the
Program needs.

The model runs first, line by line (``fuzz.executor.Execution``), so that addresses a
Program writes inside a model BAR can be moved to the same offset of the real BAR, and so
that lines the model says would sleep (a MUXED conflict) are not run for real.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from iomemfuzz.fuzz.confirm.translate import (
    HELPER,
    NONE,
    QMP,
    Card,
    GuestMachine,
    How,
    device_for_hotadd,
    guest_for,
    hotadd_ids,
    how,
    profile_cmdline,
)
from iomemfuzz.fuzz.executor import Execution
from iomemfuzz.fuzz.ops import Kind, Op
from iomemfuzz.fuzz.program import Program
from iomemfuzz.fuzz.program_format import format_op
from iomemfuzz.model.kernel import Kernel
from iomemfuzz.model.pci import PCI_STD_NUM_BARS
from iomemfuzz.model.profile import resolve

# model device name -> {BAR index: (start, end)}
BarMap = dict[str, dict[int, tuple[int, int]]]


def model_bars(kernel: Kernel) -> BarMap:
    """The assigned BARs of every registered device of the model kernel."""
    out: BarMap = {}
    for dev in kernel.pci.devices():
        bars = {}
        for i in range(PCI_STD_NUM_BARS):
            res = dev.resource[i]
            if dev.bar_len(i) and res.parent is not None:
                bars[i] = (res.start, res.end)
        out[dev.name] = bars
    return out


@dataclass
class LinePlan:
    index: int
    op: Op
    text: str  # the operation as Program text
    model: str  # the model's outcome label
    how: How
    handle: int | None  # the handle this line binds
    uses: tuple[int, ...]  # handles it refers to
    bars_before: BarMap
    skip: str = ""  # why it is not run ("" = run it)
    card: Card | None = None  # hotadd: the emulated card
    card_diffs: tuple[str, ...] = ()
    model_ids: tuple[int, int] | None = None  # hotadd: the function's ids in the model
    violations: tuple[str, ...] = ()  # signatures the model's oracles found at this line


@dataclass
class Plan:
    path: str
    program: Program
    profile: str
    guest: GuestMachine | None
    lines: list[LinePlan] = field(default_factory=list)
    skip: str = ""  # why no line of the Program runs
    model_iomem: str = ""  # after the last line
    bars_end: BarMap = field(default_factory=dict)  # the model's BARs after the last line
    model_iomem_boot: str = ""
    model_ioports_boot: str = ""
    cmdline: str = ""  # kernel command line words the profile needs

    @property
    def hotadds(self) -> int:
        return sum(1 for ln in self.lines if ln.how.route == QMP and ln.op.NAME == "hotadd")


def _handles_used(op: Op) -> tuple[int, ...]:
    out = []
    for name, a in type(op).args():
        value = getattr(op, name)
        if a.kind in (Kind.HANDLE, Kind.NODE) and isinstance(value, int):
            out.append(value)
    return tuple(out)


def make_plan(program: Program, path: str, profile: str | None = None) -> Plan:
    """Run the model on ``program`` and decide how each line runs."""
    prof = resolve(profile if profile is not None else program.profile)
    try:
        guest = guest_for(program.header("machine"))
    except KeyError as exc:
        return Plan(path, program, prof.name, None, skip=str(exc.args[0]))
    ex = Execution.start(prof, program)
    plan = Plan(path, program, prof.name, guest)
    cmdline = profile_cmdline(prof.name)
    if cmdline is None:
        plan.skip = (f"profile {prof.name} is not a kernel Debian ships (a design "
                     "alternative, a test profile or an older release)")
    plan.cmdline = cmdline or ""
    if any(type(o).CONTROLS_BOOT for o in program.ops):
        plan.skip = "the Program controls boot (boot_to): a real kernel boots on its own"
    state = ex.kernel.describe()
    plan.model_iomem_boot = state.get("/proc/iomem", "")
    plan.model_ioports_boot = state.get("/proc/ioports", "")
    handle = 0
    creators: dict[int, int] = {}
    added: dict[str, int] = {}  # device name -> the hotadd line that inserts it
    for index, o in enumerate(program.ops):
        before = model_bars(ex.kernel)
        step = ex.step(o)
        label = step.outcome.label if step.outcome is not None else "?"
        binder = handle if type(o).BINDS else None
        if binder is not None:
            creators[binder] = index
            handle += 1
        line = LinePlan(index, o, format_op(o, binder), label, how(o), binder,
                        _handles_used(o), before,
                        violations=tuple(v.signature for v in step.violations))
        if line.how.route == NONE:
            line.skip = line.how.text
        elif label == "blocked":
            line.skip = "the model says this call sleeps: run for real it would hang"
        else:
            missing = [h for h in line.uses if h in creators
                       and plan.lines[creators[h]].skip]
            dev = getattr(o, "dev", None)
            if missing:
                line.skip = f"uses r{missing[0]}, whose line does not run"
            elif o.NAME != "hotadd" and dev in added and plan.lines[added[dev]].skip:
                line.skip = f"{dev} comes from line {added[dev]}, which does not run"
        if o.NAME == "hotadd":
            added[o.dev] = index
        if o.NAME == "hotadd" and not line.skip:
            try:
                line.model_ids, given = hotadd_ids(o)
            except ValueError:
                line.skip = "the line's BARs or ROM do not parse: no card stands for it"
            else:
                line.card, diffs = device_for_hotadd(o.bars, given)
                if line.card.ids != line.model_ids:
                    diffs.append("the {} card's ids are {:04x}:{:04x}, the model's "
                                 "{:04x}:{:04x}".format(line.card.qemu, *line.card.ids,
                                                        *line.model_ids))
                line.card_diffs = tuple(diffs)
        plan.lines.append(line)
    ex.finish()
    plan.model_iomem = ex.kernel.describe().get("/proc/iomem", "")
    plan.bars_end = model_bars(ex.kernel)
    if plan.skip:
        for line in plan.lines:
            line.skip = line.skip or plan.skip
    return plan


def runnable(plan: Plan) -> bool:
    return not plan.skip and any(not ln.skip for ln in plan.lines)


def uses_helper(plan: Plan) -> bool:
    return any(ln.how.route == HELPER and not ln.skip for ln in plan.lines)
