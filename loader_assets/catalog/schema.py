"""Tables of the operational catalog (the old loader's "task DB", made finer).

Column names here are the names the query language, the CLI and the docs use. Timestamps are naive UTC.
Bump SCHEMA_VERSION whenever a table changes and add the step to `migrations.STEPS`.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    ColumnElement,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy import case as sql_case

SCHEMA_VERSION = 7  # each step from 1 is in `migrations`

NOTICE_STATUSES = ("ready", "running", "done", "failed")
SCHEDULE_STATES = ("pending", "submitted", "cancelled")
CASE_STATES = ("active", "paused")
TABLE_KINDS = ("director", "child", "regular")
GATE_STATUSES = ("pending", "passed", "failed")
# Outcome of one attempt: `running` until finished; `lost` when its lease was taken back (stale, dead owner,
# released by hand) — the rows it may have written are dropped by the worker loader; `released` when it ended
# through no fault of its file (a server down, an interrupt): not counted against the notice; `superseded` when
# a later load replaced a done one.
ATTEMPT_OUTCOMES = ("running", "done", "failed", "lost", "released", "superseded")

metadata = MetaData()

catalog_info = Table(
    "catalog_info",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", String(255), nullable=False),
)

cases = Table(
    "cases",
    metadata,
    Column("case", String(64), primary_key=True),
    Column("database", String(64), nullable=False, unique=True),
    Column("num_stripes", Integer),
    Column("num_sub_stripes", Integer),
    Column("overlap", Float),
    Column("charset", String(32), nullable=False, default="latin1"),
    Column("dialect", JSON, nullable=False),  # per format: fields_terminated_by, enclosed_by, ...
    Column("root", Text, nullable=False),  # the one place the directory before step<N>_<task> is stored
    Column("comment", Text),
    Column("created_at", DateTime, nullable=False),
    Column("state", String(16), nullable=False, default="active"),
    # Orphan child rows (key absent from the director) fail level 4 instead of warning (Qserv loads them).
    Column("strict_children", Boolean, nullable=False, default=False, server_default=false()),
    Column("max_num_warnings", Integer, nullable=False, default=0, server_default=text("0")),  # per file
    # Batches still being written: nothing of the case is claimed (it shows as `registering`).
    Column("registering", Boolean, nullable=False, default=False, server_default=false()),
    # A drop under way (or cut short: a server down): paused, and refused as such until `drop` finishes it.
    Column("dropping", Boolean, nullable=False, default=False, server_default=false()),
    CheckConstraint(f"state IN {CASE_STATES}", name="case_state"),
)


def case_state() -> ColumnElement[str]:
    """A case's state as it reads and is refused: `dropping` (a drop under way or cut short), `registering` (its
    batches being written), else its own (`active`, `paused`)."""
    return sql_case((cases.c.dropping, "dropping"), (cases.c.registering, "registering"), else_=cases.c.state)


tables = Table(
    "tables",
    metadata,
    Column("case", String(64), ForeignKey("cases.case"), primary_key=True),
    Column("name", String(64), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("level", Integer, nullable=False),
    Column("director_table", String(64)),  # for a child: the director it depends on
    Column("director_key", String(64)),
    Column("latitude_key", String(64)),
    Column("longitude_key", String(64)),
    Column("columns", JSON, nullable=False),  # [{"name": ..., "type": ...}] as in the table JSON
    Column("indexes", JSON, nullable=False),  # index JSON documents as given
    Column("dialect", JSON),  # per format: the table JSON's own options over the case's
    CheckConstraint("kind IN ('director', 'child', 'regular')", name="table_kind"),
)

batches = Table(
    "batches",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("case", String(64), ForeignKey("cases.case"), nullable=False),
    Column("table", String(64), nullable=False),
    Column("directory", Text, nullable=False),  # relative to the case root
    Column("step", Integer),  # from a step<N>_<task> directory, NULL for other shapes
    Column("task", Integer),
    Column("level", Integer, nullable=False),
    Column("priority", Integer, nullable=False, default=0),
    Column("comment", Text),
    UniqueConstraint("case", "table", "directory", name="batch_directory"),
)

notices = Table(
    "notices",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("case", String(64), ForeignKey("cases.case"), nullable=False),
    Column("batch", Integer, ForeignKey("batches.id"), nullable=False),
    Column("table", String(64), nullable=False),
    Column("level", Integer, nullable=False),
    Column("chunk", Integer),  # NULL for regular tables
    Column("overlap", Boolean, nullable=False, default=False),
    Column("path", Text, nullable=False),  # relative to the case root
    Column("format", String(16), nullable=False),  # csv | tsv | txt | parquet
    Column("size", BigInteger, nullable=False),
    Column("mtime", Float, nullable=False),
    Column("changed", Boolean, nullable=False, default=False),  # size/mtime differ from a done load
    Column("status", String(16), nullable=False, default="ready"),
    Column("priority", Integer, nullable=False, default=0),
    Column("attempts", Integer, nullable=False, default=0),
    Column("rows", BigInteger),
    Column("worker", String(255)),
    Column("error", Text),
    Column("comment", Text),
    Column("attempt_id", Integer),  # the attempt that holds (or last held) the notice
    Column("locked_by", String(64)),  # run id
    Column("owner_host", String(255)),
    Column("owner_pid", Integer),
    Column("locked_at", DateTime),
    Column("heartbeat_at", DateTime),
    Column("lease_until", DateTime),
    Column("retry_after", DateTime),  # back-off after a failure
    Column("created_at", DateTime, nullable=False),
    Column("started_at", DateTime),
    Column("finished_at", DateTime),
    Column("updated_at", DateTime, nullable=False),
    UniqueConstraint("case", "path", name="notice_path"),
    CheckConstraint("status IN ('ready', 'running', 'done', 'failed')", name="notice_status"),
    Index("notices_status", "case", "level", "status"),
    Index("notices_chunk", "case", "table", "chunk"),
    Index("notices_locked_by", "locked_by"),
    Index("notices_attempt", "attempt_id"),  # finish/set_worker find the notice of an attempt
    Index("notices_batch", "batch"),
)

attempts = Table(
    "attempts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("notice", Integer, ForeignKey("notices.id"), nullable=False),
    Column("run_id", String(64), nullable=False),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("worker", String(255)),
    Column("started_at", DateTime, nullable=False),
    Column("finished_at", DateTime),
    Column("outcome", String(16), nullable=False, default="running"),
    Column("rows", BigInteger),
    Column("warnings", Integer),
    Column("error", Text),
    Column("fingerprint", JSON),  # of the key column, computed from the file while it loaded
    Index("attempts_notice", "notice"),
    Index("attempts_outcome", "outcome"),
)

level_gates = Table(
    "level_gates",
    metadata,
    Column("case", String(64), ForeignKey("cases.case"), primary_key=True),
    Column("level", Integer, primary_key=True),  # 2 or 4
    Column("table", String(64), primary_key=True),  # the validated table
    Column("status", String(16), nullable=False, default="pending"),
    Column("check_run", String(64)),
    Column("details", JSON),
    Column("updated_at", DateTime, nullable=False),
    # Bumped with every event that invalidates the verdict; a validation records it only if unchanged.
    Column("generation", Integer, nullable=False, default=0, server_default=text("0")),
    Column("validations", Integer, nullable=False, default=0, server_default=text("0")),  # started at it
    # The one validation running (a lock: validations of one table never overlap).
    Column("validating_run", String(64)),
    Column("validating_host", String(255)),
    Column("validating_pid", Integer),
    Column("validating_since", DateTime),
    Column("validating_until", DateTime),  # the lock's lease, renewed while it validates (NULL: taken before v7)
    CheckConstraint("status IN ('pending', 'passed', 'failed')", name="gate_status"),
)

# The census of a child chunk taken on its worker as soon as it loaded, with the version of the data it judged
# (the chunk's attempts and its director chunk's): level 4 recounts only the chunks whose version moved.
chunk_checks = Table(
    "chunk_checks",
    metadata,
    Column("case", String(64), ForeignKey("cases.case"), primary_key=True),
    Column("table", String(64), primary_key=True),
    Column("chunk", Integer, primary_key=True),
    Column("version", String(40), nullable=False),
    Column("census", JSON, nullable=False),
    Column("updated_at", DateTime, nullable=False),
)

selections = Table(
    "selections",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("query", Text, nullable=False),
    Column("target", String(16), nullable=False, default="notices"),  # notices | batches
    Column("priority", Integer, nullable=False, default=0),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("comment", Text),
    Column("created_at", DateTime, nullable=False),
)

# Alerts already delivered (by SMTP and/or webhook), so each goes out once, whatever restarts in between.
alerts_sent = Table(
    "alerts_sent",
    metadata,
    Column("key", String(255), primary_key=True),  # e.g. run:<id>, gate:<case>:<level>:<table>@<generation>
    Column("kind", String(16), nullable=False),  # run | gate | stall | parked
    Column("case", String(64)),
    Column("sent_at", DateTime, nullable=False),
)

# A frozen list of notices handed to the run queue (by `Selection.schedule()` or `loader-assets schedule`):
# the scheduler sensor groups it into runs by case, level and worker and marks it `submitted`.
schedules = Table(
    "schedules",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("notice_ids", JSON, nullable=False),
    Column("priority", Integer, nullable=False, default=0),
    Column("force", Boolean, nullable=False, default=False),
    Column("selection", String(64)),  # the saved selection or query text it came from, for the record
    Column("query", Text),
    Column("state", String(16), nullable=False, default="pending"),  # pending | submitted | cancelled
    Column("runs", JSON),  # run keys of the submitted runs
    Column("submitted_ids", JSON),  # notices already in runs; the others wait for their level's gate
    Column("created_at", DateTime, nullable=False),
    Column("submitted_at", DateTime),
    CheckConstraint(f"state IN {SCHEDULE_STATES}", name="schedule_state"),
)
