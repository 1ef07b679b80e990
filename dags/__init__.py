"""The project's DAGs. Every task process imports this package (each DAG file imports
``dags.assets``), so the task logs' setup happens here, once per process."""

from core.logs import configure_logging

configure_logging()
