#!/usr/bin/env bash
# Start a throwaway PostgreSQL server on a free loopback port; print its URL.
# Usage: source .ci/postgres.sh  (defines pg_start / pg_stop)
pg_start() {
  local bindir
  bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  if [ -z "$bindir" ]; then
    echo "no PostgreSQL server binaries under /usr/lib/postgresql" >&2
    return 1
  fi
  PG_DIR=$(mktemp -d /tmp/polly-pg.XXXXXX)
  chown postgres:postgres "$PG_DIR"
  PG_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  # TCP connections need the password (so a wrong one can be tested); the socket is trusted.
  echo "polly-test-pw" >"$PG_DIR/pwfile"
  chown postgres:postgres "$PG_DIR/pwfile"
  runuser -u postgres -- "$bindir/initdb" -D "$PG_DIR/data" --auth-local=trust --auth-host=scram-sha-256 \
    --pwfile="$PG_DIR/pwfile" -U polly >/dev/null
  runuser -u postgres -- "$bindir/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/log" \
    -o "-p $PG_PORT -k $PG_DIR -c listen_addresses=127.0.0.1" -w start >/dev/null
  runuser -u postgres -- "$bindir/createdb" -h "$PG_DIR" -p "$PG_PORT" -U polly polly_test
  PG_BINDIR=$bindir
  export TEST_POSTGRES_URL="postgresql+asyncpg://polly:polly-test-pw@127.0.0.1:$PG_PORT/polly_test"
}
pg_stop() {
  if [ -n "${PG_DIR:-}" ]; then
    runuser -u postgres -- "$PG_BINDIR/pg_ctl" -D "$PG_DIR/data" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "$PG_DIR"
  fi
}
