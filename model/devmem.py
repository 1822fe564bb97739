"""/dev/mem and the x86 access policy (drivers/char/mem.c, arch/x86/mm/init.c,
arch/x86/mm/pat/memtype.c, arch/x86/mm/mmap.c).

:class:`Devmem` decides every /dev/mem access page by page with ``devmem_is_allowed``
(spec §3) and runs /dev/mem's file operations. The iomem inode every iomem mmap is
linked into, and ``revoke_iomem`` (spec §4.2) that zaps those mappings, are
kernel/resource.c's and live with the resource tree (model/resource_region.py); Devmem
attaches what revoke_iomem calls outside resource.c, its ``devmem_is_allowed`` and the
Mm, to the tree it is given.

Version differences come from the profile: ``revoke_devmem`` (v5.8 revocation at all),
``iomem_inode_in_resource`` (v5.12 moved the inode from chr_dev_init to an fs_initcall in
kernel/resource.c), ``io_strict_devmem``/``strict_devmem``/``iomem_cmdline``/``lockdown``
(config), and the fault-injection / never-released switches for B24 and B25.
"""

from __future__ import annotations

from iomemfuzz.model import errno
from iomemfuzz.model.event import NULL_DEREF, WARN, Log
from iomemfuzz.model.ioport import (
    IORES_DESC_NONE,
    IORESOURCE_BUSY,
    IORESOURCE_SYSTEM_RAM,
    Resource,
)
from iomemfuzz.model.machine import PhysicalMap
from iomemfuzz.model.mm import (
    CAP_SYS_RAWIO,
    PAGE_SHIFT,
    PAGE_SIZE,
    TARGET_FIRMWARE,
    TARGET_RAM,
    U64_MAX,
    AddressSpace,
    File,
    FileOps,
    Mm,
    Process,
    Target,
    Vma,
)
from iomemfuzz.model.profile import CLAIM_FAIL, LOCKDOWN_NONE, KernelProfile
from iomemfuzz.model.resource import REGION_DISJOINT, REGION_INTERSECTS, REGION_MIXED
from iomemfuzz.model.resource_check import descendants, preorder
from iomemfuzz.model.resource_region import Revocation, iomem_inode_compiled_out
from iomemfuzz.model.resource_tree import ResourceTree

DEV_MEM = "/dev/mem"
LOW_MIB_PFNS = 256  # pfns below 1 MiB: BIOS data, VGA, option ROMs (spec §3.1)

# devmem_is_allowed() results.
DEVMEM_DENY = 0
DEVMEM_ALLOW = 1
DEVMEM_ZERO = 2  # allowed, but read() shows zeros and write() skips the page

# x86 boot_cpu_data.x86_phys_bits when the machine does not say (QEMU's TCG default).
DEFAULT_PHYS_BITS = 40


def security_locked_down(profile: KernelProfile) -> int:
    """Models `security_locked_down()` for LOCKDOWN_DEV_MEM / LOCKDOWN_PCI_ACCESS,
    security/lockdown/lockdown.c, v6.1: both are integrity-level reasons, so any
    lockdown level refuses them with -EPERM."""
    return 0 if profile.lockdown == LOCKDOWN_NONE else -errno.EPERM


class Devmem:
    """/dev/mem and the x86 access policy, over one ResourceTree and one Mm."""

    def __init__(self, profile: KernelProfile, log: Log, resources: ResourceTree,
                 mm: Mm, *, phys_bits: int = DEFAULT_PHYS_BITS) -> None:
        self.profile = profile
        self.log = log
        self.resources = resources
        self.mm = mm
        self.phys_bits = phys_bits
        # revoke_iomem (kernel/resource.c, so the tree's) calls the x86 devmem_is_allowed
        # and unmaps from the Mm's address spaces: link them, as the kernel's linker does.
        resources.devmem_is_allowed = self.devmem_is_allowed
        resources.mm = mm
        # chr_dev_init registered the mem major and created /dev/mem.
        self.dev_mem_present = False

    # --- the iomem inode (spec §4.4) -------------------------------------------------

    @property
    def iomem_inode(self) -> AddressSpace | None:
        """The iomem pseudo-inode's address space: kernel/resource.c's since v5.12, so the
        resource tree holds it (v5.8-5.11's devmem inode of mem.c is the same slot)."""
        return self.resources.iomem_inode

    def chr_dev_init(self) -> int:
        """Models `chr_dev_init()` (fs_initcall, after iomem_init_inode), drivers/char/
        mem.c, v6.1: registers the mem major and creates /dev/mem.

        v5.8-5.11 made the devmem inode here instead, and skipped creating /dev/mem when
        that failed (so B25 there is a missing node, not an oops)."""
        if self.profile.revoke_devmem and not self.profile.iomem_inode_in_resource:
            if self.profile.iomem_init_inode_fails:
                self.log.emit(WARN, "devmem_init_inode failed: /dev/mem not created",
                              initcall="chr_dev_init")
                return 0
            if self.resources.iomem_inode is None:
                self.resources.iomem_inode = AddressSpace("iomem")
        self.dev_mem_present = True
        return 0

    # --- the x86 policy (spec §3.1) ---------------------------------------------------

    def devmem_is_allowed(self, pfn: int) -> int:
        """Models `devmem_is_allowed()`, arch/x86/mm/init.c, v6.1: 0 deny, 1 allow,
        2 allow with zero-filled reads (low-1 MiB RAM)."""
        addr = (pfn << PAGE_SHIFT) & U64_MAX
        if self.resources.region_intersects(addr, PAGE_SIZE, IORESOURCE_SYSTEM_RAM,
                                            IORES_DESC_NONE) != REGION_DISJOINT:
            return DEVMEM_ZERO if pfn < LOW_MIB_PFNS else DEVMEM_DENY
        if self.resources.iomem_is_exclusive(addr):
            return DEVMEM_ALLOW if pfn < LOW_MIB_PFNS else DEVMEM_DENY
        return DEVMEM_ALLOW

    def page_is_allowed(self, pfn: int) -> int:
        """Models `page_is_allowed()`, drivers/char/mem.c, v6.1 (1 without STRICT_DEVMEM)."""
        return self.devmem_is_allowed(pfn) if self.profile.strict_devmem else DEVMEM_ALLOW

    def _every_page_allowed(self, pfn: int, size: int) -> bool:
        start = (pfn << PAGE_SHIFT) & U64_MAX
        end = (start + size) & U64_MAX
        cursor = start
        while cursor < end:
            if not self.devmem_is_allowed(pfn):
                return False
            cursor += PAGE_SIZE
            pfn += 1
        return True

    def range_is_allowed(self, pfn: int, size: int) -> bool:
        """Models `range_is_allowed()`, drivers/char/mem.c, v6.1: every page of the range
        (the cursor stops at start + size, u64) must be allowed; 2 counts as allowed."""
        if not self.profile.strict_devmem:
            return True
        return self._every_page_allowed(pfn, size)

    def phys_mem_access_prot_allowed(self, pfn: int, size: int) -> bool:
        """Models `phys_mem_access_prot_allowed()`, arch/x86/mm/pat/memtype.c, v6.1.

        Only without STRICT_DEVMEM and with PAT does it repeat the page loop (to avoid
        cache aliasing of RAM); with STRICT_DEVMEM its own range_is_allowed is a stub."""
        if self.profile.strict_devmem or not self.profile.pat_enabled:
            return True
        return self._every_page_allowed(pfn, size)

    def max_pfn(self) -> int:
        """x86-64 ``max_pfn``: one past the last page of System RAM. Boot takes it from
        e820 and memory hotplug (``add_pages``) raises it, so the model reads it off every
        System RAM node in the tree."""
        top = 0
        for node in descendants(self.resources.iomem_resource):
            if node.parent is not None and (
                    node.flags & IORESOURCE_SYSTEM_RAM) == IORESOURCE_SYSTEM_RAM:
                top = max(top, (node.end + 1) >> PAGE_SHIFT)
        return top

    def valid_phys_addr_range(self, addr: int, count: int) -> bool:
        """Models x86 `valid_phys_addr_range()`, arch/x86/mm/mmap.c, v6.1: the last byte
        must lie at or below ``__pa(high_memory - 1)``, the end of direct-mapped RAM, so
        read()/write() never reach MMIO above the top of RAM (u64 arithmetic: count 0 at
        address 0 wraps and is refused)."""
        limit = (self.max_pfn() << PAGE_SHIFT) - 1
        return (addr + count - 1) & U64_MAX <= limit if limit >= 0 else False

    def valid_mmap_phys_addr_range(self, pfn: int, size: int) -> bool:
        """Models x86 `valid_mmap_phys_addr_range()`, arch/x86/mm/mmap.c, v6.1: the last
        byte must fit in the CPU's physical address width."""
        last = ((pfn << PAGE_SHIFT) + size - 1) & U64_MAX
        return last >> self.phys_bits == 0

    def xlate_dev_mem_ptr(self, addr: int) -> bool:
        """Models x86 `xlate_dev_mem_ptr()` → `memremap(MEMREMAP_WB)`, v6.1: can the
        kernel map this page for a read()/write() copy?

        RAM (region_intersects INTERSECTS) goes through the direct map; a MIXED page is
        refused with a WARN; anything else falls back to ioremap_cache, which refuses
        (WARN "ioremap on RAM") if a System RAM node the *walkers* see covers the page:
        the B18 late -EFAULT when region_intersects misses nested RAM."""
        page = addr & ~(PAGE_SIZE - 1)
        is_ram = self.resources.region_intersects(page, PAGE_SIZE, IORESOURCE_SYSTEM_RAM,
                                                  IORES_DESC_NONE)
        if is_ram == REGION_MIXED:
            self.log.emit(WARN, f"memremap attempted on mixed range {page:#x} size: 0x1000",
                          addr=page)
            return False
        if is_ram == REGION_INTERSECTS:
            return True
        if self._walkers_see_ram_page(page):
            self.log.emit(WARN, f"ioremap on RAM at {page:#x} - {page + PAGE_SIZE - 1:#x}",
                          addr=page)
            return False
        return True

    def _walkers_see_ram_page(self, page: int) -> bool:
        # __ioremap_check_ram via walk_mem_res: a busy System RAM node (nested ones only
        # since v5.14) that covers the whole page.
        last = page + PAGE_SIZE - 1
        for node, depth in preorder(self.resources.iomem_resource):
            if node.parent is None:
                continue
            if depth > 1 and not self.profile.walkers_nested:
                continue
            wanted = IORESOURCE_SYSTEM_RAM | IORESOURCE_BUSY
            if (node.flags & wanted) == wanted and node.start <= page and node.end >= last:
                return True
        return False

    # --- /dev/mem file operations (spec §3.2-3.4) ----------------------------------------

    def open_mem(self, process: Process, *, readable: bool = True,
                 writable: bool = True) -> File | int:
        """Models `memory_open()` → `open_mem()` (= `open_port()`), drivers/char/mem.c,
        v6.1: CAP_SYS_RAWIO, then lockdown, then f_mapping = iomem_get_mapping().

        Before chr_dev_init there is no /dev/mem (-ENOENT) unless the profile lets
        userspace act early, in which case the open reaches iomem_get_mapping() before
        iomem_init_inode and oopses: the "mapping taken before iomem_init_inode" variant
        of B5 is a crash on v5.8+, never a surviving mapping."""
        if not self.dev_mem_present and not self.profile.early_userspace:
            return -errno.ENOENT
        if not process.capable(CAP_SYS_RAWIO):
            return -errno.EPERM
        ret = security_locked_down(self.profile)
        if ret:
            return ret
        if self.profile.revoke_devmem:
            mapping = self.resources.iomem_get_mapping()
            if mapping is None:
                if iomem_inode_compiled_out(self.profile):
                    self.log.emit(NULL_DEREF, "BUG: kernel NULL pointer dereference in "
                                  "do_dentry_open: f_mapping is NULL after open_mem",
                                  where="do_dentry_open", catalog="B24")
                return -errno.EFAULT
        else:
            # <= v5.7: the mappings hang off the character device inode; nothing zaps them.
            mapping = self.mm.inode_mapping(DEV_MEM, "/dev/mem inode")
        f_op = FileOps(mmap=self.mmap_mem, read=self.read_mem, write=self.write_mem,
                       llseek=self.memory_lseek)
        return self.mm.install_file(process, DEV_MEM, f_op, mapping, readable=readable,
                                    writable=writable)

    def mmap_mem(self, file: File, vma: Vma) -> int:
        """Models `mmap_mem()`, drivers/char/mem.c, v6.1, checks in the kernel's order
        (spec §3.3): phys_addr_t round trip, wrap, CPU address width (-EINVAL), every
        page allowed (-EPERM; 2 counts as allowed, B22), PAT's repeat without
        STRICT_DEVMEM (-EINVAL), then remap_pfn_range of the whole VMA."""
        size = vma.npages << PAGE_SHIFT
        offset = (vma.pgoff << PAGE_SHIFT) & U64_MAX
        if offset >> PAGE_SHIFT != vma.pgoff:
            return -errno.EINVAL
        if (offset + size - 1) & U64_MAX < offset:
            return -errno.EINVAL
        if not self.valid_mmap_phys_addr_range(vma.pgoff, size):
            return -errno.EINVAL
        if not self.range_is_allowed(vma.pgoff, size):
            return -errno.EPERM
        if not self.phys_mem_access_prot_allowed(vma.pgoff, size):
            return -errno.EINVAL
        vma.prot = "wb"
        vma.made_for = None
        return self.mm.remap_pfn_range(vma, vma.pgoff)

    def read_mem(self, file: File, pos: int, count: int) -> int:
        """Models `read_mem()`, drivers/char/mem.c, v6.1 (spec §3.4): -EFAULT past the end
        of direct-mapped RAM; per page -EPERM for 0 (earlier chunks are lost), zeros for 2,
        a real copy for 1 (-EFAULT if the kernel cannot map the page)."""
        if pos < 0 or pos > U64_MAX:
            return 0
        if not self.valid_phys_addr_range(pos, count):
            return -errno.EFAULT
        done = 0
        p = pos
        while count > 0:
            size = min(PAGE_SIZE - (p & (PAGE_SIZE - 1)), count)
            allowed = self.page_is_allowed(p >> PAGE_SHIFT)
            if allowed == DEVMEM_DENY:
                return -errno.EPERM
            if allowed == DEVMEM_ALLOW:
                if not self.xlate_dev_mem_ptr(p):
                    return -errno.EFAULT
                self.mm.record_access("read", file.process, p, size, False,
                                      self.mm.physical(p), path=DEV_MEM)
            p += size
            count -= size
            done += size
        file.pos = pos + done
        return done

    def write_mem(self, file: File, pos: int, count: int) -> int:
        """Models `write_mem()`, drivers/char/mem.c, v6.1 (spec §3.4): -EFBIG for an
        offset past phys_addr_t, -EFAULT past the end of RAM, per page -EPERM for 0,
        a page of value 2 silently skipped but counted as written."""
        if pos < 0 or pos > U64_MAX:
            return -errno.EFBIG
        if not self.valid_phys_addr_range(pos, count):
            return -errno.EFAULT
        written = 0
        p = pos
        while count > 0:
            size = min(PAGE_SIZE - (p & (PAGE_SIZE - 1)), count)
            allowed = self.page_is_allowed(p >> PAGE_SHIFT)
            if allowed == DEVMEM_DENY:
                return -errno.EPERM
            if allowed == DEVMEM_ALLOW:
                if not self.xlate_dev_mem_ptr(p):
                    if written:
                        break
                    return -errno.EFAULT
                self.mm.record_access("write", file.process, p, size, True,
                                      self.mm.physical(p), path=DEV_MEM)
            p += size
            count -= size
            written += size
        file.pos = pos + written
        return written

    def memory_lseek(self, file: File, offset: int, whence: int) -> int:
        """Models `memory_lseek()`, drivers/char/mem.c, v6.1: SEEK_SET and SEEK_CUR only
        (offsets are unsigned: FMODE_UNSIGNED_OFFSET); SEEK_END is -EINVAL."""
        if whence == 0:
            file.pos = offset & U64_MAX
        elif whence == 1:
            file.pos = (file.pos + offset) & U64_MAX
        else:
            return -errno.EINVAL
        return file.pos

    # --- revocation (spec §4.2) ----------------------------------------------------------

    def revocation_of(self, res: Resource) -> Revocation | None:
        """The last revoke_iomem() run for the claim ``res`` (None: it never ran, B14);
        the tree keeps the records, Devmem answers the mapping oracles' question."""
        for record in reversed(self.resources.revocations):
            if record.res is res:
                return record
        return None

    def claim_veto(self, start: int, end: int) -> bool:
        """The "fail instead of revoke" design of spec B15 (not in any kernel): refuse a
        claim of [start, end] while any user mapping still reaches one of its bytes.

        A PTE exposes a whole page, so "reaches a byte" means "a live PTE maps a page
        that holds a byte of the claim": exact in what the user can touch, with no
        rounding of the claim itself. It looks where revoke_iomem would (mappings linked
        into the iomem space, any process, any path), so it shares the mmap race of spec
        §4.7, and it applies only where the kernel would revoke at all (the revoke
        machinery exists, IO_STRICT_DEVMEM, not iomem=relaxed, the inode is ready)."""
        if self.profile.claim_policy != CLAIM_FAIL:
            return False
        if not (self.profile.revoke_devmem and self.profile.io_strict_devmem
                and self.profile.strict_iomem_checks and self.iomem_inode is not None):
            return False
        hits = [(vma, lo, hi) for vma, lo, hi in self.mm.live_pages_over(start, end)
                if vma.mapping is self.iomem_inode]
        if not hits:
            return False
        vma, _lo, _hi = hits[0]
        self.log.emit(WARN, f"claim [{start:#x}-{end:#x}] refused: still mapped by "
                      f"{vma.describe()}", veto=True, start=start, end=end, vma=vma.id,
                      pid=vma.process.pid)
        return True


class MemoryResolver:
    """A physical-address decoder for Mm (register it after the PCI model's BARs): the
    machine's memory is RAM, its platform decoders are firmware, anything else reaches
    nothing unless a device decodes it (model/machine.py PhysicalMap). The resource tree
    has no say: a node a driver inserted decodes nothing.

    A class, not a closure: the fuzz harness instruments the model's functions in place
    after it has built the kernel templates (fuzz/targets/instrument.py), and a method is
    reached through its class, where the instrumentation finds it."""

    def __init__(self, phys: PhysicalMap) -> None:
        self.phys = phys

    def __call__(self, addr: int) -> Target | None:
        name = self.phys.memory_at(addr)
        if name is not None:
            return Target(TARGET_RAM, name)
        name = self.phys.platform_at(addr)
        if name is not None:
            return Target(TARGET_FIRMWARE, name)
        return None
