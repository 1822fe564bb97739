"""The observation lines: who holds what (the busy entries of /proc/iomem or
/proc/ioports), a device's driver link, its sysfs files and its ``resource`` file (a
mixin of :class:`~iomemfuzz.fuzz.confirm.session.Session`).

Each answer is printed the way the model prints it (fuzz/ops/observe.py), with real
device names and addresses inside a real BAR put back into the model's, so the two
labels compare directly.
"""

from __future__ import annotations

from iomemfuzz.fuzz.confirm.plan import LinePlan
from iomemfuzz.fuzz.confirm.results import status
from iomemfuzz.fuzz.confirm.translate import UNMODELLED_FILES
from iomemfuzz.fuzz.ops.observe import busy_text

# ``ctl busy`` walks the whole tree; the model's range is applied after translation.
WHOLE_TREE = "0 0xffffffffffffffff"
IO_WIDTH, MEM_WIDTH = 4, 8  # read_busy's zero padding (fuzz/ops/observe.py)


class ObserveLines:
    """op_* runners for the observe family."""

    def to_model_range(self, lo: int, hi: int, line: LinePlan) -> tuple[int, int]:
        """A real [lo, hi] inside a real BAR -> the same offsets in the model's BAR (the
        device's BAR of the same index); anything else as it is."""
        for real_dev, bars in self.real_last.items():
            model_dev = self.model_name(real_dev)
            for i, (start, end) in bars.items():
                if not start <= lo <= hi <= end:
                    continue
                for model in (line.bars_before, self.model_last, self.plan.bars_end):
                    bar = model.get(model_dev, {}).get(i)
                    if bar is not None:
                        return bar[0] + lo - start, bar[0] + hi - start
        return lo, hi

    def op_read_busy(self, op, line):
        # /proc/iomem does not print IORESOURCE_BUSY: the test module walks the tree.
        reply = self.g.call(f"ctl busy {op.root} {WHOLE_TREE}")
        if not reply.ok:
            return status(reply), "", ""
        entries = []
        for text in reply.lines:
            start, end, name = text.split(" ", 2)
            lo, hi = self.to_model_range(int(start, 16), int(end, 16), line)
            if lo <= op.end and hi >= op.start:
                entries.append((lo, hi, self.model_name(name)))
        # File order is parents before children, siblings by address; a translated
        # BAR may have moved relative to its neighbours, so order again.
        entries.sort(key=lambda e: (e[0], -e[1]))
        width = IO_WIDTH if op.root == "ioport" else MEM_WIDTH
        return f"= {busy_text(entries, width)}", "", ""

    def op_read_driver(self, op, line):
        reply = self.g.call(f"readlink {self._dev_path(op.dev)}/driver")
        if not reply.ok:
            return status(reply), "", ""
        return f"= {reply.values[0]}", "", ""

    def op_list_files(self, op, line):
        reply = self.g.call(f"ls {self._dev_path(op.dev)}")
        if not reply.ok:
            return status(reply), "", ""
        model = set(line.model[2:].split(",")) if line.model.startswith("= ") else set()
        aside = [f for f in reply.lines if f in UNMODELLED_FILES and f not in model]
        files = [f for f in reply.lines if f not in aside]
        notes = []
        if aside:
            notes.append(f"set aside (the model leaves them out): {','.join(aside)}")
        if model and set(files) != model:
            notes.append(f"only the real kernel has: "
                         f"{','.join(sorted(set(files) - model)) or 'nothing'}; only the "
                         f"model has: {','.join(sorted(model - set(files))) or 'nothing'}")
        return "= " + (",".join(files) or "none"), "; ".join(notes), ""

    def op_read_resource(self, op, line):
        reply = self.g.call(f"cat {self._dev_path(op.dev)}/resource")
        if not reply.ok:
            return status(reply), "", ""
        if op.line >= len(reply.lines):
            return "= eof", "", ""
        start, end, flags = (int(w, 16) for w in reply.lines[op.line].split())
        detail = ""
        if start or end:
            lo, hi = self.to_model_range(start, end, line)
            if (lo, hi) != (start, end):
                detail = f"real {start:#x}-{end:#x}"
            start, end = lo, hi
        return f"= 0x{start:016x},0x{end:016x},0x{flags:016x}", detail, ""
