"""Watchdog for user code (python-function bodies): CPU hogs and memory hogs are interrupted.

How it works (RELIABILITY family 27):

* Each engine has its own watchdog (an engine service, ``watchdog_of(services)``); every
  python-function call pushes a ``Frame`` on its ``stack``; ``node.send`` from the
  body pauses the frame's clock while downstream nodes run, so a frame's ``own`` time is time
  spent in *its* body only (a generator that sends 200 000 messages is not a hog; a
  ``while True: pass`` is).
* A daemon thread wakes every ``interval`` seconds and looks at the innermost frame. When its own
  time passes the node's limit, or the process RSS passes the soft memory limit while a body is
  running, it asks the main thread to stop it: ``signal.pthread_kill(main, SIGUSR2)``; the
  handler (running in the main thread between bytecodes, also interrupting ``time.sleep``)
  re-checks that the same frame is still innermost and raises ``WatchdogInterrupt`` there.
  When the engine runs outside the main thread, ``PyThreadState_SetAsyncExc`` is used instead
  (pure-Python loops only).
* ``WatchdogInterrupt`` derives from ``BaseException`` so ``except Exception`` in user code does
  not swallow it; if a bare ``except:`` does, the next tick interrupts again.

Hot-path cost per call: one small object, two ``perf_counter()`` calls, a list append/pop; the
thread itself wakes 20 times a second and holds the GIL for microseconds.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from typing import Any

from edge_runner.contract import Services

log = logging.getLogger("edge_runner.watchdog")

DEFAULT_LIMIT_S = 4.0  # with the 50 ms tick a hog is stopped well inside 5 s
DEFAULT_RSS_LIMIT_MIB = int(os.environ.get("MANIFOLD_FUNCTION_RSS_LIMIT_MIB", "1024"))
INTERVAL_S = 0.05
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
perf_counter = time.perf_counter


class WatchdogInterrupt(BaseException):
    """Raised inside a function body that ran past its time limit or memory limit."""

    def __init__(self, reason: str = "time limit exceeded") -> None:
        super().__init__(reason)
        self.reason = reason


class Frame:
    """One running function body: its limit and its own (not downstream) time."""

    __slots__ = ("in_own", "label", "limit", "own", "reason", "seg")

    def __init__(self, label: str, limit: float) -> None:
        self.label = label
        self.limit = limit
        self.own = 0.0
        self.seg = perf_counter()
        self.in_own = True
        self.reason = ""

    def pause(self) -> None:
        """Called before the body hands a message downstream; raises if it already overran."""
        now = perf_counter()
        self.own += now - self.seg
        self.in_own = False
        if self.own > self.limit:
            self.in_own = True
            raise WatchdogInterrupt(f"time limit of {self.limit:g} s exceeded")

    def resume(self) -> None:
        self.seg = perf_counter()
        self.in_own = True


def rss_mib() -> float:
    try:
        with open("/proc/self/statm", "rb") as fh:
            return int(fh.read().split()[1]) * _PAGE / 1048576
    except (OSError, IndexError, ValueError):
        return 0.0


class Watchdog:
    """One engine's watchdog: its frames, its thread. Users ``acquire``/``release`` it."""

    def __init__(self, interval: float = INTERVAL_S) -> None:
        self.stack: list[Frame] = []
        self.interval = interval
        self.rss_limit_mib: float = DEFAULT_RSS_LIMIT_MIB
        self.interrupts = 0
        self._users = 0
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._target_ident = 0
        self._use_signal = False
        self._pending: Frame | None = None

    # ------------------------------------------------------------------ lifecycle
    def acquire(self) -> None:
        """Start protecting the calling thread (the engine's event-loop thread)."""
        with self._lock:
            self._users += 1
            if self._thread is not None and self._thread.is_alive():
                return
            self._target_ident = threading.get_ident()
            self._use_signal = threading.current_thread() is threading.main_thread()
            if self._use_signal:
                _arm(self)
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="manifold-watchdog", daemon=True)
            self._thread.start()

    def release(self) -> None:
        with self._lock:
            self._users = max(0, self._users - 1)
            if self._users:
                return
        self.close()

    def close(self) -> None:
        """Stop watching (engine shutdown, or the last user released it)."""
        with self._lock:
            self._users = 0
            _disarm(self)
            if self._thread is None:
                return
            self._stop.set()
            thread, self._thread = self._thread, None
        thread.join(timeout=1.0)

    # ------------------------------------------------------------------ watching
    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            stack = self.stack
            try:
                frame = stack[-1]
            except IndexError:
                continue
            if not frame.in_own:
                continue
            own = frame.own + (perf_counter() - frame.seg)
            if own > frame.limit:
                frame.reason = f"time limit of {frame.limit:g} s exceeded"
                self._interrupt(frame)
            elif self.rss_limit_mib:
                rss = rss_mib()
                if rss > self.rss_limit_mib:
                    frame.reason = (
                        f"memory limit exceeded (process RSS {rss:.0f} MiB > "
                        f"{self.rss_limit_mib:.0f} MiB)"
                    )
                    self._interrupt(frame)

    def _interrupt(self, frame: Frame) -> None:
        self.interrupts += 1
        log.warning("watchdog: interrupting %s: %s", frame.label, frame.reason)
        if self._use_signal:
            self._pending = frame
            signal.pthread_kill(self._target_ident, signal.SIGUSR2)
            return
        import ctypes  # only for engines running outside the main thread

        if self.stack and self.stack[-1] is frame and frame.in_own:
            ctypes.pythonapi.PyThreadState_SetAsyncExc(
                ctypes.c_ulong(self._target_ident), ctypes.py_object(WatchdogInterrupt)
            )

    def on_signal(self, _signum: int, _frame: Any) -> None:
        frame, self._pending = self._pending, None
        stack = self.stack
        if frame is not None and stack and stack[-1] is frame and frame.in_own:
            raise WatchdogInterrupt(frame.reason or "time limit exceeded")


WATCHDOG_KEY = "function.watchdog"


def watchdog_of(services: Services) -> Watchdog:
    """The engine's watchdog (an engine service)."""
    return services.get(WATCHDOG_KEY, Watchdog)


# Signal handlers are process-wide while watchdogs are per engine: one handler passes SIGUSR2 to
# every armed watchdog, and each raises only for the frame it asked to interrupt.
_ARMED: list[Watchdog] = []


def _arm(watchdog: Watchdog) -> None:
    signal.signal(signal.SIGUSR2, _on_signal)
    if watchdog not in _ARMED:
        _ARMED.append(watchdog)


def _disarm(watchdog: Watchdog) -> None:
    if watchdog in _ARMED:
        _ARMED.remove(watchdog)


def _on_signal(signum: int, frame: Any) -> None:
    for watchdog in list(_ARMED):
        watchdog.on_signal(signum, frame)
