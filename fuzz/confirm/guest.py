"""The guest image: a Debian kernel, and a busybox initramfs holding the helper, the test
module and the driver modules a Program needs.

Everything comes from Debian packages (:data:`PACKAGES`); :func:`find_kernel` finds an
installed kernel series and :func:`missing_packages` says what to ``apt-get install``
when something is not there. :func:`build_image` compiles the static helper and the test
module against the kernel's own headers package and packs the initramfs, all into a cache
directory outside the repository (``$IOMEMFUZZ_CACHE``, else ``$XDG_CACHE_HOME/iomemfuzz``,
else ``~/.cache/iomemfuzz``), keyed by the sources and the kernel release so a second
run reuses them.
"""

from __future__ import annotations

import gzip
import hashlib
import lzma
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from iomemfuzz.model.pci_driver_table import DRIVERS as KNOWN_DRIVERS

GUEST_SOURCES = Path(__file__).resolve().parent / "guest"
CAPTURE_SCRIPT = "capture-machine.sh"
# The capture script lives in tools/ of a source checkout; an installed package carries a
# copy next to the guest sources.
CAPTURE_CANDIDATES = (
    Path(__file__).resolve().parents[2] / "tools" / CAPTURE_SCRIPT,
    GUEST_SOURCES / CAPTURE_SCRIPT,
)

# Kernel series -> (image package, headers package, /boot name pattern).
SERIES: dict[str, tuple[str, str, str]] = {
    "6.1": ("linux-image-amd64", "linux-headers-amd64", r"vmlinuz-(6\.1\.\d+-\d+-amd64)"),
    "6.12": ("linux-image-6.12-amd64", "linux-headers-6.12-amd64",
             r"vmlinuz-(6\.12\.[0-9.]+\+deb\d+-amd64)"),
}
# What every run needs besides a kernel: the emulator, the initramfs shell, a compiler
# and make for the helper and the module.
COMMON_PACKAGES = ("qemu-system-x86", "busybox-static", "gcc", "make", "libc6-dev")
COMMON_FILES = {"qemu-system-x86": "qemu-system-x86_64", "busybox-static": "/bin/busybox",
                "gcc": "gcc", "make": "make", "libc6-dev": "/usr/lib/x86_64-linux-gnu/libc.a"}
# The drivers the model takes from their real source (model/pci_driver_table.py): a
# module_load line naming one of these loads Debian's own module; any other name is the
# model's generic driver, which the test module registers (guest/iomemfuzz_test.c).
REAL_DRIVERS: tuple[str, ...] = tuple(KNOWN_DRIVERS)


def module_name(driver: str) -> str:
    """The kernel module a driver comes in ("vfio-pci" -> "vfio_pci", as lsmod names it)."""
    return driver.replace("-", "_")


class GuestError(RuntimeError):
    """The guest cannot be built or booted (the message says what to install or fix)."""


@dataclass(frozen=True, slots=True)
class GuestKernel:
    series: str
    release: str  # uname -r: "6.1.0-57-amd64"
    vmlinuz: Path
    modules: Path  # /lib/modules/RELEASE
    headers: Path  # the kbuild tree (/lib/modules/RELEASE/build)


@dataclass(frozen=True, slots=True)
class GuestImage:
    kernel: GuestKernel
    initrd: Path
    # Modules the initramfs carries, by name (load order is the Program's business).
    modules: tuple[str, ...]
    # Real driver -> the modules to insmod for it, dependencies first (modules.dep).
    driver_modules: dict[str, tuple[str, ...]] = field(default_factory=dict)


def cache_dir() -> Path:
    env = os.environ.get("IOMEMFUZZ_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "iomemfuzz"


def _have(thing: str) -> bool:
    return Path(thing).exists() if thing.startswith("/") else shutil.which(thing) is not None


def missing_packages(series: str = "6.1") -> list[str]:
    """The Debian packages a confirm run on ``series`` still needs."""
    image, headers, _pattern = SERIES[series]
    missing = [pkg for pkg in COMMON_PACKAGES if not _have(COMMON_FILES[pkg])]
    try:
        kernel = find_kernel(series)
    except GuestError:
        return [*missing, image, headers]
    if not (kernel.headers / "Makefile").exists():
        missing.append(headers)
    return missing


def install_command(packages: list[str]) -> str:
    return "apt-get install -y --no-install-recommends " + " ".join(packages)


def install_packages(packages: list[str]) -> str | None:
    """``apt-get install`` the packages (as root, where apt-get exists): None when it
    worked, else why not. The packages come from Debian's archive, the one registry the
    guest can come from; nothing is downloaded from elsewhere."""
    if not packages:
        return None
    if shutil.which("apt-get") is None:
        return "no apt-get on this system"
    if os.geteuid() != 0:
        return "installing Debian packages needs root"
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "update", "-qq"],
                ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages]):
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
        if proc.returncode != 0:
            return f"{' '.join(cmd)} failed: {proc.stderr.strip()[-500:]}"
    return None


def find_kernel(series: str = "6.1") -> GuestKernel:
    """The newest installed kernel of ``series`` (GuestError naming the package if none)."""
    if series not in SERIES:
        raise GuestError(f"unknown kernel series {series!r} (known: {', '.join(SERIES)})")
    image, _headers, pattern = SERIES[series]
    found = []
    for path in Path("/boot").glob("vmlinuz-*"):
        m = re.fullmatch(pattern, path.name)
        if m and os.access(path, os.R_OK):
            found.append((path.stat().st_mtime, m.group(1), path))
    if not found:
        raise GuestError(f"no readable {series} kernel in /boot: {install_command([image])}"
                         " (as root)")
    _mtime, release, vmlinuz = max(found)
    modules = Path("/lib/modules") / release
    return GuestKernel(series, release, vmlinuz, modules, modules / "build")


def _digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(len(p).to_bytes(8, "little"))
        h.update(p)
    return h.hexdigest()[:16]


def _run(cmd: list[str], cwd: Path | None = None) -> None:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise GuestError(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")


def build_helper(out: Path) -> Path:
    """Compile the static helper into ``out`` (cached by source digest)."""
    src = GUEST_SOURCES / "helper.c"
    target = out / f"helper-{_digest(src.read_bytes())}"
    if not target.exists():
        out.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".tmp")
        _run(["gcc", "-static", "-O2", "-Wall", "-o", str(tmp), str(src)])
        tmp.rename(target)
    return target


def build_module(kernel: GuestKernel, out: Path) -> Path:
    """Build iomemfuzz_test.ko against ``kernel``'s headers (cached)."""
    src = (GUEST_SOURCES / "iomemfuzz_test.c").read_bytes()
    target = out / f"iomemfuzz_test-{kernel.release}-{_digest(src)}.ko"
    if target.exists():
        return target
    if not (kernel.headers / "Makefile").exists():
        raise GuestError(f"no headers for {kernel.release}: "
                         + install_command([SERIES[kernel.series][1]]))
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="iomemfuzz-mod-") as tmp:
        work = Path(tmp)
        shutil.copy(GUEST_SOURCES / "iomemfuzz_test.c", work)
        shutil.copy(GUEST_SOURCES / "Kbuild", work)
        _run(["make", "-s", "-C", str(kernel.headers), f"M={work}", "modules"])
        shutil.copy(work / "iomemfuzz_test.ko", target)
    return target


def _module_files(kernel: GuestKernel, names: tuple[str, ...]) -> dict[str, Path]:
    """name -> .ko path for ``names`` and their dependencies (modules.dep), in load order."""
    deps: dict[str, tuple[str, list[str]]] = {}
    for line in (kernel.modules / "modules.dep").read_text().splitlines():
        path, _, rest = line.partition(":")
        name = Path(path).name.split(".ko")[0].replace("-", "_")
        deps[name] = (path, rest.split())
    order: dict[str, Path] = {}

    def visit(name: str) -> None:
        key = name.replace("-", "_")
        if key in order or key not in deps:
            return
        path, needs = deps[key]
        for dep in needs:
            visit(Path(dep).name.split(".ko")[0])
        order[key] = kernel.modules / path

    for name in names:
        visit(name)
    return order


def _read_module(path: Path) -> bytes:
    data = path.read_bytes()
    if path.suffix == ".xz":
        return lzma.decompress(data)
    if path.suffix == ".zst":
        raise GuestError(f"{path}: zstd-compressed modules are not supported")
    return data


# /dev/console as a character device (5, 1): the kernel opens it for /init's output.
CONSOLE_NODE = ("dev/console", 0o020600, b"")


def _cpio_newc(entries: list[tuple[str, int, bytes]]) -> bytes:
    """An initramfs archive: (path, mode, data) entries, directories first (newc)."""
    out = bytearray()
    for ino, (name, mode, data) in enumerate([*entries, ("TRAILER!!!", 0, b"")], 1):
        raw = name.encode() + b"\0"
        rdev = (5, 1) if (name, mode, data) == CONSOLE_NODE else (0, 0)
        fields = (ino, mode, 0, 0, 1, 0, len(data), 0, 0, *rdev, len(raw), 0)
        out += b"070701" + b"".join(b"%08X" % f for f in fields) + raw
        out += b"\0" * (-len(out) % 4) + data
        out += b"\0" * (-len(out) % 4)
    return bytes(out)


def build_image(kernel: GuestKernel, cache: Path | None = None) -> GuestImage:
    """The initramfs for ``kernel`` (built once per kernel release and source digest)."""
    cache = cache or cache_dir()
    helper = build_helper(cache / "bin")
    module = build_module(kernel, cache / "modules")
    mods = _module_files(kernel, tuple(map(module_name, REAL_DRIVERS)))
    needs = {d: tuple(_module_files(kernel, (module_name(d),))) for d in REAL_DRIVERS}
    capture = next((p for p in CAPTURE_CANDIDATES if p.exists()), None)
    if capture is None:
        raise GuestError(f"{CAPTURE_SCRIPT} not found")
    init = (GUEST_SOURCES / "init.sh").read_bytes()
    busybox = Path("/bin/busybox")
    if not busybox.exists():
        raise GuestError("no /bin/busybox: " + install_command(["busybox-static"]))
    key = _digest(helper.read_bytes(), module.read_bytes(), init, capture.read_bytes(),
                  busybox.read_bytes(), kernel.release.encode(),
                  *(str(p).encode() for p in mods.values()))
    initrd = cache / "initrd" / f"initrd-{kernel.release}-{key}.cpio.gz"
    if not initrd.exists():
        d, x, f = 0o040755, 0o100755, 0o100644
        entries = [(p, d, b"") for p in ("bin", "dev", "proc", "sys", "tmp", "lib",
                                         "lib/iomemfuzz")]
        entries += [CONSOLE_NODE, ("bin/busybox", x, busybox.read_bytes()), ("init", x, init),
                    ("iomemfuzz-helper", x, helper.read_bytes()),
                    ("capture-machine.sh", x, capture.read_bytes()),
                    ("lib/iomemfuzz/iomemfuzz_test.ko", f, module.read_bytes())]
        entries += [(f"lib/iomemfuzz/{name}.ko", f, _read_module(path))
                    for name, path in mods.items()]
        initrd.parent.mkdir(parents=True, exist_ok=True)
        tmp = initrd.with_suffix(".tmp")
        tmp.write_bytes(gzip.compress(_cpio_newc(entries), compresslevel=1))
        tmp.rename(initrd)
    return GuestImage(kernel, initrd, (*mods, "iomemfuzz_test"), needs)
