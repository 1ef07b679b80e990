"""The models a running service answers with, kept in step with the registry aliases.

A background thread re-reads the aliases every ``CHURN_SERVE_MODEL_REFRESH_SECONDS``. When an
alias points at a new version, that version is loaded and checked first; only then does
the service switch (one reference assignment, so a request sees the old or the new model,
never half of one). A load that fails leaves the old model serving and is reported (log,
``churn_model_reload_failures_total``, :attr:`LiveModels.last_error`), and is tried again
with back-off for as long as the alias still names that version (an artifact store that
was briefly away must not pin the old model for good): after one refresh interval, then
twice as long each time, at most :data:`MAX_RETRY_SECONDS` apart. Meanwhile
:meth:`LiveModels.state` says the alias lags the registry. When the registry is unreachable
at start the service is simply not ready and keeps retrying.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from mlflow import MlflowClient

from core.settings import Settings
from core.spec import ModelSpec
from models.registry import CHALLENGER, CHAMPION, alias_version
from models.tracking import configure_mlflow
from serving.model import LoadedModel, ModelLoadError, load_version

log = logging.getLogger(__name__)
MAX_RETRY_SECONDS = 60.0  # longest wait between two loads of a version that failed


@dataclass(frozen=True)
class LoadFailure:
    """A version that failed to load, and when it is tried again."""

    version: int
    attempts: int
    retry_at: float  # time.monotonic()
    error: str


@dataclass(frozen=True)
class AliasState:
    """What one alias serves against what the registry names.

    ``registry`` is the version at the last registry read (None: alias not set, or the
    registry never answered). ``error`` is set while the registry's version is not served
    because its load failed (the alias lags the registry); ``retry_in`` is then the
    seconds until the next try.
    """

    served: int | None
    registry: int | None
    error: str | None = None
    retry_in: float | None = None

    @property
    def behind(self) -> bool:
        """Whether serving lags the registry because the registry's version failed to load."""
        return self.error is not None


class LiveModels:
    """Champion (and, when A/B is on, challenger) currently served."""

    def __init__(
        self,
        settings: Settings,
        spec: ModelSpec,
        on_failure: Callable[[str, str], None] | None = None,
        on_swap: Callable[[str, int], None] | None = None,
        on_state: Callable[[str, AliasState], None] | None = None,
    ) -> None:
        self.settings = settings
        self.spec = spec
        self.aliases = (CHAMPION,) if settings.serving.ab_mode == "off" else (CHAMPION, CHALLENGER)
        self.models: dict[str, LoadedModel | None] = dict.fromkeys(self.aliases)
        self.last_error: str | None = None
        self._failed: dict[str, LoadFailure] = {}  # alias -> version that failed to load
        self._registry: dict[str, int | None] = dict.fromkeys(self.aliases)
        self._missing: set[str] = set()  # optional aliases not set (warned once)
        self._on_failure = on_failure
        self._on_swap = on_swap
        self._on_state = on_state
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._client: MlflowClient | None = None  # configured on the first registry answer

    def get(self, alias: str) -> LoadedModel | None:
        return self.models.get(alias)

    def state(self, alias: str) -> AliasState:
        """The version ``alias`` serves against the one the registry names."""
        current = self.models.get(alias)
        served = current.version if current else None
        registry = self._registry.get(alias)
        failure = self._failed.get(alias)
        if failure is None or failure.version != registry or registry == served:
            return AliasState(served, registry)
        retry_in = max(0.0, failure.retry_at - time.monotonic())
        return AliasState(served, registry, failure.error, round(retry_in, 1))

    def retry_delay(self, attempts: int) -> float:
        """Seconds before the next load of a version that failed ``attempts`` times."""
        interval = self.settings.serving.model_refresh_seconds
        return min(max(interval, MAX_RETRY_SECONDS), interval * 2 ** (attempts - 1))

    def refresh(self) -> bool:
        """One pass over the aliases; False when the registry could not be read, or no
        champion is set while none is loaded."""
        answered = True
        try:
            for alias in self.aliases:
                answered = self._refresh(alias) and answered
        finally:
            if self._on_state:
                for alias in self.aliases:
                    self._on_state(alias, self.state(alias))
        return answered

    def _refresh(self, alias: str) -> bool:
        """One alias: follow the registry (load a new version, retry a failed one)."""
        try:
            self._client = self._client or configure_mlflow(self.settings)
            version = alias_version(self.settings, self.spec.registered_model, alias, self._client)
        except Exception as error:  # registry unreachable: keep what is served
            self._report(alias, f"registry unreachable: {error}")
            return False
        self._registry[alias] = version
        current = self.models[alias]
        if version is None:  # a missing challenger is no error
            self._failed.pop(alias, None)
            if alias == CHAMPION and current is None:
                self._report(alias, f"alias {alias!r} is not set in the registry")
                return False
            if alias == CHAMPION:
                return True  # keep serving the champion that is loaded
            if current is not None:
                # Removed on purpose (a rejected challenger): it stops taking traffic.
                log.warning("alias %r removed: v%s no longer serves", alias, current.version)
                self.models[alias] = None
                self._missing.add(alias)
            elif alias not in self._missing:
                log.warning("alias %r is not set: the champion answers alone", alias)
                self._missing.add(alias)
            return True
        self._missing.discard(alias)
        if current and current.version == version:
            self._failed.pop(alias, None)
            return True
        failed = self._failed.get(alias)
        if failed and failed.version != version:
            failed = None  # the alias moved on: a new version, a fresh start
        if failed and time.monotonic() < failed.retry_at:
            return True  # backing off; the old model keeps serving
        started = time.monotonic()  # the back-off counts from the attempt's start
        try:
            loaded = load_version(self.settings, self.spec, version, alias)
        except ModelLoadError as error:
            attempts = failed.attempts + 1 if failed else 1
            delay = self.retry_delay(attempts)
            self._failed[alias] = LoadFailure(version, attempts, started + delay, str(error))
            kept = f"v{current.version}" if current else "nothing"
            self._report(alias, f"{error}; still serving {kept}; next try in {delay:g} s")
            return True
        self.models[alias] = loaded
        self._failed.pop(alias, None)
        log.info("now serving %s v%s (was %s)", alias, version, current and current.version)
        if self._on_swap:
            self._on_swap(alias, version)
        return True

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
