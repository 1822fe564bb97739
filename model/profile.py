"""KernelProfile: every way two kernels (or configs, or designs) differ, as data.

Model code asks the profile (``profile.region_intersects_nested``) instead of comparing
version strings, so any Program can be replayed on any profile and a new kernel is one
row in ``PROFILES``. A profile also carries the *promises* oracles hold the model to and
the catalog entries a kernel accepts "by design", because whether a surviving mapping is
a bug depends on what the kernel promised.

References are to docs/SEMANTICS.md (spec §n) and the bug catalog (Bn, docs/CATALOG.md).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields, replace

# Values of ``iomem_cmdline`` (the ``iomem=`` boot parameter, spec §2.13).
IOMEM_DEFAULT = ""
IOMEM_RELAXED = "relaxed"
IOMEM_STRICT = "strict"
IOMEM_CMDLINE_VALUES = (IOMEM_DEFAULT, IOMEM_RELAXED, IOMEM_STRICT)

# Values of ``lockdown`` (security/lockdown; LOCKDOWN_DEV_MEM and LOCKDOWN_PCI_ACCESS are
# both integrity-level reasons, spec §0).
LOCKDOWN_NONE = "none"
LOCKDOWN_INTEGRITY = "integrity"
LOCKDOWN_CONFIDENTIALITY = "confidentiality"
LOCKDOWN_VALUES = (LOCKDOWN_NONE, LOCKDOWN_INTEGRITY, LOCKDOWN_CONFIDENTIALITY)

# Values of ``claim_policy`` (the design question in the LKML thread, spec B15).
CLAIM_REVOKE = "revoke"  # what Linux does: the claim succeeds and user mappings are zapped
CLAIM_FAIL = "fail"  # alternative: __request_region fails with -EBUSY while mapped
CLAIM_POLICY_VALUES = (CLAIM_REVOKE, CLAIM_FAIL)

# Values of ``revoke_granularity`` (what oracle (b) of mapping survival accepts).
GRANULARITY_PAGE = "page"  # unmap_mapping_range works on whole pages: collateral accepted
GRANULARITY_BYTE = "byte"  # stricter promise: only mappings of claimed bytes may die
REVOKE_GRANULARITY_VALUES = (GRANULARITY_PAGE, GRANULARITY_BYTE)

# The text-valued settings and the values each may take: an override outside its table
# is refused (a typo would otherwise run as "not any of the known values").
ALLOWED_VALUES: dict[str, tuple[str, ...]] = {
    "iomem_cmdline": IOMEM_CMDLINE_VALUES,
    "lockdown": LOCKDOWN_VALUES,
    "claim_policy": CLAIM_POLICY_VALUES,
    "revoke_granularity": REVOKE_GRANULARITY_VALUES,
}


# Fields that name and describe a profile rather than set anything.
IDENTITY = ("name", "description", "parent", "kernel")


# What every kernel accepts by design (catalog entries): the default of ``by_design``.
KERNEL_ACCEPTS = frozenset({"B28"})


@dataclass(frozen=True, slots=True)
class KernelProfile:
    """One kernel version + configuration + design choice. Frozen; build variants with
    :func:`dataclasses.replace` or :func:`resolve` ("v6.1-deb:iomem_cmdline=relaxed")."""

    name: str = "v6.1-deb"
    description: str = "Debian linux-source-6.1 (6.1.192 with stable backports), Debian config"
    # The profile this one is described against ("" for the root), and the kernel
    # release it models (inherited by config and design variants).
    parent: str = ""
    kernel: str = "6.1.192 (Debian)"

    # --- kernel/resource.c -------------------------------------------------------------
    # region_intersects looks into descendants of a non-matching top-level node
    # (b4afe4183ec7, v6.12, backported to 6.1-deb). Spec §2.12.
    region_intersects_nested: bool = True
    # iomem_is_exclusive as reworked in v5.16 (SYSRAM|EXCLUSIVE always exclusive, subtree
    # skip); False = v4.5..v5.15 (iomem=relaxed disables every check). Spec §2.13.
    iomem_is_exclusive_v516: bool = True
    # walk_system_ram_res / walk_mem_res / page_is_ram see nested nodes (v5.14). Spec §2.11.
    walkers_nested: bool = True
    # A MUXED waiter sets its task state only after dropping resource_lock, so a release
    # in between wakes nobody (before "resource: fix lost wakeup when waiting for a muxed
    # region", stable 6.12.117; not in 6.1-deb).
    muxed_wait_loses_wakeup: bool = True
    # get_free_mem_region() starts an ascending search at ALIGN(max(base.start, align))
    # and steps by the alignment, not the size, in both directions ("resource: make
    # alloc_free_mem_region() works for iomem_resource", v6.12): alloc_free_mem_region()
    # on iomem_resource itself works instead of failing with -ERANGE.
    gfr_steps_by_align: bool = False

    # --- config (Debian amd64 defaults) -----------------------------------------------
    strict_devmem: bool = True  # CONFIG_STRICT_DEVMEM
    io_strict_devmem: bool = True  # CONFIG_IO_STRICT_DEVMEM
    iomem_cmdline: str = IOMEM_DEFAULT  # iomem= boot parameter
    lockdown: str = LOCKDOWN_NONE
    pat_enabled: bool = True  # arch_can_pci_mmap_wc() on x86
    have_pci_legacy: bool = False  # legacy_io/legacy_mem files (alpha/powerpc, not x86)

    # --- revocation (spec §4) ----------------------------------------------------------
    # revoke_devmem()/revoke_iomem() exist at all (3234ac664a87, v5.8).
    revoke_devmem: bool = True
    # PCI sysfs/procfs BAR mmaps live in the iomem address space and are revoked
    # (636b21b50152, v5.12). False: they hang off the kernfs inode (zapped on removal).
    revoke_pci_mmaps: bool = True
    # bin_attribute f_mapping is a callback run at open() (93bb8e352a91, v5.15).
    # False on 5.12-5.14: iomem_get_mapping() is called when the file is created.
    mapping_at_open: bool = True
    # 5.12..5.14-rc typo: legacy_mem's mapping assigned to legacy_io (fixed 045a9277b561).
    legacy_mem_mapping_typo: bool = False
    # Legacy files wait for sysfs_initialized like resource files (efd532a679af, merged
    # with v5.12). False = the linux-next state of Jan 2021, where pci_create_legacy_files
    # ran at subsys level from host-bridge registration and called iomem_get_mapping()
    # before fs_initcall (B11c).
    legacy_files_wait_for_sysfs_init: bool = True
    # procfs mmap checks iomem_is_exclusive (dc217d2c5a7e, v5.12).
    procfs_mmap_checks_exclusive: bool = True
    # Fault injection: iomem_init_inode fails at fs_initcall (B25).
    iomem_init_inode_fails: bool = False
    # The revocation inode is made by iomem_init_inode() in kernel/resource.c (71a1d8ed900f,
    # v5.12). False = v5.8-5.11: chr_dev_init() makes devmem_inode and, if that fails,
    # skips creating /dev/mem (so B25 is a missing node there, not an oops).
    iomem_inode_in_resource: bool = True
    # Never-released v3..v5 of the 2020 series: iomem_get_mapping() returns NULL when
    # IO_STRICT_DEVMEM=n and open(/dev/mem) oopses (B24). Test profile only.
    premerge_null_mapping_without_io_strict: bool = False
    # Custom llseek for PCI resource files (0fedefd4c4e3 + 24de09c16f97, v6.7); before it
    # SEEK_END returns 0 (B11b). The same change sends every sysfs lseek through
    # kernfs_fop_llseek(), which takes an active reference first: lseek on a removed
    # sysfs file is -ENODEV (before, generic_file_llseek still answered).
    pci_resource_llseek_fixed: bool = False
    # generic_access_phys() refuses (-EINVAL) a pfn that is ordinary RAM, such as the
    # anonymous copy a write made in a private PFN mapping ("mm: disallow ioremap'ing
    # ordinary RAM in generic_access_phys()", stable 6.12.118). Before, ptrace of such
    # a page reached x86 ioremap(), which refuses RAM with a warning: -ENOMEM.
    generic_access_phys_refuses_ram: bool = False
    # Userspace may act before fs_initcall (not reachable on mainline; B5 "mapping taken
    # before iomem_init_inode" needs it).
    early_userspace: bool = False

    # --- PCI sysfs (spec §5) -----------------------------------------------------------
    # config/rom/reset/vpd/label are dynamic and created before resourceN (<= 5.12).
    dynamic_config_attrs: bool = False
    # pci_create_attr stores res_attr[] only after sysfs_create_bin_file succeeds
    # (aa382ffa705b, 6.1.3 / v6.2). False = v5.13..v6.1.2 (double free on EEXIST).
    res_attr_store_after_create: bool = True
    # resourceN are static attributes created at device_add; no pci_sysfs_init and no
    # sysfs_initialized (Wilczynski series, linux-next 2026).
    static_resource_files: bool = False
    # pci_proc_init serialised and idempotent (2026 fix, backported to 6.1-deb). B27.
    proc_init_locked: bool = True
    # pci_host_probe() holds pci_rescan_remove_lock around its first scan and around
    # pci_bus_add_devices() ("PCI: Hold the rescan mutex when scanning for the first
    # time", v6.11; "PCI: Hold rescan lock while adding devices during host probe",
    # v6.12). Only that kind of host (HOST_ASYNC): VMD still takes no lock.
    host_probe_takes_rescan_lock: bool = False
    # Static-attribute visibility is decided at device_add, before FINAL fixups set
    # ROM_SHADOW (5.13..5.16; fixed by 66d28b21fe6b). B23.
    rom_visibility_at_device_add: bool = False
    # resourceN_resize files exist (91fa127794ac "PCI: Expose PCIe Resizable BAR support
    # via sysfs", merged for v6.1-rc1).
    resize_attr: bool = True
    # lapic_insert_resource() (late_initcall) puts "Local APIC" at its physical page. By
    # 6.12.118 it takes the start from apic_mmio_base, which apic_set_fixmap() sets to
    # the fixmap's virtual address: the insert lies past iomem_resource's end and fails
    # unchecked, so /proc/iomem has no Local APIC (found by confirm on 6.12, K8).
    lapic_in_iomem: bool = True

    # --- who the Program's in-kernel callers are ----------------------------------------
    # Lines that play a driver may break the caller contract (fuzz/contract.py): the
    # explicit mode that finds what only API misuse reaches, classed driver-misuse.
    # False (the default): such a line does not run and shows ``illegal``.
    driver_misuse: bool = False

    # --- design alternatives (spec B15) -------------------------------------------------
    claim_policy: str = CLAIM_REVOKE

    # --- promises the oracles enforce ---------------------------------------------------
    # (a) after a successful claim no user access reaches a claimed byte.
    promise_exclusive_after_claim: bool = True
    # (b) how far revocation may reach beyond the claimed bytes.
    revoke_granularity: str = GRANULARITY_PAGE
    # Catalog entries this kernel accepts as "by design": violations whose oracle kind is
    # listed here are recorded as expected behaviour, not findings. Every kernel accepts
    # B28: a MUXED request sleeps, uninterruptibly and by design, for as long as the
    # holder keeps the region (a Program that ends still holding it makes that forever).
    by_design: frozenset[str] = field(default_factory=lambda: KERNEL_ACCEPTS)

    @property
    def strict_iomem_checks(self) -> bool:
        """kernel/resource.c ``strict_iomem_checks`` after ``iomem=`` (spec §2.13).

        CONFIG_STRICT_DEVMEM sets the default; "strict" wins over "relaxed" because the
        kernel tests it second."""
        value = self.strict_devmem
        if IOMEM_RELAXED in self.iomem_cmdline:
            value = False
        if IOMEM_STRICT in self.iomem_cmdline:
            value = True
        return value

    def settings(self) -> dict[str, object]:
        """Every setting (the fields that are not identity), in declaration order."""
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.name not in IDENTITY
        }


def _derive(parent: KernelProfile, name: str, description: str,
            **changes: object) -> KernelProfile:
    """A row of the table: ``parent`` with ``changes``, remembering whose child it is
    (``iomemfuzz profiles`` describes each profile by what differs from its parent)."""
    return replace(parent, name=name, description=description, parent=parent.name,
                   **changes)  # type: ignore[arg-type]


_DEB = KernelProfile()

# v6.1.0: as 6.1-deb minus the stable backports that matter here (spec §0.2).
_V61 = _derive(_DEB, "v6.1", "vanilla v6.1.0", kernel="6.1.0",
               region_intersects_nested=False, res_attr_store_after_create=False,
               proc_init_locked=False)
_V515 = _derive(_V61, "v5.15", "v5.15: f_mapping looked up at open()", kernel="5.15",
                iomem_is_exclusive_v516=False, resize_attr=False,
                rom_visibility_at_device_add=True)
_V513 = _derive(_V515, "v5.13", "v5.13: config/rom/... static, resourceN first dynamic file",
                kernel="5.13", mapping_at_open=False, legacy_mem_mapping_typo=True,
                walkers_nested=False, rom_visibility_at_device_add=True)
_V512 = _derive(_V513, "v5.12",
                "v5.12: PCI sysfs/procfs mmaps revoked; mapping captured at create",
                kernel="5.12", dynamic_config_attrs=True, rom_visibility_at_device_add=False)
_V58 = _derive(_V512, "v5.8", "v5.8: /dev/mem revocation only", kernel="5.8",
               revoke_pci_mmaps=False, procfs_mmap_checks_exclusive=False,
               legacy_mem_mapping_typo=False, mapping_at_open=False,
               iomem_inode_in_resource=False)
_V57 = _derive(_V58, "v5.7", "v5.7: no revocation at all", kernel="5.7",
               revoke_devmem=False)
# Debian 6.12.118: what most 2026 distributions ship (docs/KERNELS.md, "6.1 → 6.12").
_V612 = _derive(_DEB, "v6.12", "Debian linux-source-6.12 (6.12.118), Debian config",
                kernel="6.12.118 (Debian)", pci_resource_llseek_fixed=True,
                host_probe_takes_rescan_lock=True, gfr_steps_by_align=True,
                generic_access_phys_refuses_ram=True, muxed_wait_loses_wakeup=False,
                lapic_in_iomem=False)
_NEXT = _derive(_V612, "next-2026", "linux-next 2026: static resource files, no pci_sysfs_init",
                kernel="next (2026)", static_resource_files=True)

_ROWS: tuple[KernelProfile, ...] = (
    _V57,
    _V58,
    _V512,
    _V513,
    _V515,
    _V61,
    _DEB,
    _V612,
    _NEXT,
    # Config axes of the default kernel (spec §3.6).
    # These configs opt out of revocation on purpose (spec B5: revoke_iomem's "*cringe*
    # iomem=relaxed" comment; IO_STRICT_DEVMEM=n makes it a stub), so a mapping that
    # survives a claim there is accepted, not a finding.
    _derive(_DEB, "v6.1-deb-relaxed", "6.1-deb booted with iomem=relaxed",
            iomem_cmdline=IOMEM_RELAXED, by_design=KERNEL_ACCEPTS | {"B5"}),
    _derive(_DEB, "v6.1-deb-no-io-strict", "6.1-deb with CONFIG_IO_STRICT_DEVMEM=n",
            io_strict_devmem=False, by_design=KERNEL_ACCEPTS | {"B5"}),
    _derive(_DEB, "v6.1-deb-no-strict",
            "6.1-deb with CONFIG_STRICT_DEVMEM=n (and so IO_STRICT=n)",
            strict_devmem=False, io_strict_devmem=False,
            by_design=KERNEL_ACCEPTS | {"B5"}),
    _derive(_DEB, "v6.1-deb-lockdown", "6.1-deb under lockdown=integrity",
            lockdown=LOCKDOWN_INTEGRITY),
    # The design alternative from the thread: fail the claim instead of revoking.
    _derive(_DEB, "v6.1-deb-claim-fails",
            "design alternative: __request_region fails -EBUSY while mapped",
            claim_policy=CLAIM_FAIL),
    # A stricter promise: revocation may only reach claimed bytes.
    _derive(_DEB, "v6.1-deb-byte-exact",
            "6.1-deb held to byte-exact revocation (stricter promise)",
            revoke_granularity=GRANULARITY_BYTE),
    # The explicit mode in which Program lines that play drivers may break their
    # contract (fuzz/contract.py): what only API misuse reaches, classed driver-misuse.
    _derive(_DEB, "v6.1-deb-misuse",
            "6.1-deb with in-kernel callers that may break the API contract",
            driver_misuse=True),
    # Test-only profiles with planted/injected failures.
    _derive(_DEB, "test-iomem-inode-fails", "TEST: iomem_init_inode fails at fs_initcall (B25)",
            iomem_init_inode_fails=True),
    _derive(_V512, "test-premerge-null-mapping",
            "TEST: never-released v3-v5 of the 2020 series, IO_STRICT=n (B24)",
            io_strict_devmem=False, premerge_null_mapping_without_io_strict=True),
    _derive(_V512, "test-next-2021-legacy-early",
            "TEST: linux-next Jan 2021 on powerpc: legacy files at subsys (B11c)",
            kernel="next (Jan 2021)", have_pci_legacy=True,
            legacy_files_wait_for_sysfs_init=False),
    _derive(_DEB, "test-early-userspace",
            "TEST: lets userspace act before fs_initcall (B5 variant)",
            early_userspace=True),
)

PROFILES: dict[str, KernelProfile] = {p.name: p for p in _ROWS}
DEFAULT = _DEB


# Every setting in words, for `iomemfuzz profiles`: (when True, when False) for a switch,
# {value: words} for a text setting. tests/unit/test_profile_words.py checks that every
# setting and every allowed value has its words.
SETTING_WORDS: dict[str, tuple[str, str] | dict[str, str]] = {
    "region_intersects_nested": (
        "region_intersects() looks into nested resources (b4afe4183ec7)",
        "region_intersects() looks at top-level resources only"),
    "iomem_is_exclusive_v516": (
        "iomem_is_exclusive() as reworked in v5.16 (System RAM and EXCLUSIVE always "
        "exclusive)",
        "iomem_is_exclusive() as in v4.5-v5.15 (iomem=relaxed turns every check off)"),
    "walkers_nested": (
        "RAM walkers and page_is_ram() see nested resources (v5.14)",
        "RAM walkers and page_is_ram() see top-level resources only"),
    "strict_devmem": ("CONFIG_STRICT_DEVMEM=y", "CONFIG_STRICT_DEVMEM=n"),
    "io_strict_devmem": ("CONFIG_IO_STRICT_DEVMEM=y", "CONFIG_IO_STRICT_DEVMEM=n"),
    "iomem_cmdline": {
        IOMEM_DEFAULT: "no iomem= boot parameter",
        IOMEM_RELAXED: "booted with iomem=relaxed",
        IOMEM_STRICT: "booted with iomem=strict",
    },
    "lockdown": {
        LOCKDOWN_NONE: "no kernel lockdown",
        LOCKDOWN_INTEGRITY: "lockdown=integrity (/dev/mem and PCI resource access refused)",
        LOCKDOWN_CONFIDENTIALITY: "lockdown=confidentiality (integrity and more)",
    },
    "pat_enabled": ("PAT on: PCI resources can be mapped write-combining",
                    "PAT off: no write-combining PCI mappings"),
    "have_pci_legacy": ("legacy_io/legacy_mem files exist (alpha, powerpc)",
                        "no legacy_io/legacy_mem files (x86)"),
    "revoke_devmem": ("a claim revokes /dev/mem mappings of its range (v5.8)",
                      "nothing is revoked: /dev/mem mappings survive claims"),
    "revoke_pci_mmaps": (
        "a claim also revokes PCI sysfs/procfs BAR mappings (v5.12)",
        "PCI sysfs/procfs BAR mappings survive claims (zapped only with their file)"),
    "mapping_at_open": (
        "a PCI resource file finds its mapping at open() (v5.15)",
        "a PCI resource file's mapping is captured when the file is created"),
    "legacy_mem_mapping_typo": (
        "legacy_mem's mapping is assigned to legacy_io (the 5.12-5.14 typo)",
        "legacy_mem and legacy_io each get their own mapping"),
    "legacy_files_wait_for_sysfs_init": (
        "legacy files wait for sysfs to be initialised, like resource files",
        "legacy files are created from host-bridge registration, before fs_initcall"),
    "procfs_mmap_checks_exclusive": (
        "procfs BAR mmap checks iomem_is_exclusive() (v5.12)",
        "procfs BAR mmap does not check iomem_is_exclusive()"),
    "iomem_init_inode_fails": ("iomem_init_inode() fails at fs_initcall (injected)",
                               "iomem_init_inode() succeeds"),
    "iomem_inode_in_resource": (
        "the revocation inode is made in kernel/resource.c (v5.12)",
        "the revocation inode is made by chr_dev_init() (v5.8-5.11)"),
    "premerge_null_mapping_without_io_strict": (
        "iomem_get_mapping() returns NULL when IO_STRICT_DEVMEM=n (never-merged 2020 "
        "series)",
        "iomem_get_mapping() always returns the mapping"),
    "pci_resource_llseek_fixed": (
        "PCI resource files seek from their end, and lseek on a removed sysfs file is "
        "ENODEV (v6.7)",
        "SEEK_END on a PCI resource file returns 0; a removed sysfs file still seeks"),
    "generic_access_phys_refuses_ram": (
        "generic_access_phys() refuses ordinary RAM up front (6.12.118)",
        "generic_access_phys() leaves ordinary RAM to ioremap(), which warns and fails"),
    "host_probe_takes_rescan_lock": (
        "pci_host_probe() holds the rescan lock around scan and bus-add (v6.12)",
        "pci_host_probe() takes no lock"),
    "gfr_steps_by_align": (
        "get_free_mem_region() starts at the alignment and steps by it (v6.12)",
        "get_free_mem_region() starts at the base and steps by the size"),
    "lapic_in_iomem": (
        "/proc/iomem lists the Local APIC page",
        "no Local APIC in /proc/iomem: lapic_insert_resource() inserts a virtual address "
        "(6.12.118)"),
    "muxed_wait_loses_wakeup": (
        "a MUXED waiter can miss a wake-up between unlocking and sleeping (before "
        "6.12.117)",
        "a MUXED waiter marks itself sleeping before it unlocks"),
    "early_userspace": ("userspace may act before fs_initcall (test only)",
                        "userspace starts after the initcalls"),
    "dynamic_config_attrs": (
        "config/rom/reset/vpd/label are created dynamically, before resourceN (<= 5.12)",
        "config/rom/reset/vpd/label are static attributes"),
    "res_attr_store_after_create": (
        "pci_create_attr() stores res_attr[] after the file exists (6.1.3, v6.2)",
        "pci_create_attr() stores res_attr[] before creating the file (double free on "
        "EEXIST)"),
    "static_resource_files": (
        "resourceN are static attributes made at device_add (no pci_sysfs_init)",
        "resourceN are made by pci_sysfs_init() or at hot-add"),
    "proc_init_locked": ("pci_proc_init() is serialised and idempotent",
                         "pci_proc_init() is neither serialised nor idempotent"),
    "rom_visibility_at_device_add": (
        "static attribute visibility is decided at device_add, before ROM fixups "
        "(5.13-5.16)",
        "static attribute visibility is decided after the final fixups"),
    "resize_attr": ("resourceN_resize files exist (v6.1)", "no resourceN_resize files"),
    "driver_misuse": (
        "lines that play in-kernel callers may break their contract (explicit mode)",
        "lines that play in-kernel callers keep their contract (a breaking line is "
        "illegal and does not run)"),
    "claim_policy": {
        CLAIM_REVOKE: "a claim succeeds and revokes user mappings of its range (Linux)",
        CLAIM_FAIL: "a claim fails with -EBUSY while user mappings of its range exist",
    },
    "promise_exclusive_after_claim": (
        "promise: after a claim no user access reaches a claimed byte",
        "no promise about user access after a claim"),
    "revoke_granularity": {
        GRANULARITY_PAGE: "revocation may reach whole pages around a claim",
        GRANULARITY_BYTE: "revocation may reach claimed bytes only",
    },
}


def describe_setting(name: str, value: object) -> str:
    """``name = value`` in words (SETTING_WORDS), for people rather than Python."""
    if name == "by_design":
        ids = sorted(value)  # type: ignore[call-overload]
        return (f"accepts {', '.join(ids)} by design (recorded, not findings)" if ids
                else "accepts nothing by design")
    words = SETTING_WORDS[name]
    if isinstance(words, tuple):
        return words[0] if value else words[1]
    return words[str(value)]


def differences(profile: KernelProfile, base: KernelProfile | None) -> dict[str, object]:
    """The settings of ``profile`` that differ from ``base`` (all of them without one)."""
    own = profile.settings()
    if base is None:
        return own
    theirs = base.settings()
    return {k: v for k, v in own.items() if theirs[k] != v}


class ProfileError(ValueError):
    """A profile name or override that does not exist or does not parse."""


def _coerce(name: str, current: object, text: str) -> object:
    if isinstance(current, bool):
        if text.lower() in ("1", "y", "yes", "true", "on"):
            return True
        if text.lower() in ("0", "n", "no", "false", "off"):
            return False
        raise ProfileError(f"{name}: expected a boolean, got {text!r}")
    if isinstance(current, frozenset):
        return frozenset(x for x in text.split("|") if x)
    allowed = ALLOWED_VALUES.get(name)
    if allowed is not None and text not in allowed:
        raise ProfileError(f"{name}: {text!r} is not one of "
                           f"{', '.join(repr(v) for v in allowed)}")
    return text


def resolve(spec: str | KernelProfile | None) -> KernelProfile:
    """``"NAME[:field=value[,field=value...]]"`` -> KernelProfile.

    An override keeps the base's name plus the override text, so reports still say
    which kernel they started from."""
    if isinstance(spec, KernelProfile):
        return spec
    if not spec:
        return DEFAULT
    base_name, _, overrides = spec.partition(":")
    try:
        profile = PROFILES[base_name]
    except KeyError:
        known = ", ".join(PROFILES)
        raise ProfileError(f"unknown profile {base_name!r} (known: {known})") from None
    if not overrides:
        return profile
    known_fields = {f.name for f in dataclasses.fields(KernelProfile)}
    changes: dict[str, object] = {}
    for item in overrides.split(","):
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq or key not in known_fields or key in IDENTITY:
            raise ProfileError(f"bad profile override {item!r} in {spec!r}")
        changes[key] = _coerce(key, getattr(profile, key), value.strip())
    return replace(profile, name=spec, **changes)
