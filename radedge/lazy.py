"""Module attributes imported on first use, so `import radedge` (and a decoding worker) stays cheap."""
from __future__ import annotations

import importlib
from typing import Any, Callable, Mapping


def lazy_getattr(package: str, targets: Mapping[str, str]) -> Callable[[str], Any]:
    """A module-level `__getattr__` for `package`: `targets` maps an attribute name to the module
    that defines it, imported when the attribute is first asked for."""

    def __getattr__(name: str) -> Any:
        if name in targets:
            return getattr(importlib.import_module(targets[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
