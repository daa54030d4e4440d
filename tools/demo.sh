#!/bin/sh
# Install conch and run a demo container: a busybox rootfs built here from Debian's
# busybox-static (no registry) and conch's embedded default config.json (`conch spec`).
# usage (as root, on Debian 12): sh tools/demo.sh
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
if [ ! -x /bin/busybox ] || [ ! -x /usr/bin/python3 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static python3 >/dev/null
fi
sh "$here/tools/install.sh" /usr/local
bundle=$(mktemp -d /tmp/conch-demo.XXXXXX)
trap 'conch delete --force conch-demo >/dev/null 2>&1 || true; rm -rf "$bundle"' EXIT
sh "$here/tools/mkrootfs.sh" "$bundle/rootfs"
cd "$bundle"
conch spec
# the default runs an interactive `sh` on a terminal; the demo prints and exits instead
/usr/bin/python3 - <<'PY'
import json
c = json.load(open("config.json"))
c["process"]["terminal"] = False
c["process"]["args"] = ["sh", "-c",
    'echo "hello from inside a conch container:"; echo "  hostname: $(hostname)";'
    ' echo "  pid: $$ (a new pid namespace)"; echo "  user: $(id)";'
    ' echo "  root: $(grep " / " /proc/mounts)"; echo "  caps: $(grep CapEff /proc/self/status)"']
json.dump(c, open("config.json", "w"), indent=2)
PY
conch run conch-demo
