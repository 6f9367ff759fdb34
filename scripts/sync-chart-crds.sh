#!/usr/bin/env bash
# Copies the CRDs from the top-level crds/ (their source of truth) into the chart's crds/ directory,
# byte for byte. Run it after changing a CRD; test/charts/crds.test.ts fails while the copies differ.
#   scripts/sync-chart-crds.sh          copy
#   scripts/sync-chart-crds.sh --check  exit 1 (listing the files) if the chart's copies are stale
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
src="$root/crds"
dst="$root/charts/cpuburst/crds"
check=false
[ "${1:-}" = "--check" ] && check=true

shopt -s nullglob
crds=("$src"/*.yaml)
if [ ${#crds[@]} -eq 0 ]; then
  echo "sync-chart-crds: no CRD found in $src" >&2
  exit 1
fi
mkdir -p "$dst"
stale=0
for f in "${crds[@]}"; do
  name="$(basename "$f")"
  if ! cmp -s "$f" "$dst/$name"; then
    stale=1
    if $check; then echo "stale: charts/cpuburst/crds/$name (run scripts/sync-chart-crds.sh)" >&2
    else cp "$f" "$dst/$name" && echo "synced: charts/cpuburst/crds/$name"; fi
  fi
done
# A CRD removed from crds/ must not linger in the chart.
for f in "$dst"/*.yaml; do
  name="$(basename "$f")"
  if [ ! -e "$src/$name" ]; then
    stale=1
    if $check; then echo "extra: charts/cpuburst/crds/$name has no source in crds/" >&2
    else rm "$f" && echo "removed: charts/cpuburst/crds/$name"; fi
  fi
done
if $check && [ $stale -ne 0 ]; then exit 1; fi
exit 0
