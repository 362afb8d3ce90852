"""Dagster only: thin definitions over the engine, and the translation of its reports into Dagster events.

- `assets` per case: chunk-partitioned load assets and the validation assets carrying the blocking checks
- `jobs` the batched `load_notices` job; `sensors` schedules, saved selections, level gates, stale sweeper
- `events` engine reports → materializations, check results, failures; `runner` the engine's runner on Dagster
- `resources` catalog and cluster; `partitions` per-case chunk partitions; `instance` the Dagster instance;
  `celery` the executor (in process, or Celery) and the Celery workers' app;
  `runs` runs in the instance
"""
