"""Logging and warnings of the platform's processes, set up in one place.

Airflow task logs show what a task's own code logs: the project's loggers
(``logging.getLogger(__name__)`` in data/, models/, monitoring/, ...) propagate to the root
logger at the level Airflow is configured with (``CHURN_AIRFLOW_LOG_LEVEL``, INFO by
default), and Airflow writes the root logger's records into the task log.

MLflow writes its log lines to stderr through a handler of its own, and Airflow tags a task's
stderr as ERROR. ``MLFLOW_CONFIGURE_LOGGING=false`` in the Airflow environment keeps MLflow
from installing that handler, and :func:`configure_logging` removes it where MLflow was
imported first: MLflow's INFO lines stay INFO. What MLflow prints (``eprint``: "Created
version '2' of model ...") goes through :func:`stderr_to_log` where the project calls it.

Warnings that a library raises over and over are filtered once per process, at their
source (:data:`REPEATED_WARNINGS`): as ``PYTHONWARNINGS`` in the Airflow environment
(:func:`python_warnings`), which Python applies when a process starts. A filter installed
while Airflow imports a DAG file would not last: Airflow imports DAG files inside
``warnings.catch_warnings()``, which puts the filters back as they were.
"""

from __future__ import annotations

import builtins
import contextlib
import io
import logging
import os
import re
import warnings
from collections.abc import Iterator

# The project's top-level packages: their loggers carry the project's own lines.
PROJECT_PACKAGES = ("core", "data", "expectations", "models", "monitoring", "serving", "cli")

# (category, start of the message, module of the code that warns), as ``python -W`` takes
# them: builtin categories only, so that setting a filter up imports nothing.
REPEATED_WARNINGS: tuple[tuple[str, str, str], ...] = (
    # skops (MLflow's sklearn format) looks each scipy ufunc of a model up in every loaded
    # module (skops.io._utils.whichmodule), and Airflow's deprecated compatibility modules
    # (airflow.utils.timezone, ...) answer any name with a DeprecatedImportWarning, a
    # FutureWarning that skops's own filter (DeprecationWarning) lets through: about 1,160
    # lines in each of the train, register and gate task logs, each naming another ufunc,
    # so that no "once" filter folds them.
    ("FutureWarning", "The `airflow.", "skops.io._utils"),
)

# Third-party loggers kept at WARNING: what they say at INFO is routine. MLflow sets these
# levels when it configures its own logging; Great Expectations says at INFO, about 200
# times per validation, which of its functions it does not document.
QUIET_LOGGERS = ("alembic", "huey", "sqlalchemy.engine", "great_expectations")


def python_warnings() -> str:
    """:data:`REPEATED_WARNINGS` as a ``PYTHONWARNINGS`` value (``action:message:category:
    module``, comma-separated)."""
    return ",".join(
        f"ignore:{message}:{category}:{module}" for category, message, module in REPEATED_WARNINGS
    )


def filter_repeated_warnings() -> None:
    """Install the filters of :data:`REPEATED_WARNINGS` in this process, as ``-W`` would (a
    second call changes nothing: ``warnings.filterwarnings`` replaces an identical filter)."""
    for category, message, module in REPEATED_WARNINGS:
        warnings.filterwarnings(
            "ignore",
            message=re.escape(message),
            category=getattr(builtins, category),
            module=re.escape(module) + r"\Z",
        )


def route_mlflow_logs() -> None:
    """MLflow's loggers write through logging (the root logger's handlers), not to stderr."""
    for name in ("mlflow", *QUIET_LOGGERS):
        logger = logging.getLogger(name)
        # MLflow's own handler writes to sys.stderr (mlflow.utils.logging_utils).
        logger.handlers = [h for h in logger.handlers if not _writes_to_mlflow_stream(h)]
        logger.propagate = True
        logger.setLevel(logging.NOTSET if name == "mlflow" else logging.WARNING)


def _writes_to_mlflow_stream(handler: logging.Handler) -> bool:
    return type(getattr(handler, "stream", None)).__name__ == "MlflowLoggingStream"


class _LineLog(io.TextIOBase):
    """A text stream whose every line becomes an INFO record of ``logger``."""

    def __init__(self, logger: logging.Logger) -> None:
        self._logger, self._partial = logger, ""

    def write(self, text: str) -> int:
        lines = (self._partial + text).split("\n")
        self._partial = lines.pop()
        for line in lines:
            if line.strip():
                self._logger.info("%s", line.rstrip())
        return len(text)

    def flush(self) -> None:
        if self._partial.strip():
            self._logger.info("%s", self._partial.rstrip())
        self._partial = ""


@contextlib.contextmanager
def stderr_to_log(logger: logging.Logger) -> Iterator[None]:
    """What is printed to stderr inside the block (MLflow's ``eprint``) becomes INFO lines
    of ``logger``: a task log tags stderr ERROR."""
    stream = _LineLog(logger)
    try:
        with contextlib.redirect_stderr(stream):
            yield
    finally:
        stream.flush()


def configure_logging(level: str | int | None = None) -> None:
    """Set up a process's logging: the project's loggers at ``level`` (default: the Airflow
    logging level of this environment, else INFO), MLflow through logging, and the repeated
    warnings filtered. Called once where a process starts (the DAG package, for every task
    process); calling it again is harmless."""
    level = level or os.environ.get("AIRFLOW__LOGGING__LOGGING_LEVEL") or "INFO"
    for name in PROJECT_PACKAGES:
        logger = logging.getLogger(name)
        logger.setLevel(level)
        logger.propagate = True
    route_mlflow_logs()
    filter_repeated_warnings()
