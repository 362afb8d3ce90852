#!/usr/bin/env bash
# Make sure what the tests and the demo need is here: MariaDB server binaries (the project starts its own
# mariadbd processes), a PostgreSQL server on 127.0.0.1:5432, RabbitMQ on 127.0.0.1:5672 (the Celery broker),
# Prometheus (the metrics test starts its own on a free port) and Chromium (the UI's real-browser check and
# scripts/screenshots.sh). Installs and starts them on Debian when missing; fails loudly when one cannot be had.
set -euo pipefail

PG_HOST=127.0.0.1 PG_PORT=5432

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_install() {
  echo "ensure-servers: installing $* from Debian's packages"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}

if ! command -v mariadbd >/dev/null && [ ! -x /usr/sbin/mariadbd ]; then
  apt_install mariadb-server
fi
[ -x /usr/sbin/mariadbd ] || command -v mariadbd >/dev/null || { echo "ensure-servers: no mariadbd after install" >&2; exit 1; }
command -v mariadb-install-db >/dev/null || { echo "ensure-servers: mariadb-install-db missing" >&2; exit 1; }

pg_up() { pg_isready -q -h "$PG_HOST" -p "$PG_PORT" 2>/dev/null; }
if ! command -v pg_isready >/dev/null; then
  apt_install postgresql
fi
if ! pg_up; then
  echo "ensure-servers: starting PostgreSQL"
  for version in $(ls /etc/postgresql 2>/dev/null); do
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  done
  for _ in $(seq 30); do pg_up && break; sleep 1; done
fi
pg_up || { echo "ensure-servers: PostgreSQL is not answering on $PG_HOST:$PG_PORT" >&2; exit 1; }
if ! psql -h "$PG_HOST" -p "$PG_PORT" -U postgres -tAc 'select 1' >/dev/null 2>&1; then
  echo "ensure-servers: cannot log in to PostgreSQL as postgres on $PG_HOST:$PG_PORT (trust auth expected)" >&2
  exit 1
fi
rabbit_up() { (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; }
if ! rabbit_up; then
  [ -x /usr/sbin/rabbitmq-server ] || apt_install rabbitmq-server
  echo "ensure-servers: starting RabbitMQ"
  as_root /usr/sbin/rabbitmq-server -detached || true
  for _ in $(seq 60); do rabbit_up && break; sleep 1; done
fi
rabbit_up || { echo "ensure-servers: RabbitMQ is not answering on 127.0.0.1:5672" >&2; exit 1; }
if ! command -v prometheus >/dev/null; then  # the metrics test scrapes the exporter with a real Prometheus
  apt_install prometheus
fi
command -v prometheus >/dev/null || { echo "ensure-servers: no prometheus after install" >&2; exit 1; }
if ! command -v chromium >/dev/null; then
  apt_install chromium
fi
command -v chromium >/dev/null || { echo "ensure-servers: no chromium after install" >&2; exit 1; }
echo "ensure-servers: mariadbd $(mariadbd --version | awk '{print $3}'), PostgreSQL on $PG_HOST:$PG_PORT, RabbitMQ on 127.0.0.1:5672: ready"
