"""What the runner does with exceptions raised by node code (RELIABILITY.md family 35).

The engine isolates nodes with ``except Exception``, but node code (a python-function body, a
third-party library) can also raise ``SystemExit`` (``sys.exit()``), ``KeyboardInterrupt`` or
``GeneratorExit``; let through, they end the event loop and the runner with it, and a deploy is
never answered. Those are the node's failure like any other error. Two ``BaseException``s are
not: a ``CancelledError`` while the running task is being cancelled (the engine stopping its
own tasks: swallowing it would leave a deploy or shutdown waiting forever) and the watchdog's
``WatchdogInterrupt``, which the frame that armed it handles.
"""

from __future__ import annotations

import asyncio

from edge_runner.runtime.watchdog import WatchdogInterrupt


def is_node_failure(exc: BaseException) -> bool:
    """Whether ``exc``, raised by node code, is contained as that node's error."""
    if isinstance(exc, Exception):
        return True
    if isinstance(exc, WatchdogInterrupt):
        return False
    if isinstance(exc, asyncio.CancelledError):
        task = asyncio.current_task() if _loop_running() else None
        # The node raised (or awaited something that was cancelled) on its own accord.
        return task is None or task.cancelling() == 0
    return True


def describe_failure(exc: BaseException) -> str:
    """``SystemExit: 3`` style text for a contained exception."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
