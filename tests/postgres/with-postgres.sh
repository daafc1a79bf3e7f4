#!/usr/bin/env bash
# Runs CMD with a throwaway PostgreSQL 15 cluster: initdb in a temp dir, a free port on
# 127.0.0.1, DATABASE_URL and CLAWHOST_TEST_POSTGRES_URL exported, stopped afterwards.
# Usage: tests/postgres/with-postgres.sh cargo test -p clawhost --test console_http
# Without it (CLAWHOST_TEST_POSTGRES_URL unset) the PostgreSQL test variants are skipped with a
# notice, except under CI (env CI non-empty), where they fail: CI must run them through here.
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 CMD..." >&2; exit 2; }

PGBIN=${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}
[ -x "$PGBIN/initdb" ] || { echo "with-postgres: no PostgreSQL server binaries (apt-get install postgresql)" >&2; exit 1; }

# initdb refuses to run as root: use the postgres system user then.
AS=()
if [ "$(id -u)" = 0 ]; then
  id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
  AS=(runuser -u postgres --)
fi

DIR=$(mktemp -d /tmp/clawhost-pg.XXXXXX)
chmod 755 "$DIR"
[ ${#AS[@]} -eq 0 ] || chown postgres "$DIR"
cleanup() {
  "${AS[@]}" "$PGBIN/pg_ctl" -D "$DIR/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$DIR"
}
trap cleanup EXIT

"${AS[@]}" "$PGBIN/initdb" -D "$DIR/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$DIR/initdb.log" 2>&1 \
  || { cat "$DIR/initdb.log" >&2; exit 1; }
# A free port can be taken between picking it and the server binding it: then the start
# fails and the next attempt picks another.
started=""
for attempt in 1 2 3; do
  PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  if "${AS[@]}" "$PGBIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w \
    -o "-h 127.0.0.1 -p $PORT -k $DIR -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" start >/dev/null; then
    started=1; break
  fi
  echo "with-postgres: start on port $PORT failed (attempt $attempt)" >&2
done
[ -n "$started" ] || { cat "$DIR/server.log" >&2; exit 1; }

export DATABASE_URL="postgres://postgres@127.0.0.1:$PORT/postgres"
export CLAWHOST_TEST_POSTGRES_URL="$DATABASE_URL"
echo "with-postgres: PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$PORT" >&2
set +e
"$@"
rc=$?
set -e
exit $rc
