"""The atheris harness builds its kernel templates on the plain model, then instruments
the model in place (fuzz/targets/instrument.py): that must change nothing a user can
observe, must reach every model function but the observers, and must leave no plain code
that a later run could execute."""

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import gc
    import random
    import types
    from iomemfuzz.fuzz import decode
    from iomemfuzz.fuzz.executor import run_ops
    from iomemfuzz.fuzz.snapshot import fresh_kernel
    from iomemfuzz.fuzz.targets import Harness
    from iomemfuzz.fuzz.targets.instrument import OBSERVERS, instrument_model, model_functions

    def render(trace):
        return [(str(s.op), s.outcome, [(e.kind, e.text) for e in s.events],
                 [v.signature for v in s.violations]) for s in trace.steps]

    harness = Harness("v6.1-deb")
    rng = random.Random(7)
    programs = [decode.decode_ops(rng.randbytes(rng.randrange(1, 120))) for _ in range(150)]
    before = [render(run_ops(ops, "v6.1-deb")) for ops in programs]
    held = [fn.__code__ for fn in model_functions()]  # held, so their ids stay unique
    plain = {id(code) for code in held}
    count = instrument_model()
    assert count > 300, count
    after = [render(harness.run(ops)) for ops in programs]
    assert after == before
    print("checked", len(after))

    # No function alive now runs the code it had before (observers excepted), and no
    # suspended generator does: the templates' copies hold none.
    kept = fresh_kernel(harness.profile, None, booted=True)
    assert kept.sched.finished == len(kept.sched.tasks)
    stale = [fn.__qualname__ for fn in gc.get_objects()
             if isinstance(fn, types.FunctionType) and id(fn.__code__) in plain]
    gens = [g for g in gc.get_objects() if isinstance(g, types.GeneratorType)
            and g.gi_frame is not None and id(g.gi_code) in plain]
    assert not stale, stale
    assert not gens, gens
    observed = {(fn.__module__, fn.__qualname__) for fn in gc.get_objects()
                if isinstance(fn, types.FunctionType)} & OBSERVERS
    assert observed == OBSERVERS
    print("no plain leftovers")
""")


def test_instrumenting_after_the_templates_changes_no_trace_and_leaves_no_plain_code():
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "checked 150" in done.stdout
    assert "no plain leftovers" in done.stdout
