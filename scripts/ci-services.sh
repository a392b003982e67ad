#!/usr/bin/env bash
# Makes sure the database servers the tests talk to answer, starting them if they do not, and
# creates the databases and the read-only roles the tests use. Run by .ci/run before `npm test`;
# safe to run again. Fails (exit 1) when a server cannot be reached: CI must not skip those tests.
set -uo pipefail

PG_HOST=${VN_TEST_PG_HOST:-127.0.0.1}
MY_HOST=${VN_TEST_MYSQL_HOST:-127.0.0.1}

pg_up() { psql -h "$PG_HOST" -U postgres -d postgres -tAc 'select 1' >/dev/null 2>&1; }
my_up() { mariadb -h "$MY_HOST" -uroot -e 'select 1' >/dev/null 2>&1; }

wait_for() { # name check-fn
  for _ in $(seq 1 30); do "$2" && return 0; sleep 1; done
  echo "services: $1 does not answer"; return 1
}

if ! pg_up; then
  echo "services: starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start || true
fi
if ! my_up; then
  echo "services: starting MariaDB"
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd || true
fi
wait_for PostgreSQL pg_up || exit 1
wait_for MariaDB my_up || exit 1

# PostgreSQL: a database for the tests and a login role that can only read.
psql -h "$PG_HOST" -U postgres -d postgres -v ON_ERROR_STOP=1 -q <<'SQL' || exit 1
SELECT 'CREATE DATABASE verinode_test' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'verinode_test')\gexec
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'verinode_ro') THEN
    CREATE ROLE verinode_ro LOGIN PASSWORD 'verinode_ro';
  END IF;
END $$;
SQL

# MariaDB: the same.
mariadb -h "$MY_HOST" -uroot <<'SQL' || exit 1
CREATE DATABASE IF NOT EXISTS verinode_test;
CREATE USER IF NOT EXISTS 'verinode_ro'@'%' IDENTIFIED BY 'verinode_ro';
CREATE USER IF NOT EXISTS 'verinode_ro'@'localhost' IDENTIFIED BY 'verinode_ro';
SQL

echo "services: PostgreSQL $(psql -h "$PG_HOST" -U postgres -d postgres -tAc 'show server_version'), MariaDB $(mariadb -h "$MY_HOST" -uroot -N -e 'select version()') answer"
