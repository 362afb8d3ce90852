"""The operator's actions, each once: one function per action, taking a `Context` (the settings read once, and the
catalog, the cluster and the Dagster instance opened when first needed), returning typed results, telling
progress through callbacks and raising only `Problem`s for what is expected.

The CLI and the notebook present them (arguments and lines; frames and plots); test fixtures and benchmarks
call them as an operator would.

- `context` what an action works with          - `cases` init, register, drop, pause, resume
- `loading` load (level by level), verify       - `scheduling` select, schedule, watch, cancel, saved selections
- `notices` reset, release, history, locks, status
- `doctor` each part checked, with its fix      - `planning` a case's predicted wall time
- `local` the local cluster: up, down, list     - `celery` a Celery worker's command
"""
