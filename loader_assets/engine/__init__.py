"""The loading engine, free of Dagster: what every load path (Dagster assets and jobs, the CLI, notebooks) runs.

- `load` claim → heartbeat → LOAD DATA on the workers → finish, returning a `LoadReport`
- `plan` a frozen list of notices into run plans (by case, level and worker)
- `validate` the checks of a validation level on the workers, and the gate they record
- `level_state` the one judgement of "level loaded" and "validation due"
- `runner` a case level by level through an `Executor` (`defs.runner` supplies Dagster's)
"""
