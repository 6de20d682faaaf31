"""Objects that belong to one asyncio event loop (Redis clients, queues, tasks cannot cross loops)."""

from __future__ import annotations

import asyncio
import functools
import weakref
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def per_loop(factory: Callable[[], T]) -> Callable[[], T]:
    """A getter that makes one `factory()` per running event loop, dropped with its loop."""
    instances: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    @functools.wraps(factory)
    def get() -> T:
        loop = asyncio.get_running_loop()
        if loop not in instances:
            instances[loop] = factory()
        return instances[loop]

    return get
