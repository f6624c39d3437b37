#!/bin/sh
# Runs once, when PostgreSQL initialises an empty data directory: Cordon's ledger gets its own role
# and database, apart from Temporal's. The password comes from the compose secret.
set -eu
password=$(cat /run/secrets/cordon-postgres-password)
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres -v password="$password" <<'SQL'
CREATE ROLE cordon LOGIN PASSWORD :'password';
CREATE DATABASE cordon OWNER cordon;
SQL
