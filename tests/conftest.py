"""Suite-wide settings: everything under tests/integration/ starts processes (libFuzzer
workers, the command line, QEMU) and is marked ``slow``, so the everyday run
(``pytest -m "not slow"``) leaves it out; CI runs everything (tests/README.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

INTEGRATION = Path(__file__).resolve().parent / "integration"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if INTEGRATION in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.slow)
