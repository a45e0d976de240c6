#!/usr/bin/env bash
# Install the system packages ProML Lab needs, only when they are missing:
#   Java 17+ (Spark), redis-server (online store tests), chromium + chromedriver (browser tests).
# Debian/Ubuntu via apt-get; as root, or through sudo when it is available.
set -euo pipefail

need=()
java_major() { java -version 2>&1 | sed -nE 's/.*version "([0-9]+).*/\1/p' | head -n1; }
if ! command -v java >/dev/null 2>&1 || [ "$(java_major)" -lt 17 ]; then need+=(openjdk-17-jre-headless); fi
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v chromium >/dev/null 2>&1 || need+=(chromium chromium-driver)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need+=(python3-venv)

if [ ${#need[@]} -eq 0 ]; then
  echo "system packages: all present (java $(java_major), redis-server, chromium)"
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "error: missing system packages (${need[*]}) and no apt-get here; install them with your" \
       "package manager, then run make again." >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "error: missing system packages (${need[*]}); run as root or install sudo." >&2
    exit 1
  fi
fi
echo "installing system packages: ${need[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
echo "system packages: installed ${need[*]}"
