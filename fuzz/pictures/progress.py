"""``iomemfuzz plot``: a fuzz job's coverage and findings over time, from its stats.json.

Three panels sharing the time axis: libFuzzer's coverage and features (the generate
engine's features, the state and trace features it steers by; the hypothesis engine
reports none: its panel says so and shows executions instead), executions per
second, and findings: the step is when each was stored, its dot when a worker found it. Several jobs
(one per profile in a workdir) are drawn on the same axes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from iomemfuzz.fuzz.pictures import DARK_RED, INK, pyplot, save

COLOURS = ("#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00")


def plot_data(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The parts of each stats.json the picture uses (what its digest is taken of)."""
    return [{"engine": d["engine"], "profile": d["profile"], "series": d["series"],
             "found": d["found"]} for d in docs]


def draw(data: list[dict[str, Any]], path: str | Path) -> Path:
    plt = pyplot()
    fig, (cov, rate, found) = plt.subplots(3, 1, figsize=(10, 8.2), sharex=True,
                                           gridspec_kw={"height_ratios": (3, 1.4, 2.2),
                                                        "hspace": 0.18})
    any_cov = any_edges = False
    feats = cov.twinx()  # features grow ten times faster than edges: their own scale
    for i, job in enumerate(data):
        colour = COLOURS[i % len(COLOURS)]
        s = job["series"]
        t = [p["t"] for p in s]
        name = f"{job['profile']} ({job['engine']})"
        if all(p["cov"] is None for p in s) and any(p.get("ft") for p in s):
            # The generate engine: no edges, but the features it steers by.
            any_cov = True
            cov.plot(t, [p["ft"] or 0 for p in s], color=colour, lw=1.8,
                     label=f"{name}: features (state and trace)")
        elif any(p["cov"] is not None for p in s):
            any_cov = any_edges = True
            cov.plot(t, [p["cov"] for p in s], color=colour, lw=1.8, label=f"{name}: cov")
            feats.plot(t, [p["ft"] for p in s], color=colour, lw=1.2, ls="--",
                       label=f"{name}: features (right axis)")
        else:
            cov.plot(t, [p["execs"] for p in s], color=colour, lw=1.5,
                     label=f"{name}: executions (no coverage from this engine)")
        rate.plot(t, [p["exec_s"] for p in s], color=colour, lw=1.2)
        found.step(t, [p["findings"] for p in s], where="post", color=colour, lw=1.8,
                   label=name)
        for n, f in enumerate(job["found"], start=1):
            found.plot([f["t"]], [n], marker="o", color=DARK_RED, ms=5, zorder=4)
            found.annotate(_short(f["signature"]), (f["t"], n), xytext=(6, -3),
                           textcoords="offset points", fontsize=7, color=INK,
                           rotation=0, va="top")
    cov.set_ylabel("coverage (edges or features)" if any_cov else "executions")
    cov.set_title("iomemfuzz fuzz job: coverage and findings over time", loc="left",
                  fontweight="bold")
    if any_edges:
        feats.set_ylabel("features")
        feats.spines["top"].set_visible(False)
    else:
        feats.set_axis_off()
    handles = cov.get_legend_handles_labels()
    more = feats.get_legend_handles_labels()
    cov.legend(handles[0] + more[0], handles[1] + more[1], fontsize=7.5, loc="lower right",
               frameon=False)
    rate.set_ylabel("exec/s")
    found.set_ylabel("new findings")
    found.set_xlabel("seconds since the job started")
    top = max((len(j["found"]) for j in data), default=0)
    found.set_ylim(-0.3, max(1, top) + 0.8)
    found.yaxis.get_major_locator().set_params(integer=True)
    for ax in (cov, rate, found):
        ax.grid(True, color="#dddddd", lw=0.6)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    return save(fig, path)


def _short(signature: str) -> str:
    """oracle/kind/function of a signature (the mechanism makes labels too long)."""
    return "/".join(signature.split("/")[:3])
