#!/bin/sh
# Install what the tests need (Debian packages) and run the whole test suite, as root.
# usage: sh tools/test.sh [pytest args]
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
need=""
for pkg in busybox-static runc python3 python3-pytest uidmap libseccomp2 procps systemd dbus; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need="$need $pkg"
done
if [ -n "$need" ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need >/dev/null
fi
cd "$here"
exec /usr/bin/python3 -m pytest -q -p no:cacheprovider "$@" tests
