#!/usr/bin/env python3
"""Executions per second of the atheris target, this tree against another, side by side.

Runs ``fuzz/targets/kernel_ops.py`` of this checkout (A) and of ``--vs DIR`` (B, another
checkout with its own ``.venv``) in turn, A B A B ..., each for ``--seconds`` from its own
empty corpus (or from ``--seeds DIR``: the seed inputs each tree exports from its own
``corpus/``), and prints each run's rate from libFuzzer's final statistics, the ratio of
each pair (pairing keeps the ratio meaningful while the machine's load drifts) and the
load average around each run::

    .venv/bin/python tools/bench_targets.py --vs /tmp/old --pairs 3 --seconds 30
    .venv/bin/python tools/bench_targets.py --vs /tmp/old --mutator bytes --seeded
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent


def _python(tree: Path) -> Path:
    return tree / ".venv" / "bin" / "python"


def _seeds(tree: Path, out: Path, profile: str) -> None:
    subprocess.run([str(tree / ".venv" / "bin" / "iomemfuzz"), "export-seeds", str(out),
                    "--corpus", str(tree / "corpus"), "--profile", profile],
                   cwd=tree, capture_output=True, check=True)


def rate(tree: Path, mutator: str, seconds: int, profile: str, seeded: bool,
         max_len: int) -> tuple[float, int, float]:
    """(executions/s, corpus size at the end, load average during the run)."""
    with tempfile.TemporaryDirectory(prefix="bench-target-") as tmp:
        work = Path(tmp)
        corpus = work / "corpus"
        queue = work / "queue"
        corpus.mkdir()
        queue.mkdir()
        if seeded:
            _seeds(tree, corpus, profile)
        env = dict(os.environ)
        env["PATH"] = str(_python(tree).parent) + os.pathsep + env.get("PATH", "")
        env.update({"IOMEMFUZZ_PROFILE": profile, "IOMEMFUZZ_QUEUE": str(queue),
                    "IOMEMFUZZ_MUTATOR": mutator})
        done = subprocess.run(
            [str(_python(tree)), str(tree / "fuzz" / "targets" / "kernel_ops.py"), str(corpus),
             f"-max_total_time={seconds}", f"-max_len={max_len}", "-use_value_profile=1",
             "-print_final_stats=1", "-seed=1", f"-artifact_prefix={work}/"],
            env=env, capture_output=True, text=True, check=False, cwd=tree)
        load = os.getloadavg()[0]
        units = re.search(r"stat::number_of_executed_units:\s*(\d+)", done.stderr)
        if not units:
            raise RuntimeError(done.stderr[-3000:])
        kept = sum(1 for p in corpus.iterdir() if p.is_file())
        return int(units.group(1)) / seconds, kept, load


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vs", type=Path, required=True, help="the other checkout (B)")
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=30)
    ap.add_argument("--mutator", default="structure", help="structure or bytes")
    ap.add_argument("--mutator-b", default=None, help="B's mutator (default: the same)")
    ap.add_argument("--profile", default="v6.1-deb")
    ap.add_argument("--seeded", action="store_true", help="start from each tree's seeds")
    ap.add_argument("--max-len", type=int, default=4096, help="A's -max_len")
    ap.add_argument("--max-len-b", type=int, default=512, help="B's -max_len")
    args = ap.parse_args(argv)
    mutator_b = args.mutator_b or args.mutator
    ratios = []
    print("| pair | A exec/s (corpus) | B exec/s (corpus) | A/B | load A, B |")
    print("|---|---|---|---|---|")
    for i in range(args.pairs):
        a = rate(HERE, args.mutator, args.seconds, args.profile, args.seeded, args.max_len)
        b = rate(args.vs.resolve(), mutator_b, args.seconds, args.profile, args.seeded,
                 args.max_len_b)
        ratios.append(a[0] / b[0])
        print(f"| {i + 1} | {a[0]:.0f} ({a[1]}) | {b[0]:.0f} ({b[1]}) | {ratios[-1]:.2f} "
              f"| {a[2]:.1f}, {b[2]:.1f} |", flush=True)
    print(f"\nmedian A/B: {statistics.median(ratios):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
