"""A kernfs-like name space with sysfs's create/remove rules, and attribute lifetimes.

What the PCI races depend on (spec §5.3), and nothing more:

* creating a name that exists fails with -EEXIST and logs sysfs's duplicate-filename
  warning; the existing node is untouched;
* creating in a directory being removed fails with -ENOENT; creating on a kobject whose
  directory is already gone (``kobj->sd`` NULL) WARNs and fails with -EINVAL;
* removal is **by name**: whatever node has the name goes, whoever created it, and a
  missing name is silently ignored;
* removing a directory removes everything under it (leftover dynamic files included);
* removing a file node drains its open files: mmaps of the node's own inode are zapped
  (``drain_hook``; before v5.12 that is where PCI resource mmaps hang, spec §4.8).

Attribute structures the kernel kmallocs (PCI ``res_attr[]``) are :class:`Allocation`
objects with a lifetime, so the model can tell a double ``kfree`` or a read of a freed
attribute (its name, in ``sysfs_remove_bin_file``) and emit DOUBLE_FREE /
USE_AFTER_FREE events. Freed memory keeps its contents here (nothing reuses it in the
model), so a use after free still reads the old name and carries on deterministically:
that is also the likeliest real outcome right after the free.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from iomemfuzz.model import errno
from iomemfuzz.model.event import DOUBLE_FREE, DUP_FILENAME, USE_AFTER_FREE, WARN, Log


class Allocation:
    """A kmalloc'ed object whose lifetime matters: freed at most once, never used after.

    ``static`` objects are part of the kernel image (static attribute groups) and are
    never freed."""

    __slots__ = ("alloc_id", "freed", "freed_by", "kind", "made_by", "static")

    def __init__(self, alloc_id: int, kind: str, *, static: bool = False,
                 made_by: str = "") -> None:
        self.alloc_id = alloc_id
        # What the object is, as crash events name it ("res_attr"); never an address, so
        # finding signatures stay stable.
        self.kind = kind
        self.freed = False
        self.static = static
        # Which kernel path made it, and where it was freed first: a double free or a
        # use after free is told apart by which path let go of the object first.
        self.made_by = made_by
        self.freed_by = ""

    def label(self) -> str:
        return f"{self.kind}#{self.alloc_id}"


class BinAttribute(Allocation):
    """Models `struct bin_attribute`, include/linux/sysfs.h, as PCI sysfs fills it.

    Fields engineer B's mmap model reads:
    ``name``; ``bar`` (the BAR index in ``private``; None for non-BAR files);
    ``wc`` (the resourceN_wc variant); ``has_mmap`` (an ``->mmap`` method exists);
    ``mapping`` (5.12–5.14: the address space captured when the file was created; None
    otherwise); ``freed``. Also ``size``, ``mode``, ``has_rw`` (port-I/O read/write),
    ``dev`` (the owning device object) and ``f_mapping_at_open`` (5.15+: ``f_mapping``
    is the ``iomem_get_mapping`` callback run at open)."""

    __slots__ = ("bar", "dev", "f_mapping_at_open", "has_mmap", "has_rw", "mapping",
                 "mode", "name", "size", "wc")

    def __init__(self, alloc_id: int, name: str, *, kind: str = "bin_attribute",
                 size: int = 0, mode: int = 0o600,
                 bar: int | None = None, wc: bool = False, has_mmap: bool = False,
                 has_rw: bool = False, mapping: object = None,
                 f_mapping_at_open: bool = False, dev: object = None,
                 static: bool = False, made_by: str = "") -> None:
        super().__init__(alloc_id, kind, static=static, made_by=made_by)
        self.name = name
        self.size = size
        self.mode = mode
        self.bar = bar
        self.wc = wc
        self.has_mmap = has_mmap
        self.has_rw = has_rw
        self.mapping = mapping
        self.f_mapping_at_open = f_mapping_at_open
        self.dev = dev

    def label(self) -> str:
        return f"{self.kind} '{self.name}'#{self.alloc_id}"

    def __repr__(self) -> str:
        state = " freed" if self.freed else ""
        return f"<BinAttribute {self.name!r}#{self.alloc_id}{state}>"


class KernfsNode:
    """Models `struct kernfs_node`, fs/kernfs, v6.1: a directory or a file.

    ``priv`` is what the file was created from (its attribute). ``removed`` is set once
    the node is unlinked (``kernfs_active()`` false); ``removing`` marks a directory being
    torn down (KERNFS_REMOVING), in which nothing new may be created."""

    __slots__ = ("children", "is_dir", "name", "parent", "priv", "removed", "removing")

    def __init__(self, name: str, parent: KernfsNode | None, *, is_dir: bool,
                 priv: object = None) -> None:
        self.name = name
        self.parent = parent
        self.is_dir = is_dir
        self.priv = priv
        self.children: dict[str, KernfsNode] = {}
        self.removed = False
        self.removing = False

    def path(self) -> str:
        """Models `kernfs_path()`: "/devices/pci0000:00/0000:00:02.0" (root is "")."""
        parts: list[str] = []
        node: KernfsNode | None = self
        while node is not None and node.parent is not None:
            parts.append(node.name)
            node = node.parent
        return "/" + "/".join(reversed(parts))

    def __repr__(self) -> str:
        kind = "dir" if self.is_dir else "file"
        return f"<KernfsNode {kind} {self.path()}>"


class Sysfs:
    """The sysfs tree plus the allocator that tracks attribute lifetimes."""

    def __init__(self, log: Log) -> None:
        self.log = log
        self.root = KernfsNode("", None, is_dir=True)
        self._next_alloc = 1
        # Bumped by every change to the tree (a node linked or unlinked, a directory
        # marked removing) and by every kfree: the duplicate-attributes oracle re-reads
        # sysfs only when this moved. Nodes and attributes are written nowhere else.
        self.generation = 0
        # Called for each file node removed (kernfs_drain_open_files); the Kernel wires
        # it to the mm model, which zaps mmaps hanging off the node's own inode.
        self.drain_hook: Callable[[KernfsNode], None] | None = None

    # --- allocation lifetimes ------------------------------------------------------------

    def alloc_bin_attribute(self, name: str, **fields: object) -> BinAttribute:
        """Models ``kzalloc(sizeof(struct bin_attribute) + name)``: a new live object."""
        attr = BinAttribute(self._next_alloc, name, **fields)  # type: ignore[arg-type]
        self._next_alloc += 1
        return attr

    def kfree(self, obj: Allocation | None, where: str) -> None:
        """Models `kfree()`, v6.1 (with KASAN): freeing twice is a DOUBLE_FREE event.

        ``kfree(NULL)`` is a no-op; freeing a static object would be a model bug."""
        if obj is None:
            return
        assert not obj.static, f"kfree of static {obj.label()}"
        if obj.freed:
            self.log.emit(DOUBLE_FREE, f"BUG: KASAN: double-free in {where}: {obj.label()}"
                          f" (freed first by {obj.freed_by})", where=where,
                          object=obj.kind, alloc=obj.alloc_id, freed_by=obj.freed_by)
            return
        self.generation += 1
        obj.freed = True
        obj.freed_by = where

    def use(self, obj: Allocation, where: str) -> None:
        """Record a read of ``obj``: a USE_AFTER_FREE event if it was freed."""
        if obj.freed:
            self.log.emit(USE_AFTER_FREE,
                          f"BUG: KASAN: use-after-free in {where}: {obj.label()} (freed by "
                          f"{obj.freed_by})", where=where, object=obj.kind,
                          alloc=obj.alloc_id, freed_by=obj.freed_by)

    # --- directories --------------------------------------------------------------------

    def mkdir_p(self, path: str) -> KernfsNode:
        """Create (or find) the directories of ``path`` ("/devices/pci0000:00"): the
        static skeleton a kobject hierarchy provides; never fails."""
        node = self.root
        for part in path.strip("/").split("/"):
            if not part:
                continue
            child = node.children.get(part)
            if child is None:
                self.generation += 1
                child = KernfsNode(part, node, is_dir=True)
                node.children[part] = child
            node = child
        return node

    def create_dir(self, parent: KernfsNode, name: str) -> KernfsNode | int:
        """Models `sysfs_create_dir_ns()` → `kernfs_create_dir_ns()`, v6.1: a kobject's
        directory; -EEXIST (with the duplicate warning) if the name is taken."""
        node = KernfsNode(name, parent, is_dir=True)
        err = self._add_one(parent, node)
        return err if err else node

    def _add_one(self, parent: KernfsNode, node: KernfsNode) -> int:
        """Models `kernfs_add_one()` → `kernfs_link_sibling()`, fs/kernfs/dir.c, v6.1."""
        if parent.removing or parent.removed:
            return -errno.ENOENT
        if node.name in parent.children:
            # Which kernel paths met: the one that made the file first and this one.
            existing = parent.children[node.name]
            self.log.emit(
                DUP_FILENAME,
                f"sysfs: cannot create duplicate filename '{parent.path()}/{node.name}'",
                fs="sysfs", path=f"{parent.path()}/{node.name}", dir=parent.path(),
                name=node.name, by=getattr(node.priv, "made_by", ""),
                existing_by=getattr(existing.priv, "made_by", ""),
            )
            return -errno.EEXIST
        self.generation += 1
        parent.children[node.name] = node
        return 0

    # --- files --------------------------------------------------------------------------

    def sysfs_create_bin_file(self, sd: KernfsNode | None, attr: BinAttribute) -> int:
        """Models `sysfs_create_bin_file()`, fs/sysfs/file.c, v6.1.

        ``sd`` is the kobject's directory (``kobj->sd``): None once the kobject was
        deleted, which WARNs and fails with -EINVAL."""
        if sd is None:
            self.log.emit(WARN, "WARNING: sysfs_create_bin_file: kobj->sd is NULL",
                          name=attr.name)
            return -errno.EINVAL
        self.use(attr, "sysfs_add_bin_file_mode_ns")
        return self._add_one(sd, KernfsNode(attr.name, sd, is_dir=False, priv=attr))

    def sysfs_create_file(self, sd: KernfsNode | None, name: str, priv: object = None) -> int:
        """Models `sysfs_create_file()` for a plain (non-binary) attribute, v6.1."""
        if sd is None:
            self.log.emit(WARN, "WARNING: sysfs_create_file: kobj->sd is NULL", name=name)
            return -errno.EINVAL
        return self._add_one(sd, KernfsNode(name, sd, is_dir=False, priv=priv))

    def sysfs_remove_bin_file(self, sd: KernfsNode | None, attr: BinAttribute) -> None:
        """Models `sysfs_remove_bin_file()`, fs/sysfs/file.c, v6.1: reads the attribute's
        name (a use after free if it was freed) and removes that name, whoever owns it."""
        self.use(attr, "sysfs_remove_bin_file")
        self.kernfs_remove_by_name(sd, attr.name)

    def kernfs_remove_by_name(self, parent: KernfsNode | None, name: str) -> int:
        """Models `kernfs_remove_by_name_ns()`, fs/kernfs/dir.c, v6.1.

        A missing name returns -ENOENT, which every sysfs caller ignores: no warning. A
        NULL parent (the kobject's directory is gone) WARNs."""
        if parent is None:
            self.log.emit(WARN, f"kernfs: can not remove '{name}', no directory", name=name)
            return -errno.ENOENT
        node = parent.children.get(name)
        if node is None:
            return -errno.ENOENT
        self.kernfs_remove(node)
        return 0

    def kernfs_remove(self, node: KernfsNode) -> None:
        """Models `kernfs_remove()`, fs/kernfs/dir.c, v6.1: unlink ``node`` and everything
        below it, draining each file's open files (children first, as kernfs does)."""
        if node.removed:
            return
        self.generation += 1
        node.removing = True
        for child in list(node.children.values()):
            self.kernfs_remove(child)
        if not node.is_dir and self.drain_hook is not None:
            self.drain_hook(node)
        node.removed = True
        if node.parent is not None and node.parent.children.get(node.name) is node:
            del node.parent.children[node.name]

    # --- lookups ------------------------------------------------------------------------

    def lookup(self, path: str) -> KernfsNode | None:
        """The live node at ``path`` ("/devices/pci0000:00/0000:00:02.0/resource0")."""
        node = self.root
        for part in path.strip("/").split("/"):
            if not part:
                continue
            child = node.children.get(part)
            if child is None:
                return None
            node = child
        return node

    def files(self, directory: KernfsNode | None) -> list[str]:
        """Names in ``directory`` (sorted), or [] if it is gone."""
        if directory is None or directory.removed:
            return []
        return sorted(directory.children)

    def walk(self, node: KernfsNode | None = None) -> Iterator[KernfsNode]:
        """Every live node under ``node`` (default the root), preorder, sorted by name."""
        node = node or self.root
        yield node
        for name in sorted(node.children):
            yield from self.walk(node.children[name])
