#!/bin/sh
# Makes sure the nats-server binary the tests start is installed; installs Debian's
# nats-server with apt-get where possible and says what to install elsewhere.
set -eu
if command -v "${NATS_SERVER:-nats-server}" >/dev/null 2>&1; then
    exit 0
fi
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "nats-server missing: installing it with apt-get" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nats-server >/dev/null
    # The tests start their own servers on free ports.
    exit 0
fi
echo "the tests need nats-server (2.9 or newer): apt-get install nats-server (Debian/Ubuntu), brew install nats-server (macOS), or set NATS_SERVER=/path/to/nats-server" >&2
exit 1
