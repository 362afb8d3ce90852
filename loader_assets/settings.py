"""The environment of a loader_assets process, read once into one `Settings` object.

Every variable the package reads is read here, and only here (the README's configuration table lists them);
each entry point (the CLI, the notebook, Dagster's resources and definitions) reads the settings once and hands
them down. Credentials come from the environment only; nothing here is written anywhere.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from loader_assets.problems import BadInput

EXECUTORS = ("in_process", "multiprocess", "celery")


@dataclass(frozen=True)
class Alerts:
    """Where alerts go: an SMTP server and/or a webhook (a JSON POST); neither set: alerts are only logged."""

    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_user: str | None = None
    smtp_password: str = field(default="", repr=False)
    smtp_tls: bool = False  # STARTTLS
    mail_from: str = "loader-assets@localhost"
    mail_to: tuple[str, ...] = ()
    webhook: str | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.webhook or (self.smtp_host and self.mail_to))


@dataclass(frozen=True)
class Settings:
    state_dir: Path  # LOADER_STATE_DIR: the embedded catalog, local workers, default Dagster home
    catalog_url: str  # LOADER_CATALOG_URL, else a SQLite file in the state dir
    dagster_home: Path  # DAGSTER_HOME, else <state dir>/dagster
    dagster_pg_url: str | None = None  # LOADER_DAGSTER_PG_URL: the instance in PostgreSQL (no password in it)
    dagster_pg_password: str = field(default="", repr=False)  # LOADER_DAGSTER_PG_PASSWORD
    czar: str | None = None  # LOADER_CZAR
    workers: str | None = None  # LOADER_WORKERS: name=url,…
    worker_password: str = field(default="", repr=False)  # LOADER_WORKER_PASSWORD
    worker_tls: bool = False  # LOADER_WORKER_TLS
    worker_write_timeout: float = 60.0  # LOADER_WORKER_WRITE_TIMEOUT
    lease_seconds: float = 300.0  # LOADER_LEASE_SECONDS
    max_attempts: int = 3  # LOADER_MAX_ATTEMPTS
    runs_per_worker: int = 2  # LOADER_RUNS_PER_WORKER
    streams_per_worker: int = 2  # LOADER_STREAMS_PER_WORKER
    sensor_interval: int = 30  # LOADER_SENSOR_INTERVAL
    stall_seconds: float = 300.0  # LOADER_STALL_SECONDS
    executor: str = "in_process"  # LOADER_EXECUTOR
    celery_broker: str = "pyamqp://guest@127.0.0.1:5672//"  # LOADER_CELERY_BROKER
    celery_broker_from_env: bool = False  # set in the environment: definitions refer to it there, never copy it
    webserver: str = "127.0.0.1:3000"  # LOADER_DAGSTER_WEBSERVER
    mariadbd: str = "/usr/sbin/mariadbd"  # LOADER_MARIADBD
    mariadb_install_db: str = "/usr/bin/mariadb-install-db"  # LOADER_MARIADB_INSTALL_DB
    alerts: Alerts = Alerts()

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, state_dir: Path | None = None,
        default_state_dir: Path | None = None,
    ) -> Settings:  # fmt: skip
        """The settings of this process; a malformed value is a `BadSetting` naming the variable. `state_dir`
        overrides LOADER_STATE_DIR; `default_state_dir` stands in for it when it is not set (the notebook's
        repository `.state`)."""
        env = _Reader(os.environ if environ is None else environ)
        default = str(default_state_dir) if default_state_dir is not None else ".state"
        state_dir = (state_dir or Path(env.text("LOADER_STATE_DIR", default))).expanduser().resolve()
        executor = env.text("LOADER_EXECUTOR", "in_process")
        if executor not in EXECUTORS:
            raise BadSetting("LOADER_EXECUTOR", executor, f"one of {', '.join(EXECUTORS)}")
        catalog_url = env.text("LOADER_CATALOG_URL", "")
        if catalog_url and not re.match(CATALOG_DRIVERS, psycopg2_url(catalog_url)):
            shown = f"{catalog_url.split('://', 1)[0]}://…" if "://" in catalog_url else "…"  # never its password
            raise BadSetting("LOADER_CATALOG_URL", shown, "a sqlite:///PATH or postgresql://HOST/DB URL")
        return cls(
            state_dir=state_dir,
            catalog_url=catalog_url or f"sqlite:///{state_dir / 'catalog.sqlite'}",
            dagster_home=Path(env.text("DAGSTER_HOME", "") or state_dir / "dagster").expanduser().resolve(),
            dagster_pg_url=env.text("LOADER_DAGSTER_PG_URL", "") or None,
            dagster_pg_password=env.text("LOADER_DAGSTER_PG_PASSWORD", ""),
            czar=env.text("LOADER_CZAR", "") or None,
            workers=env.text("LOADER_WORKERS", "") or None,
            worker_password=env.text("LOADER_WORKER_PASSWORD", ""),
            worker_tls=env.flag("LOADER_WORKER_TLS"),
            worker_write_timeout=env.number("LOADER_WORKER_WRITE_TIMEOUT", 60.0),
            lease_seconds=env.number("LOADER_LEASE_SECONDS", 300.0),
            max_attempts=env.whole("LOADER_MAX_ATTEMPTS", 3),
            runs_per_worker=env.whole("LOADER_RUNS_PER_WORKER", 2),
            streams_per_worker=env.whole("LOADER_STREAMS_PER_WORKER", 2),
            sensor_interval=env.whole("LOADER_SENSOR_INTERVAL", 30),
            stall_seconds=env.number("LOADER_STALL_SECONDS", 300.0),
            executor=executor,
            celery_broker=env.text("LOADER_CELERY_BROKER", "") or "pyamqp://guest@127.0.0.1:5672//",
            celery_broker_from_env=bool(env.text("LOADER_CELERY_BROKER", "")),
            webserver=env.text("LOADER_DAGSTER_WEBSERVER", "127.0.0.1:3000"),
            mariadbd=env.text("LOADER_MARIADBD", "/usr/sbin/mariadbd"),
            mariadb_install_db=env.text("LOADER_MARIADB_INSTALL_DB", "/usr/bin/mariadb-install-db"),
            alerts=Alerts(
                smtp_host=env.text("LOADER_ALERT_SMTP_HOST", "") or None,
                smtp_port=env.whole("LOADER_ALERT_SMTP_PORT", 25),
                smtp_user=env.text("LOADER_ALERT_SMTP_USER", "") or None,
                smtp_password=env.text("LOADER_ALERT_SMTP_PASSWORD", ""),
                smtp_tls=env.flag("LOADER_ALERT_SMTP_TLS"),
                mail_from=env.text("LOADER_ALERT_FROM", "loader-assets@localhost"),
                mail_to=tuple(a.strip() for a in env.text("LOADER_ALERT_TO", "").split(",") if a.strip()),
                webhook=env.text("LOADER_ALERT_WEBHOOK", "") or None,
            ),
        )

    @property
    def catalog_sqlalchemy_url(self) -> str:
        return psycopg2_url(self.catalog_url)


CATALOG_DRIVERS = r"^(sqlite(\+pysqlite)?|postgresql\+psycopg2)://"  # of its URL as `psycopg2_url` rewrites it


class BadSetting(BadInput):
    def __init__(self, variable: str, value: str, expected: str) -> None:
        super().__init__(f"{variable}={value!r} is not {expected}", f"correct {variable} in the environment")


class _Reader:
    """Typed reads of the environment, each naming its variable when the value does not parse."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ

    def text(self, name: str, default: str) -> str:
        return self.environ.get(name, default)

    def flag(self, name: str) -> bool:
        value = self.environ.get(name, "0").strip().lower()
        if value not in ("0", "1", "true", "false", "yes", "no", ""):
            raise BadSetting(name, value, "0 or 1")
        return value in ("1", "true", "yes")

    def number(self, name: str, default: float) -> float:
        value = self.environ.get(name)
        try:
            number = float(value) if value not in (None, "") else default
        except ValueError:
            raise BadSetting(name, str(value), "a number") from None
        if number <= 0:
            raise BadSetting(name, str(value), "a number above 0")
        return number

    def whole(self, name: str, default: int) -> int:
        value = self.environ.get(name)
        if value in (None, ""):
            return default
        if not value.strip().isdigit() or int(value) < 1:
            raise BadSetting(name, value, "a whole number, 1 or more")
        return int(value)


def child_environment(settings: Settings) -> dict[str, str]:
    """The environment of a Dagster program this process starts (a Celery worker): this one's, with the
    instance's directory as DAGSTER_HOME, where Dagster's own programs look for it, and this Python's programs
    first on PATH (dagster-celery starts `celery` by name)."""
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return {**os.environ, "DAGSTER_HOME": str(settings.dagster_home), "PATH": path}


def psycopg2_url(url: str) -> str:
    """A PostgreSQL URL with the driver the project ships: SQLAlchemy 2.1 reads `postgresql://` (and Dagster's
    `postgres://`) as psycopg 3. Any other URL is returned as it is."""
    return re.sub(r"^postgres(ql)?://", "postgresql+psycopg2://", url)
