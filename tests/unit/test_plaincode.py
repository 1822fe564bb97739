"""The atheris harness builds the booted kernel on the model's plain (uninstrumented)
code: that must change nothing a user can observe, and must not leave the model plain."""

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import random
    from iomemfuzz.fuzz.targets import Harness, instrument_model

    switch = instrument_model()
    from iomemfuzz.fuzz import decode
    from iomemfuzz.fuzz.executor import run_ops
    from iomemfuzz.model import kernel, resource

    # Every model module's own functions have a twin (the switch found them).
    assert len(switch.pairs) > 300, len(switch.pairs)
    instrumented = {fn: code for fn, code, _twin in switch.pairs}
    # Observers are plain for good; everything else is instrumented outside the block.
    assert resource.preorder not in instrumented
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
""")


def test_plain_boot_changes_no_trace_and_restores_instrumentation() -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "checked 150" in done.stdout
