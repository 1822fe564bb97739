"""``iomemfuzz profiles``: the kernel profiles as a table a person can read.

One row per profile: its name, the kernel release it models, its parent, and what differs
from the parent, in words (``model.profile.SETTING_WORDS``), one difference a line. The
root profile is the reference the others are described against; ``-v`` lists every setting
of every profile.
"""

from __future__ import annotations

from iomemfuzz.model.profile import (
    PROFILES,
    KernelProfile,
    describe_setting,
    differences,
)

_HEAD = ("PROFILE", "KERNEL", "PARENT", "WHAT DIFFERS FROM THE PARENT")


def _rows(verbose: bool) -> list[tuple[str, str, str, list[str]]]:
    rows = []
    for profile in PROFILES.values():
        parent = PROFILES.get(profile.parent)
        if verbose:
            words = [profile.description] + [describe_setting(k, v)
                                             for k, v in profile.settings().items()]
        elif parent is None:
            words = [f"{profile.description}: the reference (-v lists its settings)"]
        else:
            words = [describe_setting(k, v) for k, v in differences(profile, parent).items()]
            words = words or ["nothing (same settings, another name)"]
        rows.append((profile.name, profile.kernel, profile.parent or "-", words))
    return rows


def profile_table(verbose: bool = False) -> str:
    """The table as text: continuation lines for the second and later differences."""
    rows = _rows(verbose)
    widths = [max(len(_HEAD[i]), *(len(r[i]) for r in rows)) for i in range(3)]
    pad = " " * (sum(widths) + 6)

    def line(name: str, kernel: str, parent: str, words: str) -> str:
        return (f"{name:<{widths[0]}}  {kernel:<{widths[1]}}  {parent:<{widths[2]}}  "
                f"{words}").rstrip()

    out = [line(*_HEAD)]
    for name, kernel, parent, words in rows:
        out.append(line(name, kernel, parent, words[0]))
        out.extend((pad + w).rstrip() for w in words[1:])
    return "\n".join(out) + "\n"


def _value(value: object) -> object:
    return sorted(value) if isinstance(value, frozenset) else value


def profile_json(profile: KernelProfile) -> dict[str, object]:
    parent = PROFILES.get(profile.parent)
    return {
        "name": profile.name,
        "kernel": profile.kernel,
        "parent": profile.parent or None,
        "description": profile.description,
        "differs": {k: {"value": _value(v), "words": describe_setting(k, v)}
                    for k, v in differences(profile, parent).items()} if parent else {},
        "settings": {k: _value(v) for k, v in profile.settings().items()},
    }


def profiles_json() -> list[dict[str, object]]:
    return [profile_json(p) for p in PROFILES.values()]
