"""One QEMU guest: start it, talk to the helper on its second serial port, hot-plug devices
through QMP, stop it.

The first serial port is the kernel console (kept in ``console.log`` of the run
directory); the second is the helper's command channel, a UNIX socket. QMP is a second
socket. KVM is used when it works: a guest that does not come up under KVM within
:data:`KVM_PROBE_S` seconds is restarted under TCG and the verdict is cached per host
kernel, so the probe costs once (``IOMEMFUZZ_ACCEL=tcg|kvm`` overrides it).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from iomemfuzz.fuzz.confirm.guest import GuestError, GuestImage, cache_dir

BOOT_TIMEOUT_S = 120.0  # TCG boots a 6.1 kernel in 5-10 s; slow CI machines get slack
KVM_PROBE_S = 15.0  # a working KVM boots the guest in 1-3 s
CALL_TIMEOUT_S = 60.0
# Console lines that mean the kernel is no longer trustworthy (the helper may never answer).
OOPS_MARKERS = ("BUG:", "Oops:", "general protection fault", "Kernel panic",
                "kernel BUG at")


@dataclass(frozen=True, slots=True)
class Reply:
    """The helper's answer: status "ok", "err" (value: errno number) or "sig"."""

    status: str
    values: tuple[str, ...] = ()
    lines: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.status == "ok"


class GuestDied(GuestError):
    """The guest stopped answering (a kernel oops killed the helper, or a panic)."""


def _kvm_cache() -> Path:
    return cache_dir() / f"accel-{os.uname().release}"


def choose_accel() -> str:
    """"kvm" or "tcg": the override, the cached verdict, or kvm when /dev/kvm opens."""
    forced = os.environ.get("IOMEMFUZZ_ACCEL")
    if forced in ("kvm", "tcg"):
        return forced
    cached = _kvm_cache()
    if cached.exists():
        return cached.read_text().strip()
    try:
        fd = os.open("/dev/kvm", os.O_RDWR)
    except OSError:
        return "tcg"
    os.close(fd)
    return "kvm"


def _remember_accel(accel: str) -> None:
    if os.environ.get("IOMEMFUZZ_ACCEL"):
        return
    path = _kvm_cache()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(accel + "\n")


@dataclass
class Guest:
    """A running guest. Use as a context manager: ``with Guest(image, args, append) as g``."""

    image: GuestImage
    machine_args: tuple[str, ...]
    append: str = ""
    accel: str = field(default_factory=choose_accel)
    workdir: Path | None = None
    proc: subprocess.Popen | None = None
    _cmd: socket.socket | None = None
    _qmp: socket.socket | None = None
    _buf: bytes = b""
    _qbuf: bytes = b""
    _own_workdir: bool = False
    events: list[dict] = field(default_factory=list)

    def __enter__(self) -> Guest:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- lifetime ----------------------------------------------------------------------

    def command_line(self, accel: str) -> list[str]:
        assert self.workdir is not None
        append = " ".join(filter(None, ("console=ttyS0 panic=-1 loglevel=4",
                                        self.append)))
        return ["qemu-system-x86_64", "-accel", accel, "-nodefaults", "-display", "none",
                "-no-reboot", *self.machine_args,
                "-kernel", str(self.image.kernel.vmlinuz), "-initrd", str(self.image.initrd),
                "-append", append,
                "-chardev", f"file,id=con,path={self.workdir / 'console.log'}",
                "-serial", "chardev:con",
                "-chardev", f"socket,id=cmd,path={self.workdir / 'cmd.sock'},server=on,"
                            "wait=off",
                "-serial", "chardev:cmd",
                "-qmp", f"unix:{self.workdir / 'qmp.sock'},server=on,wait=off"]

    def start(self) -> None:
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="iomemfuzz-guest-"))
            self._own_workdir = True
        if self.accel == "kvm":
            try:
                self._boot("kvm", KVM_PROBE_S)
                _remember_accel("kvm")
                return
            except GuestError:
                self._kill()
                self.accel = "tcg"
                _remember_accel("tcg")
        self._boot(self.accel, BOOT_TIMEOUT_S)

    def _boot(self, accel: str, timeout: float) -> None:
        assert self.workdir is not None
        for name in ("cmd.sock", "qmp.sock"):
            (self.workdir / name).unlink(missing_ok=True)
        self._buf = b""
        self.proc = subprocess.Popen(self.command_line(accel), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        self._cmd = self._connect(self.workdir / "cmd.sock", deadline)
        self._qmp = self._connect(self.workdir / "qmp.sock", deadline)
        self._qmp_greeting(deadline)
        reply = self._read_reply(deadline)
        if reply.status != "ready":
            raise GuestError(f"unexpected first line from the guest: {reply}")

    def _connect(self, path: Path, deadline: float) -> socket.socket:
        while True:
            if self.proc is not None and self.proc.poll() is not None:
                out = self.proc.stdout.read().decode(errors="replace") if self.proc.stdout \
                    else ""
                raise GuestError(f"qemu exited with {self.proc.returncode}: {out[-2000:]}")
            try:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(str(path))
                return s
            except OSError:
                s.close()
                if time.monotonic() > deadline:
                    raise GuestError(f"qemu did not open {path.name}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self._cmd is not None:
            with contextlib.suppress(OSError):
                self._cmd.sendall(b"quit\n")
        if self.proc is not None:
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._kill()
        self._kill()
        if self._own_workdir and self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _kill(self) -> None:
        for s in (self._cmd, self._qmp):
            if s is not None:
                s.close()
        self._cmd = self._qmp = None
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()

    def oops(self) -> str:
        """The first line of a kernel oops or panic on the console, or ""."""
        for line in self.console().splitlines():
            text = line.split("] ", 1)[-1]
            if text.startswith(OOPS_MARKERS):
                return text
        return ""

    def console(self) -> str:
        """What the kernel printed on its console so far."""
        assert self.workdir is not None
        path = self.workdir / "console.log"
        return path.read_text(errors="replace") if path.exists() else ""

    # --- the helper --------------------------------------------------------------------

    def call(self, line: str, timeout: float = CALL_TIMEOUT_S) -> Reply:
        """Send one helper command and wait for its answer."""
        if self._cmd is None:
            raise GuestDied("the guest is not running")
        try:
            self._cmd.sendall(line.encode() + b"\n")
        except OSError as exc:
            raise GuestDied(f"the command channel closed: {exc}") from None
        return self._read_reply(time.monotonic() + timeout)

    def _read_reply(self, deadline: float) -> Reply:
        assert self._cmd is not None
        lines: list[str] = []
        while True:
            nl = self._buf.find(b"\n")
            if nl >= 0:
                raw, self._buf = self._buf[:nl], self._buf[nl + 1:]
                text = raw.decode(errors="replace").rstrip("\r")
                if text.startswith("| "):
                    lines.append(text[2:])
                elif text.startswith("= "):
                    words = text[2:].split(" ")
                    return Reply(words[0], tuple(words[1:]), tuple(lines))
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise GuestDied("the helper did not answer in time")
            self._cmd.settimeout(min(remaining, 1.0))
            try:
                chunk = self._cmd.recv(65536)
            except TimeoutError:
                if self.proc is not None and self.proc.poll() is not None:
                    raise GuestDied("qemu exited") from None
                oops = self.oops()
                if oops:
                    raise GuestDied(f"kernel oops: {oops}") from None
                continue
            if not chunk:
                raise GuestDied("the command channel closed")
            self._buf += chunk

    def sh(self, command: str) -> list[str]:
        """Run a shell command in the guest; its output lines."""
        return list(self.call(f"sh {command}").lines)

    # --- QMP ---------------------------------------------------------------------------

    def _qmp_greeting(self, deadline: float) -> None:
        self._qmp_read(deadline)  # the greeting
        self.qmp("qmp_capabilities")

    def _qmp_read(self, deadline: float) -> dict:
        assert self._qmp is not None
        while True:
            nl = self._qbuf.find(b"\n")
            if nl >= 0:
                raw, self._qbuf = self._qbuf[:nl], self._qbuf[nl + 1:]
                if raw.strip():
                    return json.loads(raw)
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise GuestError("QMP did not answer")
            self._qmp.settimeout(remaining)
            chunk = self._qmp.recv(65536)
            if not chunk:
                raise GuestDied("the QMP socket closed")
            self._qbuf += chunk

    def qmp(self, command: str, **arguments: object) -> dict:
        """Run one QMP command; its "return" (GuestError on an "error")."""
        assert self._qmp is not None
        msg = {"execute": command}
        if arguments:
            msg["arguments"] = arguments
        self._qmp.sendall(json.dumps(msg).encode() + b"\n")
        deadline = time.monotonic() + CALL_TIMEOUT_S
        while True:
            answer = self._qmp_read(deadline)
            if "event" in answer:
                self.events.append(answer)
                continue
            if "error" in answer:
                raise GuestError(f"QMP {command}: {answer['error'].get('desc')}")
            return answer.get("return", {})
