"""ResourceTree: the resource roots of one kernel with every operation the model has of
kernel/resource.c and include/linux/ioport.h, on one object.

This module only assembles. The operations live in resource.c's order in four modules
(model/resource.py, resource_alloc.py, resource_region.py, resource_iomem.py), each
extending the previous one's class (model/resource.py explains why), and ioport.h's
region macros in model/ioport.py; :class:`ResourceTree` is the last class of that chain
with the macros mixed in. It is the class to construct and import.
"""

from __future__ import annotations

from .ioport import RegionMacros
from .resource_iomem import ResourceTreeIomem

__all__ = ["ResourceTree"]


class ResourceTree(ResourceTreeIomem, RegionMacros):
    """Both resource roots of one kernel (``iomem_resource``, ``ioport_resource``), plus
    the operations of kernel/resource.c and ioport.h's region macros.

    Hooks (set by the Kernel that owns the tree; all default to None):

    * ``revoke_hook(res)`` — the ``revoke_iomem()`` call: run after a successful
      ``__request_region`` whose *argument* parent is ``iomem_resource`` (and by
      ``request_free_mem_region``). The Kernel points it at :meth:`revoke_iomem`; it is a
      hook so that a bare tree (no /dev/mem, no user mappings) revokes nothing and tests
      can watch the calls.
    * ``claim_veto_hook(start, end) -> bool`` — design alternative (profile
      ``claim_policy == "fail"``, B15): asked before a request whose argument parent is
      ``iomem_resource``; True makes the request fail (NULL) instead of claiming.
    * ``muxed_wake_hook()`` — ``wake_up(&muxed_resource_wait)``: run when
      ``__release_region`` frees a MUXED node. There is one global wait queue, so every
      sleeper wakes and retries, whatever range it waits for.

    What :meth:`revoke_iomem` calls outside resource.c is attached by Devmem
    (model/devmem.py): ``devmem_is_allowed(pfn)`` (arch/x86/mm/init.c) and ``mm``
    (``unmap_mapping_range`` and the clock of the ``revocations`` records).
    """

    __slots__ = ()
