"""Keys of the run tags loader_assets writes and reads: the only place a `loader/` tag key is spelled."""

CASE = "loader/case"
LEVEL = "loader/level"
WORKER = "loader/worker"  # the run-queue limit per worker is set on this key
SCHEDULE = "loader/schedule"  # the `schedules` row a run was requested for
SELECTION = "loader/selection"  # the saved selection a run was requested for
GATE = "loader/gate"  # <case>:<level>:<table>@<generation>,... a validation run was requested for
PRIORITY = "dagster/priority"  # Dagster's own: higher runs first
DESCRIPTION = "loader/description"  # a load run in words: case, level, worker, notices
SWEEP = "loader/sweep"  # a run of the sweep job (one at a time)
