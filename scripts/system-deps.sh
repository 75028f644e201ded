#!/usr/bin/env bash
# Debian packages the test suite needs: a real headless Chromium (browser
# tests), exiftool (reading exported metadata back), vips (the thumbnail
# benchmark's baseline) and redis-server (workers over the Redis broker). Installed with apt
# when missing; elsewhere, say what to install (those tests then skip with a
# reason, except on CI where they fail).
set -euo pipefail
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
command -v exiftool >/dev/null 2>&1 || need+=(libimage-exiftool-perl)
command -v vipsthumbnail >/dev/null 2>&1 || need+=(libvips-tools)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
[ ${#need[@]} -eq 0 ] && exit 0
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  echo "Installing Debian packages: ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
elif command -v apt-get >/dev/null 2>&1 && command -v sudo >/dev/null 2>&1; then
  echo "Installing Debian packages with sudo: ${need[*]}"
  sudo apt-get update -qq
  sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
else
  echo "NOTE: install these for the full test suite: ${need[*]}" >&2
  echo "      (Debian/Ubuntu package names; on macOS: brew install --cask chromium; brew install exiftool vips)" >&2
  echo "      Tests that need them are skipped until then." >&2
fi
