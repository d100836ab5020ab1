#!/bin/sh
# PostgreSQL init (run once, on an empty data directory, by the postgres image's entrypoint):
# one database and one login role per v2v service, each database closed to every other role,
# so a service can never read another service's event store (DESIGN.md section 4).
# V2V_DATABASES: space-separated service names; V2V_DB_PASSWORD: their (development) password.
set -eu
: "${V2V_DATABASES:?set V2V_DATABASES to the service names}"
: "${V2V_DB_PASSWORD:?set V2V_DB_PASSWORD}"
for name in $V2V_DATABASES; do
  echo "v2v: database and role '$name'"
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    -v name="$name" -v password="$V2V_DB_PASSWORD" <<'SQL'
CREATE ROLE :"name" LOGIN PASSWORD :'password';
CREATE DATABASE :"name" OWNER :"name";
REVOKE ALL ON DATABASE :"name" FROM PUBLIC;
SQL
done
