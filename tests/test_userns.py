"""User namespaces as root: linux.uidMappings/gidMappings, the container's root
owning its stdio, and idmapped mounts (runtime-spec 1.2: a mount's
uidMappings/gidMappings, the `idmap` and `ridmap` options).

The container's root is host uid/gid 100000 here. It must be able to reach its
rootfs (pytest's own tmp dirs are 0700 root's), so the bundles live in a 0755
directory of their own, with the rootfs copy given to 100000, as an image
unpacked for a user namespace is; the directory is removed after each test,
after checking that no mount is left in it.
"""

import json
import os
import shutil
import subprocess
import tempfile

import pytest

from conftest import Bundle

HOST = 100000  # the container's root on the host
SIZE = 65536
MAPS = [{"containerID": 0, "hostID": HOST, "size": SIZE}]


@pytest.fixture
def open_dir():
    d = tempfile.mkdtemp(prefix="conch-userns-")
    os.chmod(d, 0o755)
    yield d
    with open("/proc/self/mountinfo") as f:
        left = [ln.split()[4] for ln in f if d in ln]
    for m in sorted(left, reverse=True):  # a failed test's own helper mounts
        subprocess.run(["umount", "-l", m], capture_output=True)
    shutil.rmtree(d)
    assert not left, f"mounts left: {left}"


@pytest.fixture
def ubundle(open_dir, rootfs):
    """A bundle whose container has a user namespace mapping 0-65535 to 100000-165535."""
    n = [0]

    def make(args=("true",), userns=True):
        n[0] += 1
        path = os.path.join(open_dir, f"b{n[0]}")
        root = os.path.join(path, "rootfs")
        shutil.copytree(rootfs, root, symlinks=True)
        if userns:
            for dirpath, dirnames, filenames in os.walk(root):
                for p in [dirpath] + [os.path.join(dirpath, x) for x in dirnames + filenames]:
                    st = os.lstat(p)
                    os.lchown(p, st.st_uid + HOST, st.st_gid + HOST)
        b = Bundle(path, root, args)
        b.config["root"]["readonly"] = False
        if userns:
            b.linux["namespaces"].append({"type": "user"})
            b.linux["uidMappings"] = MAPS
            b.linux["gidMappings"] = MAPS
        return b.save()

    return make


def host_dir(open_dir, name, files):
    """A host directory with files owned as given: {name: (uid, gid)}."""
    d = os.path.join(open_dir, name)
    os.mkdir(d)
    os.chmod(d, 0o777)
    for f, (uid, gid) in files.items():
        p = os.path.join(d, f)
        with open(p, "w"):
            pass
        os.chown(p, uid, gid)
    return d


def owners(ls_output):
    """{name: (uid, gid)} from `ls -ln`."""
    out = {}
    for ln in ls_output.splitlines():
        f = ln.split()
        if len(f) >= 9 and not ln.startswith("total"):
            out[f[-1]] = (int(f[2]), int(f[3]))
    return out


def add_caps(b, *caps):
    for k in ("bounding", "effective", "permitted"):
        b.process["capabilities"][k] = sorted(set(b.process["capabilities"][k]) | set(caps))


# --- uidMappings / gidMappings ---------------------------------------------------------

def test_the_container_sees_its_maps(conch, ubundle, cid):
    b = ubundle(["sh", "-c", "id -u; id -g; cat /proc/self/uid_map /proc/self/gid_map; "
                 "stat -c %u:%g /etc/passwd /proc/1"])
    r = conch("run", "-b", b.path, cid())
    assert r.returncode == 0, r.stderr
    lines = r.stdout.split("\n")
    assert lines[:2] == ["0", "0"]
    assert lines[2].split() == ["0", str(HOST), str(SIZE)]
    assert lines[3].split() == ["0", str(HOST), str(SIZE)]
    assert lines[4:6] == ["0:0", "0:0"]  # the shifted rootfs is the container root's


def test_files_made_in_the_container_have_the_mapped_owner(conch, ubundle, cid, open_dir):
    data = host_dir(open_dir, "data", {})
    b = ubundle(["sh", "-c", "touch /made /data/f && touch /data/g && chown 1000:1001 /data/g "
                 "&& mkdir /data/d && ls -ln /data"])
    b.config["mounts"].append({"destination": "/data", "type": "bind", "source": data,
                               "options": ["rbind"]})
    add_caps(b, "CAP_CHOWN")
    b.save()
    r = conch("run", "-b", b.path, cid())
    assert r.returncode == 0, r.stderr
    assert owners(r.stdout) == {"f": (0, 0), "g": (1000, 1001), "d": (0, 0)}
    st = os.stat(os.path.join(b.path, "rootfs", "made"))
    assert (st.st_uid, st.st_gid) == (HOST, HOST)
    for name, ids in (("f", (HOST, HOST)), ("g", (HOST + 1000, HOST + 1001)),
                      ("d", (HOST, HOST))):
        st = os.stat(os.path.join(data, name))
        assert (st.st_uid, st.st_gid) == ids, name


def test_host_files_outside_the_map_show_as_nobody(conch, ubundle, cid, open_dir):
    data = host_dir(open_dir, "data", {"root-owned": (0, 0), "mapped": (HOST + 5, HOST + 5)})
    b = ubundle(["ls", "-ln", "/data"])
    b.config["mounts"].append({"destination": "/data", "type": "bind", "source": data,
                               "options": ["rbind", "ro"]})
    b.save()
    r = conch("run", "-b", b.path, cid())
    assert r.returncode == 0, r.stderr
    assert owners(r.stdout) == {"root-owned": (65534, 65534), "mapped": (5, 5)}


def test_stdio_pipes_belong_to_the_container_root(conch, ubundle, cid):
    """As runc's HostUID logic: the caller's stdio pipes are given to the host id of
    the container's root, who may then reopen them (/dev/stdout, /proc/self/fd/N)."""
    b = ubundle(["sh", "-c", "echo via-dev-stdout > /dev/stdout; echo err > /dev/stderr; "
                 "stat -L -c %u:%g /proc/self/fd/1"])
    c = cid()
    p = subprocess.run(conch.cmd("run", "-b", b.path, c), stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=30)
    conch.ids.add(c)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split("\n")[:2] == ["via-dev-stdout", "0:0"]
    assert p.stderr.strip() == "err"


def test_the_console_belongs_to_the_container_root(conch, ubundle, cid):
    b = ubundle(["sh", "-c", "tty; stat -c %u:%g $(tty) /dev/console"])
    b.process["terminal"] = True
    b.save()
    r = conch("run", "-b", b.path, cid())
    assert r.returncode == 0, r.stderr
    lines = r.stdout.replace("\r", "").split("\n")
    assert lines[0].startswith("/dev/pts/")
    assert lines[1:3] == ["0:5", "0:5"]  # the container's root's; group tty (devpts gid=5)


def test_exec_joins_the_user_namespace(conch, ubundle, cid):
    b = ubundle(["sleep", "1000"])
    c = cid()
    assert conch("run", "-d", "-b", b.path, c).returncode == 0
    pid = conch.state(c)["pid"]
    e = conch("exec", c, "sh", "-c", "id -u; cat /proc/self/uid_map; readlink /proc/self/ns/user")
    assert e.returncode == 0, e.stderr
    lines = e.stdout.split("\n")
    assert lines[0] == "0" and lines[1].split() == ["0", str(HOST), str(SIZE)]
    assert lines[2] == os.readlink(f"/proc/{pid}/ns/user")
    assert conch("delete", "-f", c).returncode == 0


def test_rootless_flag_as_root(conch, ubundle, cid):
    b = ubundle(["true"])
    assert conch("--rootless", "true", "run", "-b", b.path, cid()).returncode == 0
    assert conch("--rootless", "false", "run", "-b", b.path, cid()).returncode == 0
    r = conch("--rootless", "sometimes", "run", "-b", b.path, cid())
    assert r.returncode == 1 and "invalid --rootless value sometimes" in r.stderr


# --- idmapped mounts -------------------------------------------------------------------------

def idmapped(b, source, dest, options, maps=True):
    m = {"destination": dest, "type": "bind", "source": source, "options": options}
    if maps:
        m["uidMappings"] = MAPS
        m["gidMappings"] = MAPS
    b.config["mounts"].append(m)
    return b.save()


def test_an_idmapped_mount_shows_host_files_with_container_owners(conch, ubundle, cid, open_dir):
    src = host_dir(open_dir, "src", {"by-root": (0, 0), "by-1000": (1000, 1000)})
    b = ubundle(["sh", "-c", "ls -ln /idm && touch /idm/new && mkdir /idm/newdir"])
    idmapped(b, src, "/idm", ["bind"])
    r = conch("run", "-b", b.path, cid())
    assert r.returncode == 0, r.stderr
    assert owners(r.stdout) == {"by-root": (0, 0), "by-1000": (1000, 1000)}
    # what the container's root makes through the mount is the host's root's
    for name in ("new", "newdir"):
        st = os.stat(os.path.join(src, name))
        assert (st.st_uid, st.st_gid) == (0, 0)
    # and the host's view of the old files is unchanged
    assert os.stat(os.path.join(src, "by-1000")).st_uid == 1000


def test_the_idmap_option_takes_the_containers_mappings(conch, ubundle, cid, open_dir):
    src = host_dir(open_dir, "src", {"by-root": (0, 0), "by-7": (7, 8)})
    b = ubundle(["ls", "-ln", "/idm"])
    idmapped(b, src, "/idm", ["bind", "idmap", "ro"], maps=False)
    r = conch("run", "-b", b.path, cid())
    assert r.returncode == 0, r.stderr
    assert owners(r.stdout) == {"by-root": (0, 0), "by-7": (7, 8)}


@pytest.mark.parametrize("option,sub_owner", [("ridmap", 0), ("idmap", 65534)])
def test_ridmap_maps_the_submounts_too(conch, ubundle, cid, open_dir, option, sub_owner):
    src = host_dir(open_dir, "src", {"top": (0, 0)})
    sub = os.path.join(src, "sub")
    os.mkdir(sub)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=755", "tmpfs", sub], check=True)
    try:
        open(os.path.join(sub, "inner"), "w").close()
        b = ubundle(["sh", "-c", "ls -ln /idm /idm/sub"])
        idmapped(b, src, "/idm", ["rbind", option])
        r = conch("run", "-b", b.path, cid())
        assert r.returncode == 0, r.stderr
        seen = owners(r.stdout)
        assert seen["top"] == (0, 0)
        assert seen["inner"] == (sub_owner, sub_owner)
    finally:
        subprocess.run(["umount", sub], check=True)


def test_an_idmapped_mount_without_a_user_namespace(conch, ubundle, cid, open_dir):
    """Without a user namespace the mount's mappings alone decide: on-disk 0 reads as
    1000 here, and ids the mount does not map read as nobody."""
    src = host_dir(open_dir, "src", {"by-root": (0, 0), "by-5": (5, 5)})
    b = ubundle(["ls", "-ln", "/idm"], userns=False)
    b.config["mounts"].append({"destination": "/idm", "type": "bind", "source": src,
                               "options": ["bind"],
                               "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}],
                               "gidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}]})
    b.save()
    r = conch("run", "-b", b.path, cid())
    assert r.returncode == 0, r.stderr
    assert owners(r.stdout) == {"by-root": (1000, 1000), "by-5": (65534, 65534)}


@pytest.mark.parametrize("mount,error", [
    ({"destination": "/m", "type": "tmpfs", "source": "tmpfs", "uidMappings": MAPS,
      "gidMappings": MAPS}, "idmapped mounts are only supported for bind mounts"),
    ({"destination": "/m", "type": "bind", "source": "/tmp", "options": ["bind"],
      "uidMappings": MAPS}, ".gidMappings: an idmapped mount needs both uidMappings and gidMappings"),
    ({"destination": "/m", "type": "bind", "source": "/nonexistent-src", "options": ["bind"],
      "uidMappings": MAPS, "gidMappings": MAPS}, ".source: open_tree /nonexistent-src: no such file"),
])
def test_idmapped_mount_errors_name_the_mount(conch, ubundle, cid, mount, error):
    b = ubundle(["true"])
    b.config["mounts"].append(mount)
    b.save()
    r = conch("run", "-b", b.path, cid())
    assert r.returncode == 1
    i = len(b.config["mounts"]) - 1
    assert f"mounts[{i}]" in r.stderr and error in r.stderr, r.stderr


def test_idmap_without_any_mappings_is_refused(conch, ubundle, cid):
    b = ubundle(["true"], userns=False)
    idmapped(b, "/tmp", "/m", ["bind", "idmap"], maps=False)
    r = conch("run", "-b", b.path, cid())
    assert r.returncode == 1
    i = len(b.config["mounts"]) - 1
    assert f"mounts[{i}].options: idmap without uidMappings and gidMappings" in r.stderr


def test_time_offsets_in_a_user_namespace(conch, make_bundle, cid):
    """timeOffsets are written by the (non-dumpable) intermediate in its own user namespace."""
    b = make_bundle(["cat", "/proc/self/timens_offsets"])
    b.linux["namespaces"] = [{"type": t} for t in ("pid", "ipc", "uts", "mount", "user", "time")]
    b.linux["uidMappings"] = [{"containerID": 0, "hostID": 0, "size": 65536}]
    b.linux["gidMappings"] = [{"containerID": 0, "hostID": 0, "size": 65536}]
    b.linux["timeOffsets"] = {"boottime": {"secs": 3600, "nanosecs": 0}}
    b.config["mounts"] = [m for m in b.config["mounts"] if m["type"] not in ("sysfs", "cgroup")]
    b.save()
    r = conch("run", "-b", b.path, cid())
    assert r.returncode == 0, r.stderr
    assert "boottime" in r.stdout and "3600" in r.stdout


def test_a_lower_oom_score_in_a_user_namespace_is_refused_naming_the_field(conch, ubundle, cid):
    # lowering oom_score_adj needs CAP_SYS_RESOURCE in the initial user namespace
    b = ubundle(["true"])
    b.process["oomScoreAdj"] = -500
    b.save()
    r = conch("run", "-b", b.path, cid())
    assert r.returncode == 1
    assert "process.oomScoreAdj: write /proc/self/oom_score_adj -500: permission denied" \
        in r.stderr, r.stderr
    assert r.stderr.count("\n") == 1


def test_raising_a_hard_rlimit_in_a_user_namespace_is_refused_naming_it(conch, ubundle, cid):
    import resource
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    b = ubundle(["true"])
    b.process["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": hard + 1, "hard": hard + 1}]
    b.save()
    r = conch("run", "-b", b.path, cid())
    assert r.returncode == 1
    assert (f"process.rlimits: setrlimit RLIMIT_NOFILE (soft {hard + 1}, hard {hard + 1}): "
            "operation not permitted") in r.stderr, r.stderr
    assert r.stderr.count("\n") == 1
