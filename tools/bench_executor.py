#!/usr/bin/env python3
"""Executions per second of ``run()`` on 32-operation Programs with every oracle on.

Programs are decoded from seeded random bytes (so they use every registered operation
with the decoder's value choices), each exactly 32 operations long. With ``--breakdown``
one extra pass runs under cProfile and attributes the time to the executor, the oracles,
the model (split into kernel construction/boot and the rest) and the decoder.

    .venv/bin/python tools/bench_executor.py [--programs 200] [--seconds 10] [--breakdown]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import random
import time

from iomemfuzz.fuzz import decode
from iomemfuzz.fuzz.executor import run
from iomemfuzz.fuzz.ops import Op
from iomemfuzz.fuzz.program import Program
from iomemfuzz.model.profile import resolve

LENGTH = 32


def programs(count: int, seed: int) -> list[Program]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        state = decode.State()
        ops: list[Op] = [decode.decode_record(rng.randbytes(rng.randrange(2, 24)), state)
                         for _ in range(LENGTH)]
        out.append(Program().with_ops(ops))
    return out


def measure(progs: list[Program], profile: str, seconds: float) -> tuple[int, float]:
    prof = resolve(profile)
    runs = 0
    start = time.perf_counter()
    while True:
        for p in progs:
            run(p, prof)
            runs += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return runs, elapsed


def breakdown(progs: list[Program], profile: str) -> dict[str, float]:
    """Share of the time (cumulative, cProfile) spent in the oracle checks (with the tree
    walks they call), in building and booting the Kernel, and in the operations."""
    prof = resolve(profile)
    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.enable()
    for p in progs:
        run(p, prof)
    profiler.disable()
    total = time.perf_counter() - start
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    shares = {"oracles (executor._check)": 0.0, "Kernel() construction + boot": 0.0,
              "operations (Op.run)": 0.0}
    for (filename, _line, func), (_cc, _nc, _tt, cumtime, _callers) in stats.items():
        if filename.endswith("fuzz/executor.py") and func == "_check":
            shares["oracles (executor._check)"] += cumtime
        elif filename.endswith("model/kernel.py") and func == "__init__":
            shares["Kernel() construction + boot"] += cumtime
        elif "/fuzz/ops/" in filename and func == "run":
            shares["operations (Op.run)"] += cumtime
    out = {k: 100.0 * v / total for k, v in shares.items()}
    out["rest (decode-free executor loop, profiler)"] = max(0.0, 100.0 - sum(out.values()))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--programs", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--profile", default="v6.1-deb")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--breakdown", action="store_true")
    args = parser.parse_args()
    progs = programs(args.programs, args.seed)
    decode.tables()
    runs, elapsed = measure(progs, args.profile, args.seconds)
    rate = runs / elapsed
    print(f"run(): {rate:.0f} executions/s of {LENGTH}-operation Programs "
          f"({1e6 / rate / LENGTH:.1f} us per operation incl. oracles), profile "
          f"{args.profile}, {runs} runs in {elapsed:.1f}s")
    if args.breakdown:
        for name, share in breakdown(progs[:50], args.profile).items():
            print(f"  {name:44s} {share:5.1f}% of the time")


if __name__ == "__main__":
    main()
