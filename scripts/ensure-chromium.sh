#!/usr/bin/env bash
# The dashboard's browser tests drive Debian's Chromium through playwright-core (Playwright cannot download its own
# browser on these machines). Runs before `npm test`: installs the `chromium` package when it is missing and we are
# root; otherwise says what to do. Quiet when Chromium is already there.
set -u
command -v chromium >/dev/null 2>&1 && exit 0
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "Chromium is missing: install it (Debian: sudo apt-get install -y chromium) or the browser tests will fail." >&2
  exit 0
fi
mkdir -p test-output
echo "installing chromium for the dashboard's browser tests"
if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } >test-output/apt-chromium.log 2>&1; then
  cat test-output/apt-chromium.log >&2
  echo "could not install chromium (apt-get install -y chromium); the browser tests will fail" >&2
fi
exit 0
