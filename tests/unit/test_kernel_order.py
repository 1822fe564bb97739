"""The resource modules follow kernel/resource.c (6.1) function by function, in its order.

A kernel developer reads model/resource.py, resource_alloc.py, resource_region.py and
resource_iomem.py (in that order, RESOURCE_MODULES) beside kernel/resource.c and scrolls
both together; this test keeps that possible.

How a model function is matched to its kernel function (the rules the test applies):

1. The candidates are the functions and methods (static ones included) defined at the top
   level of those modules or directly in their classes, taken from the source in module
   order, then line order. Nested functions do not count.
2. A candidate *models* the kernel function NAME when the first line of its docstring
   starts with ``Models `NAME()``` and then names the file as ``, kernel/resource.c``, or
   ``, arch/x86/kernel/resource.c`` for x86's override of a ``__weak`` function of
   resource.c (``arch_remove_reservations``), which stands at the weak function's place.
   A first line naming another file (include/linux/ioport.h, lib/vsprintf.c) or no
   function (model-only helpers) takes no part.
3. The Python name of a modelling candidate is NAME with a leading ``__`` written ``_``
   (Python mangles ``__names`` inside classes). A candidate with any other name is a
   *variant* of NAME (``request_region_task`` is ``__request_region`` as a scheduler
   task): it must directly follow the candidate that carries NAME's Python name.
4. Each NAME must be in KERNEL_6_1, and the NAMEs, each taken once with its variants
   folded in, must appear in KERNEL_6_1's order. KERNEL_6_1 lists the function
   definitions of the 6.1-deb kernel/resource.c in file order (names only, as data);
   the model does not have to model all of them.
5. Conversely, a candidate whose Python name is the model name of a KERNEL_6_1 function
   (rule 3) must model that function (rule 2), so a function cannot drop out of the check
   by losing its docstring line.
"""

from __future__ import annotations

import ast
import importlib
import re
from itertools import pairwise
from pathlib import Path

RESOURCE_MODULES = (
    "iomemfuzz.model.resource",
    "iomemfuzz.model.resource_alloc",
    "iomemfuzz.model.resource_region",
    "iomemfuzz.model.resource_iomem",
)

# The function definitions of kernel/resource.c in Debian's linux-source-6.1 (6.1.192),
# in file order; revoke_iomem has an empty #else twin, listed once.
KERNEL_6_1 = (
    "next_resource",
    "next_resource_skip_children",
    "r_start",
    "r_next",
    "r_stop",
    "r_show",
    "ioresources_init",
    "free_resource",
    "alloc_resource",
    "__request_resource",
    "__release_resource",
    "__release_child_resources",
    "release_child_resources",
    "request_resource_conflict",
    "request_resource",
    "release_resource",
    "is_type_match",
    "find_next_iomem_res",
    "__walk_iomem_res_desc",
    "walk_iomem_res_desc",
    "walk_system_ram_res",
    "walk_mem_res",
    "walk_system_ram_range",
    "__is_ram",
    "page_is_ram",
    "__region_intersects",
    "region_intersects",
    "arch_remove_reservations",
    "simple_align_resource",
    "resource_clip",
    "__find_resource",
    "find_resource",
    "reallocate_resource",
    "allocate_resource",
    "lookup_resource",
    "__insert_resource",
    "insert_resource_conflict",
    "insert_resource",
    "insert_resource_expand_to_fit",
    "remove_resource",
    "__adjust_resource",
    "adjust_resource",
    "__reserve_region_with_split",
    "reserve_region_with_split",
    "resource_alignment",
    "revoke_iomem",
    "iomem_get_mapping",
    "__request_region_locked",
    "__request_region",
    "__release_region",
    "release_mem_region_adjustable",
    "system_ram_resources_mergeable",
    "merge_system_ram_resource",
    "devm_resource_release",
    "devm_request_resource",
    "devm_resource_match",
    "devm_release_resource",
    "devm_region_release",
    "devm_region_match",
    "__devm_request_region",
    "__devm_release_region",
    "reserve_setup",
    "iomem_map_sanity_check",
    "resource_is_exclusive",
    "iomem_is_exclusive",
    "resource_list_create_entry",
    "resource_list_free",
    "gfr_start",
    "gfr_continue",
    "gfr_next",
    "remove_free_mem_region",
    "get_free_mem_region",
    "devm_request_free_mem_region",
    "request_free_mem_region",
    "alloc_free_mem_region",
    "strict_iomem",
    "iomem_fs_init_fs_context",
    "iomem_init_inode",
)

_MODELS = re.compile(r"Models `(\w+)\(\)`[^,]*, (?:arch/x86/)?kernel/resource\.c\b")


def python_name(kernel_name: str) -> str:
    """Rule 3: the kernel's ``__x`` is ``_x`` in the model."""
    return "_" + kernel_name[2:] if kernel_name.startswith("__") else kernel_name


def candidates() -> list[tuple[str, str, str | None]]:
    """Rule 1 and 2: (where, Python name, modelled kernel name or None) of every candidate,
    in module order, then source order."""
    found = []
    for module_name in RESOURCE_MODULES:
        source = Path(importlib.import_module(module_name).__file__).read_text()
        short = module_name.rsplit(".", 1)[1]
        for node in ast.parse(source).body:
            defs = node.body if isinstance(node, ast.ClassDef) else [node]
            for fn in defs:
                if not isinstance(fn, ast.FunctionDef):
                    continue
                doc = ast.get_docstring(fn) or ""
                match = _MODELS.match(doc.split("\n", 1)[0])
                found.append((f"{short}.py:{fn.lineno} {fn.name}", fn.name,
                              match.group(1) if match else None))
    return found


def order_problems(found: list[tuple[str, str, str | None]]) -> list[str]:
    """Everything rules 3-5 find wrong with ``found`` (empty: all hold)."""
    problems = []
    position = {name: i for i, name in enumerate(KERNEL_6_1)}
    by_python_name = {python_name(name): name for name in KERNEL_6_1}
    sequence: list[tuple[str, str]] = []  # (kernel name, where), variants folded in
    for where, name, kernel in found:
        if kernel is None:
            if name in by_python_name:
                problems.append(f"{where} has the name of {by_python_name[name]}() but its "
                                "docstring does not say it models it")
            continue
        if kernel not in position:
            problems.append(f"{where} models {kernel}(), which 6.1's kernel/resource.c "
                            "does not define")
            continue
        if name == python_name(kernel):
            sequence.append((kernel, where))
        elif not sequence or sequence[-1][0] != kernel:
            problems.append(f"{where} is a variant of {kernel}() but does not directly "
                            f"follow {python_name(kernel)}")
    for (prev, prev_where), (kernel, where) in pairwise(sequence):
        if position[kernel] <= position[prev]:
            problems.append(f"{where} ({kernel}) comes after {prev_where} ({prev}), but "
                            f"kernel/resource.c defines {kernel} "
                            f"{'again' if kernel == prev else 'first'}")
    return problems


def test_resource_modules_follow_kernel_resource_c():
    found = candidates()
    modelled = [kernel for _where, _name, kernel in found if kernel is not None]
    # The check is only as good as what it sees: most of resource.c is modelled.
    assert len(set(modelled)) >= 45, modelled
    assert order_problems(found) == []


def test_the_check_notices_a_swap_a_missing_docstring_and_a_stray_variant():
    found = candidates()
    modelled = [i for i, (_w, _n, kernel) in enumerate(found) if kernel is not None]
    # Swap two neighbouring kernel functions, anywhere in the list.
    for a, b in ((modelled[0], modelled[1]), (modelled[20], modelled[21]),
                 (modelled[-2], modelled[-1])):
        swapped = list(found)
        swapped[a], swapped[b] = swapped[b], swapped[a]
        assert order_problems(swapped), (found[a], found[b])
    # A kernel function whose docstring no longer names it.
    where, name, _kernel = next(c for c in found if c[1] == "_request_region")
    assert order_problems([c if c[1] != name else (where, name, None) for c in found])
    # The task variant of __request_region moved away from it.
    variant = next(c for c in found if c[1] == "request_region_task")
    moved = [c for c in found if c is not variant]
    moved.insert(0, variant)
    assert order_problems(moved)
