"""The operational catalog: every source file a notice, every `step<N>_<task>` series a batch.

- `schema` the tables, `engine` connections (SQLite or PostgreSQL), `time` the catalog's clock
- `store` the only place a notice changes state (claim, heartbeat, finish, reclaim, release, reset)
- `claims` the ordered claim rules, each with its refusal; `gates` the level gates; `schedules` the run queue's
  frozen selections; `register` a case directory into the catalog; `layout` a registered case as loading needs it
- `notices` the reads the engine asks; `views` the frames operators print
"""
