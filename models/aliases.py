"""The model registry's alias names.

A module of its own, without MLflow: the serving API's definition reads them in the process
that only loads it (see serving/service.py), and :mod:`models.registry` moves them.
"""

CHAMPION = "champion"
CHALLENGER = "challenger"
PREVIOUS_CHAMPION = "previous_champion"
