"""One measurement per fresh interpreter: its peak RSS and load time are then that model's alone.

In one long process every model loaded before (and torch, once imported) stays resident, so a later
case's RSS would include them. Each variant therefore runs in a spawned child process (no fork: no
inherited threads or memory); the child returns plain rows.
"""
from __future__ import annotations

import multiprocessing as mp
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Callable


def fresh(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """fn(*args, **kwargs) in a new interpreter; its exceptions are re-raised here."""
    with ProcessPoolExecutor(max_workers=1, mp_context=mp.get_context("spawn")) as pool:
        return pool.submit(fn, *args, **kwargs).result()
