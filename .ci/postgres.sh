# Sourced by .ci/run (and usable by hand, as root): install PostgreSQL from
# Debian's packages if needed, start its cluster on 127.0.0.1 and create a
# password-protected role and database for the tests. Exports
# TUNER_TEST_POSTGRES_URL.
pg_user=tuner_test
pg_password=${TUNER_TEST_PG_PASSWORD:-tuner-test-Pa55word}
pg_db=tuner_test

if ! command -v pg_lsclusters >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
read -r pg_version pg_cluster pg_port _ < <(pg_lsclusters --no-header | head -n 1)
pg_ctlcluster "$pg_version" "$pg_cluster" start >/dev/null 2>&1 || true
pg_sql() { su postgres -c "psql -p $pg_port -v ON_ERROR_STOP=1 -qAt -c \"$1\""; }
if [ -z "$(pg_sql "SELECT 1 FROM pg_roles WHERE rolname = '$pg_user'")" ]; then
    pg_sql "CREATE ROLE $pg_user LOGIN PASSWORD '$pg_password'"
fi
# CREATEDB: the multi-host rehearsal makes fresh databases for its study and its
# MLflow server (MLflow and Optuna both keep an alembic_version table).
pg_sql "ALTER ROLE $pg_user CREATEDB"
if [ -z "$(pg_sql "SELECT 1 FROM pg_database WHERE datname = '$pg_db'")" ]; then
    pg_sql "CREATE DATABASE $pg_db OWNER $pg_user"
fi
export TUNER_TEST_POSTGRES_URL="postgresql://$pg_user:$pg_password@127.0.0.1:$pg_port/$pg_db"
