#!/bin/sh
# Creates Temporal's two databases on PostgreSQL (persistence and visibility) and brings their
# schemas up to the versions shipped with this admin-tools image. Safe to run again: existing
# databases are kept and only missing schema versions are applied.
set -eu

tool() {
  temporal-sql-tool --plugin postgres12 --ep "$POSTGRES_SEEDS" -p "$DB_PORT" -u "$POSTGRES_USER" "$@"
}

until nc -z -w 5 "$POSTGRES_SEEDS" "$DB_PORT"; do
  echo "waiting for PostgreSQL at $POSTGRES_SEEDS:$DB_PORT"
  sleep 2
done

for db in temporal:temporal temporal_visibility:visibility; do
  name=${db%%:*}
  schema=${db##*:}
  tool --db "$name" create || echo "database $name exists"
  tool --db "$name" setup-schema -v 0.0 || echo "schema of $name already set up"
  tool --db "$name" update-schema -d "/etc/temporal/schema/postgresql/v12/$schema/versioned"
done
echo "Temporal's PostgreSQL schemas are up to date"
