"""Coverage instrumentation of the model, applied after the kernel templates are built.

Every input starts on a copy of a kernel built once per process (fuzz/snapshot.py); that
build, a whole boot for the booted template, is the same whatever the inputs, so its
coverage would be credited to whichever input ran first. So the harness imports the
model plain, builds its templates, and only then has atheris instrument the model's
functions in place (:func:`instrument_model`): from then on every path runs
instrumented, and the boot inside the templates never counted.

What stays plain for good: the whole-state walks the oracles (and ``show``) call after
every step (``OBSERVERS``). They model no kernel path, and their coverage would only say
how big the tree is.

Why in place works: atheris rewrites a function's code object (``fn.__code__``), and
the model keeps no function object or generator made before this point that could run
old code later (a template holds no suspended generator and no closure: the snapshot
refuses both, and a finished task drops its generator).
"""

from __future__ import annotations

import gc
import sys
import types

# Whole-state walks, by (module, qualified name). Some model paths use the tree walks
# as helpers; those calls lose their line coverage, which says nothing about the kernel.
OBSERVERS: frozenset[tuple[str, str]] = frozenset({
    ("iomemfuzz.model.resource_check", "preorder"),
    ("iomemfuzz.model.resource_check", "tree_problems"),
    ("iomemfuzz.model.resource_check", "_well_formed"),
    ("iomemfuzz.model.resource_check", "descendants"),
    ("iomemfuzz.model.sysfs", "Sysfs.walk"),
    ("iomemfuzz.model.sysfs", "Sysfs.files"),
})
PACKAGE = "iomemfuzz.model"


def model_functions() -> list[types.FunctionType]:
    """Every live function whose code comes from a model source file (module functions,
    methods, properties, lambdas in tables), observers excluded."""
    files = {getattr(m, "__file__", None) for name, m in list(sys.modules.items())
             if name == PACKAGE or name.startswith(PACKAGE + ".")}
    files.discard(None)
    return [obj for obj in gc.get_objects()
            if isinstance(obj, types.FunctionType) and obj.__code__.co_filename in files
            and (obj.__module__, obj.__qualname__) not in OBSERVERS]


def instrument_model() -> int:
    """Instrument the model's functions in place (nested code included: comprehensions
    and inner functions); returns how many. Call once, after the templates are built."""
    from atheris import instrument_bytecode

    # A renamed observer must not pass silently (it would be instrumented).
    missing = [f"{mod}.{qual}" for mod, qual in sorted(OBSERVERS) if _resolve(mod, qual) is None]
    if missing:
        raise RuntimeError(f"observers not found in the model: {', '.join(missing)}")
    functions = model_functions()
    for fn in functions:
        # instrument_func() is this with nested=False, which would leave the model's
        # comprehensions (separate code objects before Python 3.12) uncounted.
        fn.__code__ = instrument_bytecode.patch_code(fn.__code__, True, True, nested=True)
    return len(functions)


def _resolve(module: str, qualname: str) -> object:
    obj: object = sys.modules.get(module)
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    return obj
