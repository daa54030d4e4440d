#!/bin/sh
# conch's benchmark: conch, runc and crun on one busybox bundle, interleaved, in a
# private mount namespace (see bench/bench.py). Writes docs/PERFORMANCE.md and
# docs/performance.png (not with --quick), raw samples under bench/results/.
# usage (as root, on Debian 12): sh bench/run.sh [--quick] [-n N] [--help]
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
[ "$(id -u)" = 0 ] || { echo "bench: must run as root" >&2; exit 1; }
need=""
for pkg in runc crun busybox-static python3 python3-matplotlib time util-linux; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' ||
    need="$need $pkg"
done
if [ -n "$need" ]; then
  echo "bench: installing$need" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need >/dev/null
fi
# bench.py re-executes itself under `unshare -m --propagation private`
exec /usr/bin/python3 -I "$here/bench/bench.py" "$@"
