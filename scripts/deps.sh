#!/usr/bin/env bash
# Installs what Parley's build and tests need on a fresh Debian machine.
# As root it installs missing Debian packages; otherwise it says what to
# install. Then it downloads the Go modules, the npm test client and
# TypeScript for the widget's type check.
set -euo pipefail
cd "$(dirname "$0")/.."

# command-that-must-exist:debian-package. A command already on PATH (from
# any source, e.g. NodeSource's nodejs which bundles npm) is good enough.
needs=(
  "node:nodejs"
  "npm:npm"
  "pg_isready:postgresql-client"
)
# Debian packages checked by name (libraries, data, certificates):
# libopus for Opus via cgo (github.com/hraban/opus, which also wants
# libopusfile), pocketsphinx + its US English model for offline speech
# recognition, espeak-ng for offline speech synthesis, sox and opus-tools
# for `make testdata`, chromium (/usr/bin/chromium, driven headless by
# TestBrowserWebRTCCall; about 350 MB, so like the rest it is installed only
# when dpkg does not already have it).
packages=(ca-certificates pkg-config gcc libc6-dev
  libopus-dev libopusfile-dev
  libpocketsphinx-dev libsphinxbase-dev pocketsphinx-en-us
  libespeak-ng-dev espeak-ng-data
  sox opus-tools espeak-ng
  chromium)

missing=()
for n in "${needs[@]}"; do
  cmd=${n%%:*}; pkg=${n##*:}
  command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
done
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "deps: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null 2>&1 ||
      { apt-get update >/dev/null && apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null; }
  else
    echo "deps: missing packages; please run: sudo apt-get install ${missing[*]}" >&2
    exit 1
  fi
fi

go mod download

if [ ! -d test/npmclient/node_modules/openai ]; then
  echo "deps: npm ci in test/npmclient"
  (cd test/npmclient && npm ci --no-audit --no-fund --loglevel=error)
fi
# TypeScript, for the widget's type check (web's TestWidgetTypes); the
# widget itself is bundled by esbuild's Go API (go generate ./web).
if [ ! -x web/widget/node_modules/.bin/tsc ]; then
  echo "deps: npm ci in web/widget"
  (cd web/widget && npm ci --no-audit --no-fund --loglevel=error)
fi
