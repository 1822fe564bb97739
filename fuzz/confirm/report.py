"""The confirm report: a table per Program (line, model, real, agree), the lines that could
not run and why, what changed in the real /proc/iomem, and the kernel's warnings; or the
same as JSON for CI."""

from __future__ import annotations

import dataclasses
import json

from iomemfuzz.fuzz.confirm.session import ProgramResult

WARN_LEVELS = ("<0>", "<1>", "<2>", "<3>", "<4>")


def _mark(agree: bool | None) -> str:
    return {True: "yes", False: "NO", None: "-"}[agree]


def render_text(results: list[ProgramResult]) -> str:
    out: list[str] = []
    for r in results:
        out.append(f"== {r.path}")
        where = f"machine {r.machine}, profile {r.profile}"
        if r.kernel:
            where += f"; linux {r.kernel}, qemu-{r.accel}"
        out.append(f"   {where}")
        if r.qemu:
            out.append(f"   qemu {' '.join(r.qemu)}")
        for note in r.notes:
            out.append(f"   note: {note}")
        if r.skip:
            out.append(f"   not run: {r.skip}")
            continue
        ran = [ln for ln in r.lines if ln.real is not None]
        if ran:
            width = max(len(ln.text) for ln in ran)
            mw = max(len(ln.model) for ln in ran)
            rw = max(len(ln.real or "") for ln in ran)
            out.append(f"   {'line':>4}  {'operation':<{width}}  {'model':<{mw}}  "
                       f"{'real':<{rw}}  agree")
            for ln in ran:
                out.append(f"   {ln.index:>4}  {ln.text:<{width}}  {ln.model:<{mw}}  "
                           f"{ln.real:<{rw}}  {_mark(ln.agree)}")
                if ln.detail or ln.note:
                    out.append(f"   {'':>4}  {'':<{width}}  "
                               + "; ".join(filter(None, (ln.detail, ln.note))))
                if ln.env:
                    out.append(f"   {'':>4}  {'':<{width}}  environment? {ln.env}")
                for msg in ln.dmesg:
                    if msg.startswith(WARN_LEVELS):
                        out.append(f"   {'':>4}  kernel: {msg[3:]}")
        skipped = [ln for ln in r.lines if ln.real is None]
        if skipped:
            out.append("   not runnable:")
            for ln in skipped:
                out.append(f"   {ln.index:>4}  {ln.text}  ({ln.note})")
        if r.error:
            out.append(f"   error: {r.error}")
        if r.iomem_changes_agree:
            out.append("   /proc/iomem changes agree with the model's: "
                       + ("; ".join(r.iomem_changes) or "none"))
        elif r.iomem_changes_agree is False:
            out.append("   /proc/iomem changes (model's names and addresses):")
            out.append("     model: " + ("; ".join(r.model_iomem_changes) or "none"))
            out.append("     real:  " + ("; ".join(r.iomem_changes) or "none"))
        agreed = sum(1 for ln in ran if ln.agree)
        out.append(f"   {agreed} of {len(ran)} run lines agree, "
                   f"{len(r.disagreements)} disagree, {len(skipped)} not runnable")
    runs = [r for r in results if not r.skip]
    bad = [r for r in results if r.disagreements or r.error]
    out.append(f"{len(runs) - len(bad)} passed, {len(bad)} failed"
               + (f", {len(results) - len(runs)} skipped" if len(results) > len(runs) else ""))
    return "\n".join(out) + "\n"


def render_json(results: list[ProgramResult]) -> str:
    return json.dumps([dataclasses.asdict(r) for r in results], indent=1) + "\n"
