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

# Values of ``lockdown`` (security/lockdown; LOCKDOWN_DEV_MEM and LOCKDOWN_PCI_ACCESS are
# both integrity-level reasons, spec §0).
LOCKDOWN_NONE = "none"
LOCKDOWN_INTEGRITY = "integrity"
LOCKDOWN_CONFIDENTIALITY = "confidentiality"

# Values of ``claim_policy`` (the design question in the LKML thread, spec B15).
CLAIM_REVOKE = "revoke"  # what Linux does: the claim succeeds and user mappings are zapped
CLAIM_FAIL = "fail"  # alternative: __request_region fails with -EBUSY while mapped

# Values of ``revoke_granularity`` (what oracle (b) of mapping survival accepts).
GRANULARITY_PAGE = "page"  # unmap_mapping_range works on whole pages: collateral accepted
GRANULARITY_BYTE = "byte"  # stricter promise: only mappings of claimed bytes may die


@dataclass(frozen=True, slots=True)
class KernelProfile:
    """One kernel version + configuration + design choice. Frozen; build variants with
    :func:`dataclasses.replace` or :func:`resolve` ("v6.1-deb:iomem_cmdline=relaxed")."""

    name: str = "v6.1-deb"
    description: str = "Debian linux-source-6.1 (6.1.192 with stable backports), Debian config"

    # --- kernel/resource.c -------------------------------------------------------------
    # region_intersects looks into descendants of a non-matching top-level node
    # (b4afe4183ec7, v6.12, backported to 6.1-deb). Spec §2.12.
    region_intersects_nested: bool = True
    # iomem_is_exclusive as reworked in v5.16 (SYSRAM|EXCLUSIVE always exclusive, subtree
    # skip); False = v4.5..v5.15 (iomem=relaxed disables every check). Spec §2.13.
    iomem_is_exclusive_v516: bool = True
    # walk_system_ram_res / walk_mem_res / page_is_ram see nested nodes (v5.14). Spec §2.11.
    walkers_nested: bool = True

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
    # SEEK_END returns 0 (B11b).
    pci_resource_llseek_fixed: bool = False
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
    # Static-attribute visibility is decided at device_add, before FINAL fixups set
    # ROM_SHADOW (5.13..5.16; fixed by 66d28b21fe6b). B23.
    rom_visibility_at_device_add: bool = False
    # resourceN_resize files exist (91fa127794ac "PCI: Expose PCIe Resizable BAR support
    # via sysfs", merged for v6.1-rc1).
    resize_attr: bool = True

    # --- design alternatives (spec B15) -------------------------------------------------
    claim_policy: str = CLAIM_REVOKE

    # --- promises the oracles enforce ---------------------------------------------------
    # (a) after a successful claim no user access reaches a claimed byte.
    promise_exclusive_after_claim: bool = True
    # (b) how far revocation may reach beyond the claimed bytes.
    revoke_granularity: str = GRANULARITY_PAGE
    # Catalog entries this kernel accepts as "by design": violations whose oracle kind is
    # listed here are recorded as expected behaviour, not findings.
    by_design: frozenset[str] = field(default_factory=frozenset)

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
        """Every field except name/description, in declaration order."""
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.name not in ("name", "description")
        }


_DEB = KernelProfile()

# v6.1.0: as 6.1-deb minus the stable backports that matter here (spec §0.2).
_V61 = replace(
    _DEB,
    name="v6.1",
    description="vanilla v6.1.0",
    region_intersects_nested=False,
    res_attr_store_after_create=False,
    proc_init_locked=False,
)
_V515 = replace(_V61, name="v5.15", description="v5.15: f_mapping looked up at open()",
                iomem_is_exclusive_v516=False, resize_attr=False,
                rom_visibility_at_device_add=True)
_V513 = replace(_V515, name="v5.13",
                description="v5.13: config/rom/... static, resourceN first dynamic file",
                mapping_at_open=False, legacy_mem_mapping_typo=True, walkers_nested=False,
                rom_visibility_at_device_add=True)
_V512 = replace(_V513, name="v5.12",
                description="v5.12: PCI sysfs/procfs mmaps revoked; mapping captured at create",
                dynamic_config_attrs=True, rom_visibility_at_device_add=False)
_V58 = replace(_V512, name="v5.8", description="v5.8: /dev/mem revocation only",
               revoke_pci_mmaps=False, procfs_mmap_checks_exclusive=False,
               legacy_mem_mapping_typo=False, mapping_at_open=False,
               iomem_inode_in_resource=False)
_V57 = replace(_V58, name="v5.7", description="v5.7: no revocation at all",
               revoke_devmem=False)
_NEXT = replace(_DEB, name="next-2026",
                description="linux-next 2026: static resource files, no pci_sysfs_init",
                static_resource_files=True, pci_resource_llseek_fixed=True,
                region_intersects_nested=True)

_ROWS: tuple[KernelProfile, ...] = (
    _V57,
    _V58,
    _V512,
    _V513,
    _V515,
    _V61,
    _DEB,
    _NEXT,
    # Config axes of the default kernel (spec §3.6).
    # These configs opt out of revocation on purpose (spec B5: revoke_iomem's "*cringe*
    # iomem=relaxed" comment; IO_STRICT_DEVMEM=n makes it a stub), so a mapping that
    # survives a claim there is accepted, not a finding.
    replace(_DEB, name="v6.1-deb-relaxed", description="6.1-deb booted with iomem=relaxed",
            iomem_cmdline=IOMEM_RELAXED, by_design=frozenset({"B5"})),
    replace(_DEB, name="v6.1-deb-no-io-strict",
            description="6.1-deb with CONFIG_IO_STRICT_DEVMEM=n", io_strict_devmem=False,
            by_design=frozenset({"B5"})),
    replace(_DEB, name="v6.1-deb-no-strict",
            description="6.1-deb with CONFIG_STRICT_DEVMEM=n (and so IO_STRICT=n)",
            strict_devmem=False, io_strict_devmem=False, by_design=frozenset({"B5"})),
    replace(_DEB, name="v6.1-deb-lockdown", description="6.1-deb under lockdown=integrity",
            lockdown=LOCKDOWN_INTEGRITY),
    # The design alternative from the thread: fail the claim instead of revoking.
    replace(_DEB, name="v6.1-deb-claim-fails",
            description="design alternative: __request_region fails -EBUSY while mapped",
            claim_policy=CLAIM_FAIL),
    # A stricter promise: revocation may only reach claimed bytes.
    replace(_DEB, name="v6.1-deb-byte-exact",
            description="6.1-deb held to byte-exact revocation (stricter promise)",
            revoke_granularity=GRANULARITY_BYTE),
    # Test-only profiles with planted/injected failures.
    replace(_DEB, name="test-iomem-inode-fails",
            description="TEST: iomem_init_inode fails at fs_initcall (B25)",
            iomem_init_inode_fails=True),
    replace(_V512, name="test-premerge-null-mapping",
            description="TEST: never-released v3-v5 of the 2020 series, IO_STRICT=n (B24)",
            io_strict_devmem=False, premerge_null_mapping_without_io_strict=True),
    replace(_V512, name="test-next-2021-legacy-early",
            description="TEST: linux-next Jan 2021 on powerpc: legacy files at subsys (B11c)",
            have_pci_legacy=True, legacy_files_wait_for_sysfs_init=False),
    replace(_DEB, name="test-early-userspace",
            description="TEST: lets userspace act before fs_initcall (B5 variant)",
            early_userspace=True),
)

PROFILES: dict[str, KernelProfile] = {p.name: p for p in _ROWS}
DEFAULT = _DEB


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
        if not eq or key not in known_fields or key in ("name", "description"):
            raise ProfileError(f"bad profile override {item!r} in {spec!r}")
        changes[key] = _coerce(key, getattr(profile, key), value.strip())
    return replace(profile, name=spec, **changes)
