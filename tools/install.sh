#!/bin/sh
# Install conch: the package under $PREFIX/lib/conch and a launcher $PREFIX/bin/conch
# that starts Debian's python3 with -I -S (no site, no user paths: the fastest start).
# usage: sh tools/install.sh [PREFIX]   (default /usr/local; run as root)
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
prefix=${1:-/usr/local}
command -v python3 >/dev/null 2>&1 && [ -x /usr/bin/python3 ] || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 >/dev/null; }
lib="$prefix/lib/conch"
rm -rf "$lib.new" && mkdir -p "$lib.new" "$prefix/bin"
cp -r "$here/conch" "$lib.new/conch"
find "$lib.new" -name __pycache__ -prune -exec rm -rf {} +
(cd "$here" && git rev-parse --short=12 HEAD 2>/dev/null || echo unknown) > "$lib.new/conch/COMMIT"
/usr/bin/python3 -m compileall -q "$lib.new/conch" >/dev/null
# the launcher's fast path: every module compiled into one file (conch/_bundle.py)
/usr/bin/python3 -I "$lib.new/conch/_bundle.py" "$lib.new" >/dev/null
rm -rf "$lib" && mv "$lib.new" "$lib"
sed "s|@LIBDIR@|$lib|" "$here/tools/conch-launcher.in" > "$prefix/bin/conch.new"
chmod 755 "$prefix/bin/conch.new" && mv "$prefix/bin/conch.new" "$prefix/bin/conch"
echo "installed $prefix/bin/conch ($("$prefix/bin/conch" --version | head -1))"
