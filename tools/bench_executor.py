#!/usr/bin/env python3
"""Executions per second of ``run()`` on 32-operation Programs with every oracle on.

Programs are decoded from seeded random bytes (so they use every registered operation
with the decoder's value choices), each exactly 32 operations long. By default every
run is thorough (whole-state checks after every step); ``--fast`` measures what the fuzz
targets run (``thorough=False``: whole-state checks at the end only). With
``--breakdown`` one extra pass runs under cProfile and attributes the time to the
oracles, the fresh kernel, the operations and the paths finished at the end (and says how
much of it was boot code); ``--by-start`` splits the cost per run, in layers, between
Programs that start booted and Programs that control boot (and so run boot code); and
``--snapshot`` times building a kernel against copying its template (fuzz/snapshot.py).
The machine's load average is printed with the result: on a shared machine compare
numbers taken at similar load.

    .venv/bin/python tools/bench_executor.py [--programs 200] [--seconds 10] [--fast]
                                             [--breakdown] [--by-start] [--snapshot]
"""

from __future__ import annotations

import argparse
import copy
import cProfile
import os
import pstats
import random
import time
from collections.abc import Callable

from iomemfuzz.fuzz import decode, decode_fields, decode_tables
from iomemfuzz.fuzz.executor import needs_boot, run, run_ops
from iomemfuzz.fuzz.ops import Context, Op
from iomemfuzz.fuzz.program import Program
from iomemfuzz.fuzz.snapshot import fresh_kernel
from iomemfuzz.model.kernel import Kernel
from iomemfuzz.model.profile import resolve

LENGTH = 32


def programs(count: int, seed: int) -> list[Program]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        state = decode_fields.State()
        ops: list[Op] = [decode.decode_record(rng.randbytes(rng.randrange(2, 24)), state)
                         for _ in range(LENGTH)]
        out.append(Program().with_ops(ops))
    return out


def measure(progs: list[Program], profile: str, seconds: float,
            thorough: bool = True) -> tuple[int, float]:
    prof = resolve(profile)
    runs = 0
    start = time.perf_counter()
    while True:
        for p in progs:
            run(p, prof, thorough=thorough)
            runs += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return runs, elapsed


def breakdown(progs: list[Program], profile: str, thorough: bool = True
              ) -> dict[str, float]:
    """Share of the time (cumulative, cProfile) spent in the oracle checks (with the tree
    walks they call), in copying the fresh kernel, in the operations, and in the kernel
    paths still pending at the end (a Program that controls boot finishes it there);
    then, overlapping those, the boot path wherever it ran."""
    prof = resolve(profile)
    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.enable()
    for p in progs:
        run(p, prof, thorough=thorough)
    profiler.disable()
    total = time.perf_counter() - start
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    shares = {"oracles (executor._check)": 0.0, "fresh kernel (snapshot copy)": 0.0,
              "operations (Op.run)": 0.0, "paths left at the end (Kernel.finish)": 0.0}
    boot = 0.0
    for (filename, _line, func), (_cc, _nc, _tt, cumtime, _callers) in stats.items():
        if filename.endswith("fuzz/executor.py") and func == "_check":
            shares["oracles (executor._check)"] += cumtime
        elif filename.endswith("fuzz/snapshot.py") and func == "fresh_kernel":
            shares["fresh kernel (snapshot copy)"] += cumtime
        elif "/fuzz/ops/" in filename and func == "run":
            shares["operations (Op.run)"] += cumtime
        elif filename.endswith("model/kernel.py") and func == "finish":
            shares["paths left at the end (Kernel.finish)"] += cumtime
        elif filename.endswith("model/boot.py") and func == "path":
            boot += cumtime
    out = {k: 100.0 * v / total for k, v in shares.items()}
    out["rest (decode-free executor loop, profiler)"] = max(0.0, 100.0 - sum(out.values()))
    out["  of all the above: the boot path (Boot.path)"] = 100.0 * boot / total
    return out


def snapshot_costs(profile: str, repeat: int = 1000) -> list[str]:
    """What a fresh kernel costs: built from scratch (``Kernel()``, a whole boot for a
    booted one), copied from the template (``fresh_kernel``), and, for comparison, the
    generic way of copying one (``copy.deepcopy``)."""
    prof = resolve(profile)
    lines = []
    for booted in (True, False):
        fresh_kernel(prof, booted=booted)  # the template is built once per process
        built = _per_call(lambda b=booted: Kernel(prof, booted=b), repeat)
        copied = _per_call(lambda b=booted: fresh_kernel(prof, booted=b), repeat)
        kind = "booted" if booted else "unbooted"
        lines.append(f"{kind:8s} kernel: built {built:6.0f} us, copied {copied:5.0f} us "
                     f"({built / copied:.1f}x)")
    kernel = Kernel(prof)
    # Shared as a copy shares them: the profile, the machine, finished boot generators.
    keep = [prof, kernel.machine, *(t.gen for t in kernel.sched.tasks)]
    deep = _per_call(lambda: copy.deepcopy(kernel, {id(o): o for o in keep}), 20)
    lines.append(f"booted   kernel: copy.deepcopy {deep:.0f} us (a generic copy, for "
                 "comparison)")
    return lines


def by_start(progs: list[Program], profile: str) -> list[str]:
    """Microseconds per run for the two kinds of Program (those that start on a booted
    kernel and those that control boot and run its code themselves), in layers: the
    fresh kernel alone; plus the operations and the paths finished at the end, with no
    executor and no oracle (the ceiling any executor could reach); fast; thorough."""
    prof = resolve(profile)
    lines = []
    for booted in (True, False):
        group = [p.ops for p in progs if needs_boot(p.ops) == booted]
        if not group:
            continue

        def kernels(ops_list=group) -> None:
            for ops in ops_list:
                fresh_kernel(prof, booted=needs_boot(ops))

        def bare(ops_list=group) -> None:
            for ops in ops_list:
                ctx = Context(fresh_kernel(prof, booted=needs_boot(ops)))
                for i, op in enumerate(ops):
                    ctx.line, ctx._bound = i, None
                    op.run(ctx)
                    if type(op).BINDS:
                        ctx.handles.append(ctx._bound)
                ctx.kernel.finish()

        def executed(thorough: bool, ops_list=group) -> None:
            for ops in ops_list:
                run_ops(ops, prof, thorough=thorough)

        costs = [_best(fn) / len(group) * 1e6 for fn in
                 (kernels, bare, lambda: executed(False), lambda: executed(True))]
        kind = "start booted" if booted else "control boot"
        lines.append(f"{len(group):3d} Programs that {kind}: kernel {costs[0]:4.0f} us, "
                     f"+ operations and end {costs[1]:5.0f} us ({1e6 / costs[1]:4.0f}/s), "
                     f"fast {costs[2]:5.0f} us, thorough {costs[3]:5.0f} us")
    return lines


def _best(fn: Callable[[], None], repeat: int = 3) -> float:
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def _per_call(fn: Callable[[], object], repeat: int) -> float:
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--programs", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--profile", default="v6.1-deb")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--fast", action="store_true",
                        help="thorough=False, as the fuzz targets run")
    parser.add_argument("--breakdown", action="store_true")
    parser.add_argument("--by-start", action="store_true",
                        help="cost per run, in layers, for Programs that start booted and "
                             "for those that control boot")
    parser.add_argument("--snapshot", action="store_true",
                        help="also time building a kernel against copying its template")
    args = parser.parse_args()
    progs = programs(args.programs, args.seed)
    decode_tables.tables()
    thorough = not args.fast
    runs, elapsed = measure(progs, args.profile, args.seconds, thorough)
    rate = runs / elapsed
    mode = "thorough" if thorough else "fast"
    print(f"run(): {rate:.0f} executions/s of {LENGTH}-operation Programs, {mode} "
          f"({1e6 / rate / LENGTH:.1f} us per operation incl. oracles), profile "
          f"{args.profile}, {runs} runs in {elapsed:.1f}s, load average "
          f"{os.getloadavg()[0]:.2f}")
    if args.breakdown:
        for name, share in breakdown(progs[:50], args.profile, thorough).items():
            print(f"  {name:44s} {share:5.1f}% of the time")
    if args.by_start:
        for line in by_start(progs, args.profile):
            print(f"  {line}")
    if args.snapshot:
        starts = sum(needs_boot(p.ops) for p in progs)
        print(f"  {starts} of {len(progs)} Programs start on a booted kernel (the rest "
              "control boot and run it themselves)")
        for line in snapshot_costs(args.profile):
            print(f"  {line}")


if __name__ == "__main__":
    main()
