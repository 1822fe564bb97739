"""The atheris harness builds its kernel templates (fuzz/snapshot.py) on the model's plain
(uninstrumented) code: that must change nothing a user can observe, and must not leave
the model plain."""

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import random
    from iomemfuzz.fuzz.targets import Harness, instrument_model

    switch = instrument_model()
    from iomemfuzz.fuzz import decode
    from iomemfuzz.fuzz.executor import run_ops
    from iomemfuzz.model import kernel, resource_check

    # Every model module's own functions have a twin (the switch found them).
    assert len(switch.pairs) > 300, len(switch.pairs)
    instrumented = {fn: code for fn, code, _twin in switch.pairs}
    # Observers are plain for good; everything else is instrumented outside the block.
    assert resource_check.preorder not in instrumented
    assert all(fn.__code__ is code for fn, code in instrumented.items())
    with switch.plain():
        assert all(fn.__code__ is twin for fn, _c, twin in switch.pairs)
    assert all(fn.__code__ is code for fn, code in instrumented.items())

    def render(trace):
        return [(str(s.op), s.outcome, [(e.kind, e.text) for e in s.events],
                 [v.signature for v in s.violations]) for s in trace.steps]

    harness = Harness("v6.1-deb", switch=switch)
    rng = random.Random(7)
    checked = 0
    for _ in range(150):
        data = rng.randbytes(rng.randrange(1, 120))
        ops = decode.decode_ops(data)
        assert render(harness.run(ops)) == render(run_ops(ops, "v6.1-deb")), ops
        checked += 1
    print("checked", checked)

    # Nothing the kernel keeps from a plain boot still runs plain code: every function
    # object alive now (closures, bound callbacks) and unfinished generator carries
    # instrumented code, apart from the observers made plain for good.
    import gc
    import types
    from iomemfuzz.fuzz.targets.plaincode import OBSERVERS, _code_objects

    def nested(code):
        yield code
        yield from _code_objects(code)

    plain_codes = {id(c) for _fn, _i, twin in switch.pairs for c in nested(twin)}
    # The harness built its templates on plain code; the copies it hands out are all
    # that is left of those boots.
    from iomemfuzz.fuzz.snapshot import fresh_kernel
    kept = fresh_kernel(harness.profile, None, booted=True)
    assert kept.sched.finished == len(kept.sched.tasks)
    leaks = [o for o in gc.get_objects()
             if isinstance(o, types.FunctionType) and id(o.__code__) in plain_codes]
    gens = [o for o in gc.get_objects()
            if isinstance(o, types.GeneratorType) and o.gi_frame is not None
            and id(o.gi_code) in plain_codes]
    assert not leaks, [f.__qualname__ for f in leaks]
    assert not gens, [g.__qualname__ for g in gens]
    # And a copy of a plain-booted kernel resolves addresses on instrumented code.
    assert type(kept.mm.resolvers[0]).__call__.__code__ is instrumented[
        type(kept.mm.resolvers[0]).__call__]
    print("no plain leftovers")
""")


def test_plain_boot_changes_no_trace_and_restores_instrumentation() -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "checked 150" in done.stdout
    assert "no plain leftovers" in done.stdout
