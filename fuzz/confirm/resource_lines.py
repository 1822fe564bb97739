"""The lines that call kernel/resource.c through the iomemfuzz_test module (a mixin of
:class:`~iomemfuzz.fuzz.confirm.session.Session`): claims and releases, caller-allocated
structs, and the queries the module offers."""

from __future__ import annotations

from iomemfuzz.fuzz.confirm.plan import LinePlan
from iomemfuzz.fuzz.confirm.qemu import Reply
from iomemfuzz.fuzz.confirm.results import status
from iomemfuzz.model.ioport import IORESOURCE_EXCLUSIVE, IORESOURCE_MUXED

REGION_NAMES = {0: "INTERSECTS", 1: "DISJOINT", 2: "MIXED"}
MACRO_ROOT_FLAGS = {"io": ("ioport", 0), "io_muxed": ("ioport", IORESOURCE_MUXED),
                    "mem": ("iomem", 0), "mem_muxed": ("iomem", IORESOURCE_MUXED),
                    "mem_exclusive": ("iomem", IORESOURCE_EXCLUSIVE)}


class ResourceLines:
    """op_* runners for the tree family and the driver claims of the mapping family.
    The module's handle table uses the Program's handle numbers."""


    def _ctl(self, command: str) -> tuple[Reply, str]:
        reply = self.g.call(f"ctl {command}")
        return reply, status(reply)

    def _root(self, node: object) -> str | None:
        if node in ("iomem", "ioport"):
            return str(node)
        if isinstance(node, int) and self.objs.get(node) == "module":
            return f"h{node}"
        return None

    def _claim(self, line: LinePlan, root: str, start: int, n: int, flags: int,
               name: str) -> tuple:
        if root == "iomem":
            start = self.to_real(start, line)
        reply, state = self._ctl(f"region {root} {start:#x} {n:#x} {flags:#x} "
                                  f"{line.handle} {name}")
        if reply.ok:
            self._bind(line, "module")
        return state, f"start {start:#x}", ""

    def op_request_region(self, op, line):
        if op.NAME == "__request_region":
            root = self._root(op.parent)
            if root is None:
                return "EBADF", "", ""
            return self._claim(line, root, op.start, op.n, op.flags, op.name)
        root, flags = MACRO_ROOT_FLAGS.get(op.macro, ("ioport", 0))
        return self._claim(line, root, op.start, op.n, flags, op.name)

    def op_request_mem_region(self, op, line):
        flags = IORESOURCE_EXCLUSIVE if op.exclusive == "yes" else 0
        return self._claim(line, "iomem", op.start, op.n, flags, op.name or "drv")

    def _release(self, line: LinePlan, root: str, start: int, n: int) -> tuple:
        if root == "iomem":
            start = self.to_real(start, line)
        return self._ctl(f"release {root} {start:#x} {n:#x}")[1], f"start {start:#x}", ""

    def op_release_region(self, op, line):
        root = self._root(op.parent)
        if root is None:
            return "EBADF", "", ""
        return self._release(line, root, op.start, op.n)

    def op_release_mem_region(self, op, line):
        return self._release(line, "iomem", op.start, op.n)

    def _new_struct(self, op, line, command: str):
        root = self._root(op.parent)
        if root is None:
            return "EBADF", "", ""
        start, end = op.start, op.end
        if root == "iomem":
            start, end = self.to_real(start, line), self.to_real(end, line)
        reply, state = self._ctl(f"{command} {root} {start:#x} {end:#x} {op.flags:#x} "
                                  f"{op.desc} {line.handle} {op.name}")
        # The struct is the line's handle whatever the answer (the model's rule too).
        if reply.ok or reply.status == "err":
            self._bind(line, "module")
        return state, "", ""

    def op_request_resource(self, op, line):
        return self._new_struct(op, line, "reqres")

    def op_insert_resource(self, op, line):
        return self._new_struct(op, line, "insres")

    def op_insert_resource_expand_to_fit(self, op, line):
        return self._new_struct(op, line, "insfit")

    def _on_struct(self, op, command: str, args: str = ""):
        root = self._root(op.res)
        if root is None:
            return "EBADF", "", ""
        return self._ctl(f"{command} {root}{args}")[1], "", ""

    def op_release_resource(self, op, line):
        return self._on_struct(op, "relres")

    def op_remove_resource(self, op, line):
        return self._on_struct(op, "rmres")

    def op_adjust_resource(self, op, line):
        return self._on_struct(op, "adjres", f" {op.start:#x} {op.size:#x}")

    def op_request_free_mem_region(self, op, line):
        root = self._root(op.base)
        if root is None:
            return "EBADF", "", ""
        reply, state = self._ctl(f"freemem {root} {op.size:#x} {line.handle} {op.name}")
        if reply.ok:
            self._bind(line, "module")
        return state, "", ""

    def op_region_intersects(self, op, line):
        start = self.to_real(op.start, line)
        reply, state = self._ctl(f"intersects {start:#x} {op.size:#x} {op.flags:#x} "
                                  f"{op.desc}")
        if not reply.ok:
            return state, "", ""
        return f"= {REGION_NAMES.get(int(reply.values[0]), reply.values[0])}", "", ""

    def op_page_is_ram(self, op, line):
        reply, state = self._ctl(f"pageram {op.pfn:#x}")
        if not reply.ok:
            return state, "", ""
        return f"= {'true' if int(reply.values[0]) else 'false'}", "", ""
