#!/bin/sh
# Makes sure the PostgreSQL server the tests use answers (127.0.0.1:5432, or the host and
# port of MQ_TEST_POSTGRES); starts the machine's cluster where it is installed but stopped.
set -eu
url="${MQ_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432}"
hostport="${url#*@}"
host="${hostport%%:*}"
port="${hostport##*:}"
[ "$port" = "$hostport" ] && port=5432
if ! command -v pg_isready >/dev/null 2>&1 || pg_isready -q -h "$host" -p "$port"; then
    # Without pg_isready, the tests themselves say what is missing.
    exit 0
fi
if command -v pg_ctlcluster >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "PostgreSQL at $host:$port does not answer: starting the local cluster" >&2
    for version in $(ls /etc/postgresql 2>/dev/null); do
        pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    done
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        pg_isready -q -h "$host" -p "$port" && exit 0
        sleep 1
    done
fi
echo "the PostgreSQL tests need a server at $host:$port with trust authentication for user postgres (apt-get install postgresql), or MQ_TEST_POSTGRES=postgres://USER@HOST:PORT" >&2
exit 1
