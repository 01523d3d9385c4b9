#!/bin/sh
# Makes sure the browser the dashboard's browser test drives is installed: Debian's
# chromium and chromium-driver (chromedriver), with apt-get where possible; says what to
# install elsewhere. Without chromedriver that test says so loudly and runs no browser.
set -eu
if command -v "${CHROMEDRIVER:-chromedriver}" >/dev/null 2>&1 \
    && { command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; }; then
    exit 0
fi
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "chromium or chromedriver missing: installing chromium and chromium-driver with apt-get" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
    exit 0
fi
echo "the dashboard's browser test needs chromium and chromedriver: apt-get install chromium chromium-driver (Debian/Ubuntu), or set CHROMEDRIVER=/path/to/chromedriver" >&2
exit 1
