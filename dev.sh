#!/usr/bin/env bash
# Set-up and run, on a fresh Debian/Ubuntu machine with Python >= 3.11 (as root or with sudo).
#   ./dev.sh demo   install everything, then run the bot with demo data and the WeCom simulator
#   ./dev.sh test   install everything, then run the linters and the whole test suite
set -euo pipefail
cd "$(dirname "$0")"

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
APT_UPDATED=""
apt_install() {
  if ! command -v apt-get >/dev/null; then
    echo "dev.sh: please install $* with your package manager" >&2; exit 1
  fi
  if [ -z "$APT_UPDATED" ]; then $SUDO apt-get update -qq >/dev/null; APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}

PY=${PYTHON:-python3}
if ! $PY -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "dev.sh: Python 3.11 or newer is needed (found: $($PY --version 2>&1))" >&2; exit 1
fi
command -v redis-server >/dev/null || apt_install redis-server
if [ ! -x .venv/bin/python ]; then
  $PY -m venv .venv 2>/dev/null || { apt_install python3-venv; rm -rf .venv; $PY -m venv .venv; }
fi
stamp=.venv/.installed-$(sha1sum pyproject.toml | cut -c1-12)
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[test]'
  rm -f .venv/.installed-*; touch "$stamp"
fi

case "${1:-}" in
  demo)
    shift
    exec .venv/bin/unioncard demo "$@"
    ;;
  test)
    shift
    command -v chromium >/dev/null || apt_install chromium
    .venv/bin/ruff check .
    .venv/bin/ruff format --check .
    exec .venv/bin/python -m pytest "$@"
    ;;
  *)
    echo "usage: ./dev.sh demo | ./dev.sh test [pytest args]" >&2; exit 2
    ;;
esac
