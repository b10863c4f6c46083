#!/bin/sh
# Re-fetch the dashboard's vendored chart library (uPlot) at its pinned version from npm.
# Run by hand when bumping UPLOT_VERSION; the files are committed, nothing fetches at install.
set -eu
UPLOT_VERSION=1.6.32
DEST="$(dirname "$0")/../src/sightline/server/static/vendor/uplot"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
(cd "$TMP" && npm pack --silent "uplot@$UPLOT_VERSION" >/dev/null && tar xzf "uplot-$UPLOT_VERSION.tgz")
mkdir -p "$DEST"
cp "$TMP/package/dist/uPlot.iife.min.js" "$TMP/package/dist/uPlot.min.css" "$DEST/"
cp "$TMP/package/LICENSE" "$DEST/LICENSE"
echo "$UPLOT_VERSION" > "$DEST/VERSION"
echo "uPlot $UPLOT_VERSION -> $DEST"
