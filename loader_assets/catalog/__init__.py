"""The operational catalog: every source file a notice, every `step<N>_<task>` series a batch.

- `schema` the tables, `migrations` their history, `database` connections (SQLite or PostgreSQL; a catalog out of
  reach is a `CatalogDown` raised where every transaction starts), `time` the catalog's clock
- `store` the only place a notice changes state (claim, heartbeat, finish, give back, reclaim, release, reset)
- `claims` the ordered claim rules, each with its refusal; `gates` the level gates; `schedules` the run queue's
  frozen selections; `register` a case directory into the catalog; `retire` a case out of it; `layout` a
  registered case as loading needs it; `chunk_checks` the kept census of each child chunk
- `notices` the reads the engine asks; `views` the frames operators print
"""
