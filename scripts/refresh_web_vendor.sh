#!/usr/bin/env bash
# Refresh the vendored front-end libraries from npm, as pinned by api/web/package-lock.json.
#   bash scripts/refresh_web_vendor.sh            # install exactly what the lock file says
#   bash scripts/refresh_web_vendor.sh --update   # move to the newest versions package.json allows, then copy
# The copies in api/web/static/vendor are committed, so neither serving nor testing needs npm.
set -euo pipefail
cd "$(dirname "$0")/../api/web"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp package.json package-lock.json "$work/"
if [[ "${1:-}" == "--update" ]]; then
  (cd "$work" && npm update --ignore-scripts --no-audit --no-fund)
  cp "$work/package-lock.json" package-lock.json
else
  (cd "$work" && npm ci --ignore-scripts --no-audit --no-fund)
fi
modules="$work/node_modules"
vendor=static/vendor
rm -rf "$vendor"
mkdir -p "$vendor/leaflet/images" "$vendor/leaflet-geoman" "$vendor/chart.js" "$vendor/swagger-ui"
cp "$modules/leaflet/dist/leaflet.js" "$modules/leaflet/dist/leaflet.css" "$modules/leaflet/LICENSE" "$vendor/leaflet/"
cp "$modules"/leaflet/dist/images/*.png "$vendor/leaflet/images/"
cp "$modules/@geoman-io/leaflet-geoman-free/dist/leaflet-geoman.js" \
   "$modules/@geoman-io/leaflet-geoman-free/dist/leaflet-geoman.css" \
   "$modules/@geoman-io/leaflet-geoman-free/LICENSE" "$vendor/leaflet-geoman/"
cp "$modules/chart.js/dist/chart.umd.min.js" "$modules/chart.js/LICENSE.md" "$vendor/chart.js/"
cp "$modules/swagger-ui-dist/swagger-ui-bundle.js" "$modules/swagger-ui-dist/swagger-ui.css" \
   "$modules/swagger-ui-dist/LICENSE" "$vendor/swagger-ui/"
node -e '
  const lock = require("./package-lock.json");
  const lines = Object.entries(lock.packages).filter(([p]) => p).map(([p, v]) => `${p.replace("node_modules/", "")} ${v.version} ${v.integrity}`);
  require("fs").writeFileSync("static/vendor/VERSIONS.txt", lines.join("\n") + "\n");
'
echo "vendored into api/web/$vendor:"; cat "$vendor/VERSIONS.txt"
