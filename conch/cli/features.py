"""conch features: what this runtime supports, in the runtime-spec's features format."""

from .. import _os as os

from .. import __version__
from ..config import CAPS, MOUNT_FLAGS, PROPAGATION, RECURSIVE_ATTRS
from ..seccomp import ACTIONS, ARCHES, FLAGS, OPERATORS
from .args import exact_args, parse

HELP = """\
NAME:
   conch features - show the enabled features

USAGE:
   conch features

DESCRIPTION:
   Show the enabled features, as JSON (runtime-spec features.md). The result is
   the static list of what this conch can do, not what the host allows.
"""


def features():
    opts = sorted(set(MOUNT_FLAGS) | set(PROPAGATION) | set(RECURSIVE_ATTRS)
                  | {"tmpcopyup", "idmap", "ridmap"})
    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": "1.2.0",
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer",
                  "poststart", "poststop"],
        "mountOptions": opts,
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"],
            "capabilities": list(CAPS),
            "cgroup": {"v1": True, "v2": True, "systemd": True, "systemdUser": False},
            "seccomp": {
                "enabled": True,
                "actions": sorted(ACTIONS),
                "operators": sorted(OPERATORS),
                "archs": sorted(ARCHES),
                "knownFlags": sorted(FLAGS),
                "supportedFlags": sorted(FLAGS),
            },
            "apparmor": {"enabled": True},
            "selinux": {"enabled": True},
        },
        "annotations": {"io.github.conch.version": __version__},
    }


def run(ctx, argv):
    exact_args(parse(argv, {})[1], "features", 0)
    from .. import jsonlite
    os.write(1, (jsonlite.dumps_indent(features(), "    ") + "\n").encode())
    return 0
