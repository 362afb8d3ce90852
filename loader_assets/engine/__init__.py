"""The loading engine, free of Dagster: what every load path (Dagster assets and jobs, the CLI, notebooks) runs.

- `load` claim → heartbeat → LOAD DATA on the workers → finish, returning a `LoadReport`
- `plan` a frozen list of notices into run plans (by case, level and worker); `targets` where a notice's rows live
- `validate` the checks of a validation level on the workers (`chunk_census` per chunk), and the gate they record
- `recovery` the one rule that takes back notices of dead or lapsed holders; `reconcile` workers vs the catalog;
  `sweep` both on a timer; `interruption` a signal stopping this process's loads
- `level_state` the one judgement of "level loaded" and "validation due"; `runner` a case level by level through
  an `Executor` (`defs.platform` supplies Dagster's); `sizing` a case's sizes for the capacity model
"""
