#!/usr/bin/env bash
# Render a qualpipe report.html to a PNG with headless Chromium, to check how it looks.
#
#   scripts/screenshot_report.sh REPORT.html [OUT.png] [WIDTH,HEIGHT]
#
# OUT defaults to REPORT.png beside the report, the window to 1280,2400 (only that much
# of the page is captured: give a taller window for the whole report). Chromium runs
# without network services, sync, first-run or a GPU, in a throwaway profile.
# Install it with `apt-get install chromium` (Debian) or set CHROMIUM=/path/to/chrome.
set -euo pipefail

if [[ $# -lt 1 || $1 == -h || $1 == --help ]]; then
    sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi
report=$1
out=${2:-${report%.*}.png}
size=${3:-1280,2400}
[[ -f $report ]] || { echo "screenshot_report.sh: no such file: $report" >&2; exit 2; }

browser=${CHROMIUM:-}
if [[ -z $browser ]]; then
    for candidate in chromium chromium-browser google-chrome google-chrome-stable; do
        if command -v "$candidate" >/dev/null 2>&1; then browser=$candidate; break; fi
    done
fi
[[ -n $browser ]] || { echo "screenshot_report.sh: chromium not found (apt-get install chromium)" >&2; exit 3; }

abs_report=$(cd "$(dirname "$report")" && pwd)/$(basename "$report")
mkdir -p "$(dirname "$out")"
abs_out=$(cd "$(dirname "$out")" && pwd)/$(basename "$out")
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT

"$browser" --headless --no-sandbox --disable-gpu --disable-background-networking \
    --disable-component-update --disable-sync --no-first-run --hide-scrollbars \
    --user-data-dir="$profile" --screenshot="$abs_out" --window-size="$size" \
    "file://$abs_report" >/dev/null 2>&1 || true

if [[ ! -s $abs_out ]]; then
    echo "screenshot_report.sh: $browser wrote no screenshot for $report" >&2
    exit 1
fi
echo "$abs_out"
