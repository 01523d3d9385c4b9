#!/bin/sh
# Makes sure the beanstalkd binary the tests start is installed; installs it with apt-get
# where possible and says what to install elsewhere.
set -eu
if command -v "${BEANSTALKD:-beanstalkd}" >/dev/null 2>&1; then
    exit 0
fi
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "beanstalkd missing: installing it with apt-get" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq beanstalkd >/dev/null
    # The Debian package starts a system service on port 11300; the tests start their own.
    exit 0
fi
echo "the tests need beanstalkd: apt-get install beanstalkd (Debian/Ubuntu), brew install beanstalkd (macOS), or set BEANSTALKD=/path/to/beanstalkd" >&2
exit 1
