"""The models a running service answers with, kept in step with the registry aliases.

A background thread re-reads the aliases every ``CHURN_SERVE_MODEL_REFRESH_SECONDS``. When an
alias points at a new version, that version is loaded and checked first; only then does
the service switch (one reference assignment, so a request sees the old or the new model,
never half of one). A load that fails leaves the old model serving and is reported (log,
``churn_model_reload_failures_total``, :attr:`LiveModels.last_error`). When the registry is
unreachable at start the service is simply not ready and keeps retrying.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from mlflow import MlflowClient

from core.settings import Settings
from core.spec import ModelSpec
from models.registry import CHALLENGER, CHAMPION, alias_version
from models.tracking import configure_mlflow
from serving.model import LoadedModel, ModelLoadError, load_version

log = logging.getLogger(__name__)


class LiveModels:
    """Champion (and, when A/B is on, challenger) currently served."""

    def __init__(
        self,
        settings: Settings,
        spec: ModelSpec,
        on_failure: Callable[[str, str], None] | None = None,
        on_swap: Callable[[str, int], None] | None = None,
    ) -> None:
        self.settings = settings
        self.spec = spec
        self.aliases = (CHAMPION,) if settings.serving.ab_mode == "off" else (CHAMPION, CHALLENGER)
        self.models: dict[str, LoadedModel | None] = dict.fromkeys(self.aliases)
        self.last_error: str | None = None
        self._failed: dict[str, int] = {}  # alias -> version that failed (not retried)
        self._missing: set[str] = set()  # optional aliases not set (warned once)
        self._on_failure = on_failure
        self._on_swap = on_swap
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._client: MlflowClient | None = None  # configured on the first registry answer

    def get(self, alias: str) -> LoadedModel | None:
        return self.models.get(alias)

    def refresh(self) -> bool:
        """One pass over the aliases; False when the registry could not be read, or no
        champion is set while none is loaded."""
        answered = True
        for alias in self.aliases:
            try:
                self._client = self._client or configure_mlflow(self.settings)
                version = alias_version(
                    self.settings, self.spec.registered_model, alias, self._client
                )
            except Exception as error:  # registry unreachable: keep what is served
                self._report(alias, f"registry unreachable: {error}")
                answered = False
                continue
            current = self.models[alias]
            if version is None:  # a missing challenger is no error
                if alias == CHAMPION and current is None:
                    self._report(alias, f"alias {alias!r} is not set in the registry")
                    answered = False
                elif alias == CHAMPION:
                    continue  # keep serving the champion that is loaded
                elif current is not None:
                    # Removed on purpose (a rejected challenger): it stops taking traffic.
                    log.warning("alias %r removed: v%s no longer serves", alias, current.version)
                    self.models[alias] = None
                    self._missing.add(alias)
                elif alias not in self._missing:
                    log.warning("alias %r is not set: the champion answers alone", alias)
                    self._missing.add(alias)
                continue
            self._missing.discard(alias)
            if (current and current.version == version) or self._failed.get(alias) == version:
                continue
            try:
                loaded = load_version(self.settings, self.spec, version, alias)
            except ModelLoadError as error:
                self._failed[alias] = version
                kept = f"v{current.version}" if current else "nothing"
                self._report(alias, f"{error}; still serving {kept}")
                continue
            self.models[alias] = loaded
            self._failed.pop(alias, None)
            log.info("now serving %s v%s (was %s)", alias, version, current and current.version)
            if self._on_swap:
                self._on_swap(alias, version)
        return answered

    def _report(self, alias: str, message: str) -> None:
        self.last_error = f"{alias}: {message}"
        log.error("model %s", self.last_error)
        if self._on_failure:
            self._on_failure(alias, message)

    def start(self) -> None:
        """Run :meth:`refresh` in a daemon thread until :meth:`stop`."""
        self._thread = threading.Thread(
            target=self._run, name=f"{self.spec.name}-model-refresh", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        interval = self.settings.serving.model_refresh_seconds
        # Not serving yet (registry was down at start): retry sooner, no crash loop.
        while not self._stop.wait(interval if self.models[CHAMPION] else min(interval, 2.0)):
            started = time.monotonic()
            self.refresh()
            log.debug("alias refresh took %.3fs", time.monotonic() - started)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
