#!/usr/bin/env bash
# README's two commands: `./run.sh demo` sets atlas up and runs its whole job on the embedded Elasticsearch;
# `./run.sh test` sets up what the tests use and runs ruff, mypy --strict and pytest. Each installs the Debian
# packages it needs (through apt-get when run as root; otherwise it stops and prints the one command to run).
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
VENV=.venv

# command (or test) -> Debian package; the demo needs the first group, the tests all of them.
demo_packages() {
  command -v mvn >/dev/null || echo maven  # fetches the Elasticsearch distributions from Maven Central
  if [ "$(id -u)" = 0 ]; then command -v setpriv >/dev/null || echo util-linux; fi  # Elasticsearch refuses root
  "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null || echo python3-venv
}
test_packages() {
  demo_packages
  command -v openssl >/dev/null || echo openssl  # the TLS test makes its CA and certificates
  command -v chromium >/dev/null || echo chromium  # the report's render test
  command -v rrdtool >/dev/null || echo rrdtool  # `atlas ingest rrd` reads RRD files with it
  command -v collectd >/dev/null || [ -x /usr/sbin/collectd ] || echo collectd-core  # a real collectd for `ingest collectd`
  { ldconfig -p || /sbin/ldconfig -p; } 2>/dev/null | grep -q 'libyajl.so.2' || echo libyajl2  # write_http needs yajl
}

install_packages() {
  local missing
  missing=$("$@" | sort -u | tr '\n' ' ')
  missing=${missing% }
  [ -n "$missing" ] || return 0
  if [ "$(id -u)" != 0 ]; then
    echo "Error: missing Debian packages; install them, then run this again:" >&2
    echo "  sudo apt-get install -y $missing" >&2
    exit 2
  fi
  echo "installing Debian packages: $missing" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
}

setup_venv() {
  if [ ! -x "$VENV/bin/atlas" ] || [ pyproject.toml -nt "$VENV/bin/atlas" ]; then
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --upgrade pip
    "$VENV/bin/pip" install --quiet -e '.[dev]'
    touch "$VENV/bin/atlas"
  fi
}

case "${1:-}" in
  demo)
    install_packages demo_packages
    setup_venv
    exec "$VENV/bin/atlas" demo
    ;;
  test)
    install_packages test_packages
    setup_venv
    "$VENV/bin/ruff" check atlas tests bench
    "$VENV/bin/ruff" format --check atlas tests bench
    "$VENV/bin/mypy"
    "$VENV/bin/atlas" es start
    shift
    exec "$VENV/bin/pytest" "$@"
    ;;
  *)
    echo "usage: ./run.sh demo | ./run.sh test [pytest arguments]" >&2
    exit 2
    ;;
esac
