"""A serving worker ends when the ``bentoml serve`` process that supervises it dies.

BentoML's supervisor (circus: the ``bentoml serve`` process, shown as ``circusd``) starts
each worker in a session of its own and hands it the listening socket. Killed without a
chance to stop its workers (``kill -9``, the OOM killer), it used to leave them running:
unsupervised, still answering on the port and holding it, so the next ``make serve`` could
not bind. :func:`exit_with_parent`, called once by the service at start-up, starts a
watchdog thread that notices the parent is gone (the worker was re-parented) and stops the
worker: SIGTERM to itself (the server's graceful shutdown: the socket closes, the prediction
logs close), then, if it is still running ``GRACE_SECONDS`` later, an immediate exit.

A server started by this project (``make serve``, the demo, the tests) has the pid of its
``bentoml serve`` process in its environment (``CHURN_SERVE_SUPERVISOR_PID``), inherited
by the workers: a worker whose parent at start-up is another process was orphaned while
it was still importing, and stops at once. A server started otherwise (the Kubernetes
chart runs ``bentoml serve`` itself) has only the watchdog.

A thread comparing ``os.getppid()`` rather than Linux's ``PR_SET_PDEATHSIG``: the kernel
sends that signal when the *thread* that forked the worker ends, which is not the
supervisor's death, and it is Linux only.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time

# The pid of the `bentoml serve` process, in the environment of the server's processes.
SUPERVISOR_VARIABLE = "CHURN_SERVE_SUPERVISOR_PID"
POLL_SECONDS = 0.5
GRACE_SECONDS = 5.0

log = logging.getLogger(__name__)
_started: threading.Thread | None = None


def exit_with_parent(
    poll_seconds: float = POLL_SECONDS, grace_seconds: float = GRACE_SECONDS
) -> threading.Thread:
    """Stop this process when its parent dies (once per process; later calls return the
    running watchdog)."""
    global _started
    if _started is not None and _started.is_alive():
        return _started
    parent: int | None = os.getppid()
    if os.environ.get(SUPERVISOR_VARIABLE, str(parent)) != str(parent):
        parent = None  # orphaned before it started: its supervisor is gone already
    _started = threading.Thread(
        target=_watch,
        args=(parent, poll_seconds, grace_seconds),
        name="exit-with-parent",
        daemon=True,
    )
    _started.start()
    return _started


def _watch(parent: int | None, poll_seconds: float, grace_seconds: float) -> None:
    while parent is not None and os.getppid() == parent:
        time.sleep(poll_seconds)
    log.error(
        "the supervising process (pid %s) is gone: stopping this worker (pid %d)",
        parent if parent is not None else "that started it",
        os.getpid(),
    )
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(grace_seconds)
    log.error("still running %.0f s after SIGTERM: exiting now", grace_seconds)
    os._exit(1)
