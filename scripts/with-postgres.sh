#!/usr/bin/env bash
# with-postgres.sh CMD...: run CMD with a throwaway PostgreSQL server.
#
# Starts a private server (data dir and socket in a mktemp dir, 127.0.0.1 on a free port,
# trust auth), exports DMTWATCH_TEST_PG_URL=postgresql+psycopg://postgres@127.0.0.1:PORT/postgres,
# runs CMD, then stops the server, removes the directory and exits with CMD's exit code.
# Installs Debian's postgresql package when no initdb/pg_ctl is found. Fails loudly when
# PostgreSQL cannot be started: the store tests must never be skipped silently.
set -euo pipefail

me=with-postgres.sh
die() {
    echo "$me: $*" >&2
    exit 1
}

[ $# -gt 0 ] || die "usage: $me CMD [ARG...]"

find_bindir() {
    local dir
    if command -v pg_ctl >/dev/null 2>&1 && command -v initdb >/dev/null 2>&1; then
        dirname "$(command -v pg_ctl)"
        return 0
    fi
    # Debian keeps the server binaries off PATH; take the newest major version.
    dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    if [ -n "$dir" ] && [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then
        echo "$dir"
        return 0
    fi
    return 1
}

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo -n "$@"
    else
        die "PostgreSQL is not installed and installing it needs root: $*"
    fi
}

if ! bindir=$(find_bindir); then
    echo "$me: PostgreSQL not found; installing Debian's postgresql package" >&2
    command -v apt-get >/dev/null 2>&1 || die "no initdb/pg_ctl and no apt-get to install them"
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get update -q </dev/null >&2 || die "apt-get update failed"
    as_root apt-get install -y -q postgresql </dev/null >&2 || die "apt-get install postgresql failed"
    bindir=$(find_bindir) || die "postgresql installed but no initdb/pg_ctl under /usr/lib/postgresql/*/bin"
fi

# initdb refuses to run as root: run the server as the postgres system user then.
run_as=()
if [ "$(id -u)" -eq 0 ]; then
    if ! id postgres >/dev/null 2>&1; then
        useradd --system --user-group --no-create-home --shell /usr/sbin/nologin postgres ||
            die "cannot create the postgres system user"
    fi
    command -v runuser >/dev/null 2>&1 || die "running as root needs runuser to drop to postgres"
    run_as=(runuser -u postgres --)
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/dmtwatch-pg.XXXXXX")
data=$tmp/data
log=$tmp/server.log
started=

cleanup() {
    if [ -f "$data/postmaster.pid" ]; then # also after a start that timed out
        (cd "$tmp" && "${run_as[@]}" "$bindir/pg_ctl" -D "$data" -m immediate -w stop) \
            >/dev/null 2>&1 || echo "$me: warning: could not stop the server in $data" >&2
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir "$tmp/socket"
[ ${#run_as[@]} -eq 0 ] || chown -R postgres: "$tmp"

# Run the server tools from inside $tmp: the postgres user may not be able to read our cwd.
pg() { (cd "$tmp" && "${run_as[@]}" "$bindir/$1" "${@:2}"); }

pg initdb -D "$data" -U postgres -A trust -E UTF8 --locale=C --no-sync >"$tmp/initdb.log" 2>&1 ||
    { cat "$tmp/initdb.log" >&2; die "initdb failed (log above)"; }

free_port() {
    local port
    for _ in $(seq 1 50); do
        port=$((20000 + RANDOM % 30000))
        # Nothing answering on the port: take it (pg_ctl fails, and we retry, on a race).
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return 0
        fi
    done
    return 1
}

for attempt in 1 2 3 4 5; do
    port=$(free_port) || die "no free TCP port found"
    if pg pg_ctl -D "$data" -l "$log" -w -t 60 -o "-c listen_addresses=127.0.0.1 -c port=$port \
        -c unix_socket_directories=$tmp/socket -c fsync=off -c synchronous_commit=off \
        -c full_page_writes=off -c max_connections=50" start >/dev/null 2>&1; then
        started=1
        break
    fi
    echo "$me: server did not start on port $port (attempt $attempt)" >&2
done
if [ -z "$started" ]; then
    cat "$log" >&2 2>/dev/null || true
    die "could not start PostgreSQL from $bindir (server log above)"
fi

export DMTWATCH_TEST_PG_URL="postgresql+psycopg://postgres@127.0.0.1:$port/postgres"
echo "$me: $("$bindir/postgres" --version) on 127.0.0.1:$port" >&2

set +e
"$@"
status=$?
set -e
exit "$status"
