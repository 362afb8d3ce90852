"""Dagster only: thin definitions over the engine, and the translation of its reports into Dagster events.

- `assets` per case: chunk-partitioned load assets and the validation assets carrying the blocking checks
- `jobs` the batched `load_notices` job (one graph, any executor) and the `sweep` job
- `sensors` schedules, saved selections, level gates, the stale sweeper, case overviews: read and request only
- `events` engine reports → materializations, observations, check results; step failures → problems
- `resources` catalog and cluster; `chunk_partitions` per-case chunk partitions; `instance` the Dagster instance
  (written by `init`, then opened); `executors` the executor (in process, a process per step, or Celery);
  `celery` the Celery executor's and workers' config
- `platform` what the operations layer does through Dagster: partitions, reloads, the daemon, runs in this process
"""
