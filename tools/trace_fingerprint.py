#!/usr/bin/env python3
"""A fingerprint of everything the executor observably does, to prove a refactoring or
an optimisation changed no behaviour.

For every corpus file on each profile it names, and for Programs decoded from fixed
pseudo-random bytes on several profiles (and on every machine), it runs
``run(program, profile, thorough=True)``, ``run(..., thorough=False)`` and an
``Execution`` fed one operation at a time, renders each Trace canonically (per Step: the
operation, the outcome label, every event's kind, text and data, every violation's
signature, message and catalog; then the accepted violations) plus ``kernel.describe()``
at the end, and hashes the renderings. The same inputs must give the same fingerprint
before and after a change that is meant to be behaviour-preserving.

    .venv/bin/python tools/trace_fingerprint.py                  # print the fingerprint
    .venv/bin/python tools/trace_fingerprint.py --save base.json # keep per-item hashes
    .venv/bin/python tools/trace_fingerprint.py --compare base.json  # list the differences
    .venv/bin/python tools/trace_fingerprint.py --show 'decoded/17/v6.1'  # one rendering

The decoded Programs depend on the decoder and the default machine's value tables; to
keep a fixed set across decoder changes, write them once with ``--write-programs FILE``
and read them back with ``--programs FILE`` (canonical Program text, JSON list).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from iomemfuzz.fuzz.corpus import program_files
from iomemfuzz.fuzz.decode import decode
from iomemfuzz.fuzz.executor import Execution, Trace, make_kernel, run
from iomemfuzz.fuzz.oracles import ORACLES
from iomemfuzz.fuzz.program import Program
from iomemfuzz.fuzz.program_file import read_program
from iomemfuzz.fuzz.program_format import format_program
from iomemfuzz.fuzz.program_parse import parse_program
from iomemfuzz.model.machine import DEFAULT_MACHINE, MACHINES
from iomemfuzz.model.profile import DEFAULT, resolve

ROOT = Path(__file__).resolve().parent.parent
PROFILES = ("v6.1-deb", "v6.1", "v5.12", "next-2026", "v6.1-deb-relaxed")
# Decoded Programs also replayed on every other machine (on the default profile only):
# every how-many-th Program.
MACHINE_STRIDE = 10
_ADDRESS = re.compile(r" at 0x[0-9a-f]+>")


def render_trace(trace: Trace) -> list[str]:
    """Canonical text of a Trace: one line per step, event and violation."""
    out = [f"profile {trace.profile}"]
    for step in trace.steps:
        outcome = step.outcome.label if step.outcome is not None else "-"
        out.append(f"step {step.index} {step.op!r} -> {outcome}")
        for e in step.events:
            out.append(f"  event {e.kind} {e.text!r} {e.data!r}")
        for v in step.violations:
            out.append(f"  violation {v.signature} {v.message!r} {v.catalog!r}")
    for v in trace.accepted:
        out.append(f"accepted {v.signature} {v.message!r} {v.catalog!r}")
    return out


def render(program: Program, profile_name: str) -> str:
    """Everything observable of ``program`` on ``profile_name``, as one text."""
    profile = resolve(profile_name)
    out = ["== run thorough"]
    out += render_trace(run(program, profile, thorough=True))
    out.append("== run fast")
    out += render_trace(run(program, profile, thorough=False))
    # Step by step, as the state machine and `iomemfuzz show` drive it, then the state.
    ex = Execution(profile, make_kernel(profile, program, program.ops), ORACLES, True)
    for o in program.ops:
        ex.step(o)
    out.append("== execution")
    out += render_trace(ex.finish())
    for title, text in ex.kernel.describe().items():
        out.append(f"== {title}")
        out.append(text)
    text = "\n".join(out)
    # Object addresses ("<Foo object at 0x7f...>") would differ between runs.
    assert not _ADDRESS.search(text), "rendering depends on object identity"
    return text


def corpus_items() -> Iterator[tuple[str, Program, str]]:
    """(key, Program, profile) for every corpus file on the profiles it names."""
    for path in sorted(program_files([ROOT / "corpus"])):
        program = read_program(str(path))
        main = program.profile or DEFAULT.name
        names = [main] + [p for p in program.expectations() if p is not None and p != main]
        rel = path.relative_to(ROOT)
        for name in names:
            yield f"{rel}/{name}", program, name


def decoded_programs(count: int, seed: int) -> list[str]:
    """Canonical text of ``count`` Programs decoded from seeded random bytes (0-64 ops)."""
    rng = random.Random(seed)
    return [format_program(decode(rng.randbytes(rng.randrange(0, 1600))))
            for _ in range(count)]


def decoded_items(texts: list[str], profiles: tuple[str, ...]
                  ) -> Iterator[tuple[str, Program, str]]:
    others = [m for m in MACHINES if m != DEFAULT_MACHINE.name]
    for i, text in enumerate(texts):
        program = parse_program(text, f"<decoded {i}>")
        for name in profiles:
            yield f"decoded/{i}/{name}", program, name
        if i % MACHINE_STRIDE == 0:
            for machine in others:
                yield (f"decoded/{i}/{profiles[0]}@{machine}",
                       program.with_headers(machine=machine), profiles[0])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000, help="decoded Programs")
    parser.add_argument("--seed", type=int, default=20261125)
    parser.add_argument("--profiles", nargs="+", default=list(PROFILES))
    parser.add_argument("--programs", help="read the decoded Programs from this JSON file")
    parser.add_argument("--write-programs", help="write the decoded Programs to this file")
    parser.add_argument("--save", help="write per-item hashes (JSON) to this file")
    parser.add_argument("--compare", help="per-item hashes (JSON) to compare against")
    parser.add_argument("--show", help="print the rendering of one item key and stop")
    parser.add_argument("--no-corpus", action="store_true")
    args = parser.parse_args()

    if args.programs:
        texts = json.loads(Path(args.programs).read_text(encoding="utf-8"))
    else:
        texts = decoded_programs(args.count, args.seed)
    if args.write_programs:
        Path(args.write_programs).write_text(json.dumps(texts, indent=0), encoding="utf-8")
    items = [] if args.no_corpus else list(corpus_items())
    items += decoded_items(texts, tuple(args.profiles))

    if args.show:
        for key, program, profile in items:
            if key == args.show:
                print(render(program, profile))
                return 0
        print(f"no item {args.show!r}", file=sys.stderr)
        return 2

    start = time.process_time()
    hashes: dict[str, str] = {}
    total = hashlib.sha256()
    for key, program, profile in items:
        digest = hashlib.sha256(render(program, profile).encode()).hexdigest()
        hashes[key] = digest
        total.update(f"{key} {digest}\n".encode())
    elapsed = time.process_time() - start
    print(f"fingerprint {total.hexdigest()} over {len(hashes)} items "
          f"({elapsed:.1f}s CPU)")
    if args.save:
        Path(args.save).write_text(json.dumps(hashes, indent=0), encoding="utf-8")
    if args.compare:
        old = json.loads(Path(args.compare).read_text(encoding="utf-8"))
        differ = [k for k in old if hashes.get(k) != old[k]]
        extra = [k for k in hashes if k not in old]
        for k in differ[:20]:
            print(f"differs: {k}")
        if extra:
            print(f"{len(extra)} items not in {args.compare}")
        print(f"{len(differ)} of {len(old)} items differ")
        return 1 if differ else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
