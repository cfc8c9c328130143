# Sourced by .ci/run (as root): Debian's Chromium for the browser tests
# (Playwright drives it headless; no browser download at run time).
if ! command -v chromium >/dev/null 2>&1; then
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null
fi
