"""Fail fast while a store is down: the circuit breaker in front of the service's stores.

Without it every request pays the store's timeout in turn: BentoML runs a worker's sync
handlers one at a time, so with a frozen Redis (0.5 s socket timeout) 32 concurrent
callers queued for seconds and got BentoML's 504 instead of a 503.

After a connection error or a timeout the store is marked down for ``retry_seconds``:
every call in that interval fails at once with :class:`StoreDown`, without touching the
store. Once the interval has passed, one call at a time goes through as a probe: its
success marks the store up again, its failure keeps it down for another interval. The
other calls keep failing fast while the probe runs. Requests and readiness checks both
probe, so the store is found up again without traffic too.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


class StoreDown(Exception):
    """The store is marked down (the message is its last error); nothing was tried."""


class CircuitBreaker:
    """Marks one store down after a failure; lets one probe through per ``retry_seconds``.

    ``clock`` is a monotonic clock in seconds (tests pass their own).
    """

    def __init__(
        self, name: str, retry_seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.name = name
        self.retry_seconds = retry_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._error: str | None = None  # None: the store is up
        self._retry_at = 0.0
        self._probing = False

    @property
    def error(self) -> str | None:
        """Why the store is marked down; None while it is up."""
        return self._error

    def call(
        self,
        function: Callable[P, R],
        failures: tuple[type[BaseException], ...],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> R:
        """``function(*args, **kwargs)``, unless the store is down (:class:`StoreDown`).

        An exception in ``failures`` marks the store down and propagates; any other
        exception propagates without changing the store's state.
        """
        probe = self._enter()
        try:
            result = function(*args, **kwargs)
        except failures as error:
            self._finish(probe, _first_line(error))
            raise
        except BaseException:
            if probe:
                with self._lock:
                    self._probing = False
            raise
        self._finish(probe, None)
        return result

    def _enter(self) -> bool:
        """Whether the caller is the probe; raises :class:`StoreDown` when it may not go."""
        with self._lock:
            if self._error is None:
                return False
            if self._probing or self._clock() < self._retry_at:
                raise StoreDown(self._error)
            self._probing = True
            return True

    def _finish(self, probe: bool, error: str | None) -> None:
        with self._lock:
            if probe:
                self._probing = False
            if error is None:
                self._error = None
            else:
                self._error = error
                self._retry_at = self._clock() + self.retry_seconds


def _first_line(error: BaseException) -> str:
    """The error's first line (drivers add hints and URLs on the following ones)."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
