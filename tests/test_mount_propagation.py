"""linux.rootfsPropagation and the tmpcopyup mount option: what a user sees from
inside the container, against Debian's runc (1.1.5) on the same bundle, and every
mount option `conch features` lists.

The host-side mounts these tests make (a shared bind of a directory of the test,
a tmpfs mounted under it once a container runs) are all under the test's tmp dir
and unmounted in the fixture's teardown, whatever happened; the per-test leak
check then finds none left.
"""

import os
import stat
import subprocess

import pytest

# runc 1.1 leaves / private after `shared` and cannot bind the rootfs after
# `unbindable`; conch gives / the shared or unbindable propagation once it is the
# root, as runc does since 1.3.1 (the difference the differential tests allow)
ALL = [None, "rslave", "slave", "rshared", "shared", "rprivate", "private",
       "runbindable", "unbindable"]


# --- helpers ------------------------------------------------------------------------------

def host_mountinfo():
    with open("/proc/self/mountinfo") as f:
        return [line.split() for line in f]


def mounts_under(path):
    path = str(path)
    return [f[4] for f in host_mountinfo() if f[4] == path or f[4].startswith(path + "/")]


def unmount_all(path):
    """Every mount at or under path, the latest first (lazily: a container may hold one)."""
    for _ in range(1000):
        points = mounts_under(path)
        if not points:
            return
        subprocess.run(["umount", "-l", points[-1]], check=True)
    raise AssertionError(f"mounts under {path} keep coming back")


def peer_group(path):
    """The peer group id of the shared mount at path (the N of its shared:N)."""
    for f in host_mountinfo():
        if f[4] == str(path):
            for o in f[6:f.index("-")]:
                if o.startswith("shared:"):
                    return o.split(":")[1]
    raise AssertionError(f"{path} is not a shared mount")


def tags(text, host):
    """{mount point: its optional fields}, peer groups named: `H` for the host
    volume's, `N` for any other (their numbers depend on what else runs)."""
    out = {}
    for line in text.splitlines():
        f = line.split()
        if "-" not in f:
            continue
        norm = []
        for o in f[6:f.index("-")]:
            kind, _, num = o.partition(":")
            norm.append(f"{kind}:{'H' if num == host else 'N'}" if num else kind)
        out[f[4]] = " ".join(norm)
    return out


def plus_shared(t):
    """Optional fields after `mount --make-shared`: a mount not yet shared joins a new group."""
    return t if "shared:" in t else " ".join(["shared:N"] + t.split())


@pytest.fixture
def volume(tmp_path):
    """A host directory that is a shared mount (as on a systemd host), unmounted after."""
    d = tmp_path / "vol"
    d.mkdir()
    subprocess.run(["mount", "--bind", str(d), str(d)], check=True)
    try:
        subprocess.run(["mount", "--make-shared", str(d)], check=True)
        yield d
    finally:
        unmount_all(d)


VOLUME_MOUNTS = (("/mnt/plain", ["rbind"]), ("/mnt/rshared", ["rbind", "rshared"]),
                 ("/mnt/rslave", ["rbind", "rslave"]), ("/mnt/rprivate", ["rbind", "rprivate"]))


def prop_bundle(make_bundle, volume, value, args=("cat", "/proc/self/mountinfo"), **kw):
    b = make_bundle(list(args), copy_rootfs=True, **kw)
    if value:
        b.linux["rootfsPropagation"] = value
    for dest, opts in VOLUME_MOUNTS:
        b.config["mounts"].append({"destination": dest, "type": "bind", "source": str(volume),
                                   "options": opts})
    return b.save()


def ok(r, who="conch"):
    assert r.returncode == 0, f"{who}: rc {r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}"
    return r.stdout


# --- rootfsPropagation: the tags in /proc/self/mountinfo ----------------------------------

@pytest.mark.runc
@pytest.mark.parametrize("value", [v for v in ALL if v is None or "unbindable" not in v])
def test_propagation_tags_as_runc(conch, runc, make_bundle, cid, volume, value):
    """The same bundle under runc and conch: every mount of the container carries
    the same propagation (shared:N, master:N), the host volume's peer group where
    runc has it, bound plain and with rshared, rslave and rprivate. The one
    difference: with shared (rshared), conch makes / (every mount) shared after
    the pivot, as runc >= 1.3.1."""
    b = prop_bundle(make_bundle, volume, value)
    host = peer_group(volume)
    theirs = tags(ok(runc("run", "-b", b.path, cid()), "runc"), host)
    ours = tags(ok(conch("run", "-b", b.path, cid())), host)
    assert sorted(ours) == sorted(theirs)
    expected = dict(theirs)
    if value == "shared":
        expected["/"] = plus_shared(theirs["/"])
    elif value == "rshared":
        expected = {p: plus_shared(t) for p, t in theirs.items()}
    assert ours == expected
    # what was compared is what the kernel's rules say: a bind of the volume keeps its
    # peer group unless the tree was made private, a slave of it unless recursively so
    vol = {d: ours[d] for d, _ in VOLUME_MOUNTS}
    if value in (None, "rslave"):
        assert vol == {"/mnt/plain": "master:H", "/mnt/rshared": "shared:N master:H",
                       "/mnt/rslave": "master:H", "/mnt/rprivate": ""}
    elif value == "rprivate":
        assert vol == {"/mnt/plain": "", "/mnt/rshared": "shared:N", "/mnt/rslave": "",
                       "/mnt/rprivate": ""}
    else:  # shared, rshared, and the non-recursive ones that leave the volume as it is
        want = {"/mnt/plain": "shared:H", "/mnt/rshared": "shared:H",
                "/mnt/rslave": "master:H", "/mnt/rprivate": ""}
        if value == "rshared":
            want = {d: plus_shared(t) for d, t in want.items()}
        assert vol == want


@pytest.mark.parametrize("value,like", [("unbindable", "private"), ("runbindable", "rprivate")])
def test_unbindable_root(conch, make_bundle, cid, volume, value, like):
    """runc 1.1 fails here (the rootfs cannot be bound from an unbindable /). conch
    sets the tree up as private and makes / (runbindable: every mount) unbindable
    at the end, after the last bind mount (masked and read-only paths)."""
    host = peer_group(volume)
    private = tags(ok(conch("run", "-b", prop_bundle(make_bundle, volume, like).path, cid())), host)
    ours = tags(ok(conch("run", "-b", prop_bundle(make_bundle, volume, value).path, cid())), host)
    if value == "unbindable":
        assert ours == dict(private, **{"/": "unbindable"})
    else:
        assert ours == {p: "unbindable" for p in private}
    # the effect: / cannot be bound inside the container
    b = make_bundle(["mount", "--bind", "/", "/tmp"])
    b.process["capabilities"] = {k: ["CAP_SYS_ADMIN"] for k in
                                 ("bounding", "effective", "permitted")}
    b.linux["rootfsPropagation"] = like
    b.save()
    ok(conch("run", "-b", b.path, cid()))
    b.linux["rootfsPropagation"] = value
    b.save()
    r = conch("run", "-b", b.path, cid())
    assert r.returncode != 0 and "Invalid argument" in r.stderr, r.stderr


@pytest.mark.parametrize("value", ALL)
def test_rootfs_on_a_shared_mount(request, conch, make_bundle, cid, tmp_path, volume, value):
    """The rootfs lies in a shared mount (the volume): pivot_root refuses a shared
    parent, and the bind of the rootfs would show on the host. As runc, conch makes
    that mount private in the container's namespace when it is still shared; it
    used to fail with EINVAL for every value but the r* ones, leaving the rootfs
    bound (and everything mounted in it) on the host."""
    b = make_bundle(["cat", "/proc/self/mountinfo"], copy_rootfs=True, name="vol/bundle")
    if value:
        b.linux["rootfsPropagation"] = value
    b.save()
    host = peer_group(volume)
    before = mounts_under(tmp_path)
    root = tags(ok(conch("run", "-b", b.path, cid())), host)["/"]
    assert mounts_under(tmp_path) == before, "mounts left on the host"
    expected = {None: "master:H", "rslave": "master:H", "slave": "", "rprivate": "",
                "private": "", "shared": "shared:N", "rshared": "shared:N",
                "unbindable": "unbindable", "runbindable": "unbindable"}[value]
    assert root == expected
    if value and "unbindable" in value:
        return  # runc 1.1 cannot bind the rootfs from an unbindable tree
    runc = request.getfixturevalue("runc")  # skips if runc is missing
    try:
        theirs = tags(ok(runc("run", "-b", b.path, cid()), "runc"), host)["/"]
        assert mounts_under(tmp_path) == before
        assert (plus_shared(theirs) if value and "shared" in value else theirs) == root
    finally:
        unmount_all(volume)  # runc's fixture, set up after `volume`, checks for mounts first


# --- rootfsPropagation: what a user sees ----------------------------------------------------

@pytest.mark.parametrize("runtime", ["conch", pytest.param("runc", marks=pytest.mark.runc)])
@pytest.mark.parametrize("value,seen", [
    ("rshared", True), ("shared", True), (None, True), ("rslave", True), ("slave", True),
    # non-recursive: only / changes; the volume is a mount of its own and stays shared
    ("private", True),
    ("rprivate", False), ("runbindable", False),
])
def test_host_mount_made_after_start_is_seen_inside(request, make_bundle, cid, volume,
                                                    runtime, value, seen):
    """A host directory (a shared mount) bound in with `rshared`; once the container
    runs, the host mounts a tmpfs under the directory. The container sees it unless
    rootfsPropagation cut the tree off the host's peer groups (rprivate)."""
    if runtime == "runc" and value == "runbindable":
        pytest.skip("runc 1.1 cannot bind the rootfs from an unbindable tree")
    rt = request.getfixturevalue(runtime)  # set up after `volume`: unmount it here
    try:
        b = make_bundle(["sleep", "600"], copy_rootfs=True)
        if value:
            b.linux["rootfsPropagation"] = value
        b.config["mounts"].append({"destination": "/mnt/vol", "type": "bind",
                                   "source": str(volume), "options": ["rbind", "rshared"]})
        b.save()
        c = cid()
        rt("run", "-d", "-b", b.path, c, check=True)
        late = volume / "late"
        late.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "late", str(late)], check=True)
        (late / "hello").write_text("from the host\n")
        r = rt("exec", c, "cat", "/mnt/vol/late/hello")
        if seen:
            assert (r.returncode, r.stdout) == (0, "from the host\n"), r.stderr
        else:
            assert r.returncode != 0 and "No such file" in r.stderr, (r.stdout, r.stderr)
        rt("delete", "--force", c, check=True)
    finally:
        unmount_all(volume)


# --- rootfsPropagation with --no-pivot ------------------------------------------------------

@pytest.mark.parametrize("value", ["private", "rprivate", "unbindable", "runbindable"])
def test_no_pivot_refuses_private_roots(conch, make_bundle, cid, value):
    """As runc ("rootfsPropagation of [r]private is not safe without pivot_root"):
    refused before anything exists. conch sets an unbindable tree up as private,
    so it refuses that too."""
    b = make_bundle(["true"])
    b.linux["rootfsPropagation"] = value
    b.save()
    r = conch("run", "--no-pivot", "-b", b.path, cid())
    assert r.returncode != 0 and r.stderr.count("\n") == 1, r.stderr
    assert "linux.rootfsPropagation: [r]private and [r]unbindable are not safe without " \
           "pivot_root" in r.stderr


@pytest.mark.parametrize("value,root", [(None, "master:H"), ("rshared", "shared:N"),
                                        ("shared", "shared:N"), ("slave", "")])
def test_no_pivot_on_a_shared_mount(conch, make_bundle, cid, tmp_path, volume, value, root):
    """--no-pivot moves the rootfs over /: with a shared / that move would show in
    every peer of / (the host's / on a systemd host), so / is made private first."""
    b = make_bundle(["cat", "/proc/self/mountinfo"], copy_rootfs=True, name="vol/bundle")
    if value:
        b.linux["rootfsPropagation"] = value
    b.save()
    before = mounts_under(tmp_path)
    out = ok(conch("run", "--no-pivot", "-b", b.path, cid()))
    assert tags(out, peer_group(volume))["/"] == root
    assert mounts_under(tmp_path) == before


# --- tmpcopyup ------------------------------------------------------------------------------

LIST = "cd /copyup && for f in $(find . | sort); do stat -c '%n %f %u %g %s %t:%T' $f; done"


def make_tree(root, special=True):
    """rootfs/copyup: files of several owners and modes, a subdirectory with one in it,
    an empty one, symlinks (dangling, absolute, relative); with `special` also what
    runc 1.1 does not copy or keeps no mode of: a fifo, a device node, a setgid
    directory, a setuid file."""
    d = os.path.join(root, "copyup")
    os.makedirs(os.path.join(d, "sub", "deep"))
    os.makedirs(os.path.join(d, "empty"))
    for name, text, mode, uid, gid in [("a.txt", "alpha\n", 0o640, 1000, 100),
                                       ("run.sh", "#!/bin/sh\necho run\n", 0o755, 0, 0),
                                       ("sub/b.txt", "beta\n", 0o600, 1000, 1000),
                                       ("sub/deep/c", "", 0o444, 65534, 65534)]:
        p = os.path.join(d, name)
        with open(p, "w") as f:
            f.write(text)
        os.chown(p, uid, gid)
        os.chmod(p, mode)
    os.symlink("a.txt", os.path.join(d, "rel-link"))
    os.symlink("/etc/passwd", os.path.join(d, "abs-link"))
    os.symlink("nowhere", os.path.join(d, "dangling"))
    os.lchown(os.path.join(d, "dangling"), 1000, 1000)
    os.chown(os.path.join(d, "sub"), 1000, 100)
    os.chmod(os.path.join(d, "sub"), 0o755)
    os.chmod(d, 0o750)
    os.chown(d, 1000, 1000)
    if special:
        os.mkfifo(os.path.join(d, "fifo"), 0o620)
        os.mknod(os.path.join(d, "null"), 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        os.chmod(os.path.join(d, "sub", "deep"), 0o2775)
        os.chmod(os.path.join(d, "run.sh"), 0o4755)
    return d


def expected_listing(d):
    """What LIST prints for the tree at d: the tmpfs root is root's, with the mode of
    the directory (as runc); the rest as on the host, directories without a size."""
    out = [("./", f"{os.lstat(d).st_mode:x}", "0", "0")]
    for dirpath, dirnames, filenames in os.walk(d):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            rel = "./" + os.path.relpath(p, d)
            row = (rel, f"{st.st_mode:x}", str(st.st_uid), str(st.st_gid))
            if not stat.S_ISDIR(st.st_mode):
                row += (str(st.st_size), f"{os.major(st.st_rdev):x}:{os.minor(st.st_rdev):x}")
            out.append(row)
    return sorted(out)


def listing(text):
    rows = []
    for line in text.splitlines():
        f = line.split()
        f[0] = "./" if f[0] == "." else f[0]
        is_dir = int(f[1], 16) & 0o170000 == stat.S_IFDIR
        rows.append(tuple(f[:4]) if is_dir else tuple(f))
    return sorted(rows)


def snapshot(path):
    out = {}
    for dirpath, dirnames, filenames in os.walk(path):
        for name in ["."] + dirnames + filenames:
            p = os.path.normpath(os.path.join(dirpath, name))
            st = os.lstat(p)
            body = None
            if stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    body = f.read()
            out[os.path.relpath(p, path)] = (st.st_mode, st.st_uid, st.st_gid, body)
    return out


def copyup_bundle(make_bundle, script, options=("tmpcopyup",), special=True):
    b = make_bundle(["sh", "-c", script], copy_rootfs=True)
    # root reads and writes other users' files
    b.process["capabilities"] = {k: ["CAP_DAC_OVERRIDE"] for k in
                                 ("bounding", "effective", "permitted")}
    d = make_tree(b.config["root"]["path"], special)
    b.config["mounts"].append({"destination": "/copyup", "type": "tmpfs", "source": "tmpfs",
                               "options": list(options)})
    return b.save(), d


def test_tmpcopyup_copies_the_directory_into_the_tmpfs(conch, make_bundle, cid):
    """Content, owners and modes (setuid, setgid, sticky included), symlinks as they
    are, the fifo and the device node; writes go to the tmpfs, the rootfs keeps its
    copy as it was."""
    b, d = copyup_bundle(make_bundle, LIST + "; echo; stat -f -c %T /copyup; cat /copyup/a.txt "
                         "/copyup/sub/b.txt; readlink /copyup/abs-link; echo new > /copyup/new; "
                         "echo changed > /copyup/run.sh; rm /copyup/sub/b.txt; ls /copyup")
    before = snapshot(d)
    out = ok(conch("run", "-b", b.path, cid()))
    stats, _, rest = out.partition("\n\n")
    assert listing(stats) == expected_listing(d)
    assert rest.splitlines() == ["tmpfs", "alpha", "beta", "/etc/passwd",
                                 "a.txt", "abs-link", "dangling", "empty", "fifo", "new",
                                 "null", "rel-link", "run.sh", "sub"]
    assert snapshot(d) == before, "the rootfs's directory changed"


@pytest.mark.runc
def test_tmpcopyup_as_runc(conch, runc, make_bundle, cid):
    """The same tree (without what runc 1.1 cannot copy) under both: the same
    listing, the same content, writable tmpfs; with `ro`, the same read-only tmpfs."""
    script = LIST + "; cat /copyup/a.txt /copyup/sub/b.txt; echo x > /copyup/new && cat /copyup/new"
    b, d = copyup_bundle(make_bundle, script, special=False)
    theirs = ok(runc("run", "-b", b.path, cid()), "runc")
    ours = ok(conch("run", "-b", b.path, cid()))
    assert ours == theirs
    assert listing(ours.rsplit("\n", 4)[0]) == expected_listing(d)
    b.config["mounts"][-1]["options"] = ["tmpcopyup", "ro", "nosuid"]
    b.process["args"] = ["sh", "-c", "cat /copyup/sub/b.txt; touch /copyup/new; "
                         "grep ' /copyup ' /proc/self/mountinfo | cut -d' ' -f6"]
    b.save()
    theirs = runc("run", "-b", b.path, cid())
    ours = conch("run", "-b", b.path, cid())
    assert (ours.returncode, ours.stdout) == (theirs.returncode, theirs.stdout)
    assert ours.stdout == "beta\nro,nosuid,relatime\n"
    assert "Read-only file system" in ours.stderr


def test_tmpcopyup_of_a_missing_directory_is_an_empty_tmpfs(conch, make_bundle, cid):
    b = make_bundle(["sh", "-c", "stat -f -c %T /nowhere/data; ls -A /nowhere/data; "
                     "stat -c %a /nowhere/data"], copy_rootfs=True)
    b.config["mounts"].append({"destination": "/nowhere/data", "type": "tmpfs",
                               "source": "tmpfs", "options": ["tmpcopyup"]})
    b.save()
    assert ok(conch("run", "-b", b.path, cid())) == "tmpfs\n1777\n"


def mode_bundle(make_bundle):
    b = make_bundle(["sh", "-c", "stat -c '%n %a' /tm-private /tm-sticky /tm-given /tm-made"],
                    copy_rootfs=True)
    root = b.config["root"]["path"]
    for name, mode in (("tm-private", 0o700), ("tm-sticky", 0o1730), ("tm-given", 0o700)):
        os.mkdir(os.path.join(root, name))
        os.chmod(os.path.join(root, name), mode)
    for name, opts in (("tm-private", []), ("tm-sticky", ["nodev"]), ("tm-given", ["mode=750"]),
                       ("tm-made", [])):
        b.config["mounts"].append({"destination": "/" + name, "type": "tmpfs",
                                   "source": "tmpfs", "options": opts})
    return b.save()


MODES = ["/tm-private 700", "/tm-sticky 1730", "/tm-given 750", "/tm-made 1777"]


def test_tmpfs_over_a_directory_takes_its_mode(conch, make_bundle, cid):
    """A tmpfs over a directory that exists gets the directory's mode unless the
    options give one (as runc >= 1.2 passes it); over one conch makes, tmpfs's own."""
    out = ok(conch("run", "-b", mode_bundle(make_bundle).path, cid()))
    assert out.splitlines() == MODES


@pytest.mark.runc
def test_tmpfs_modes_as_runc(runc, make_bundle, cid):
    """runc 1.1 chmods the tmpfs after mounting it: the same, but for /tm-given, where
    the directory's mode wins over the options' (conch: the options', as runc 1.2)."""
    theirs = ok(runc("run", "-b", mode_bundle(make_bundle).path, cid()), "runc").splitlines()
    assert theirs == [m if m != "/tm-given 750" else "/tm-given 700" for m in MODES]


def test_tmpcopyup_on_a_file_is_one_error_and_leaves_nothing(conch, make_bundle, cid):
    b = make_bundle(["true"], copy_rootfs=True)
    with open(os.path.join(b.config["root"]["path"], "file"), "w") as f:
        f.write("x")
    b.config["mounts"].append({"destination": "/file", "type": "tmpfs", "source": "tmpfs",
                               "options": ["tmpcopyup"]})
    b.save()
    r = conch("run", "-b", b.path, cid())
    assert r.returncode != 0 and r.stderr.count("\n") == 1, r.stderr
    assert 'error mounting \\"tmpfs\\" to rootfs at \\"/file\\": tmpcopyup: open /file: ' \
           'not a directory' in r.stderr


def test_tmpcopyup_is_ignored_on_other_mounts(conch, make_bundle, cid, tmp_path):
    """As runc: the option only acts on tmpfs."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("bound\n")
    b = make_bundle(["cat", "/root/f"])
    b.config["mounts"].append({"destination": "/root", "type": "bind", "source": str(src),
                               "options": ["rbind", "tmpcopyup"]})
    b.save()
    assert ok(conch("run", "-b", b.path, cid())) == "bound\n"


# --- every mount option `conch features` lists ---------------------------------------------

def features():
    from conch.cli.features import features as f
    return f()["mountOptions"]


def test_every_listed_mount_option_is_understood():
    """None of them is passed on to the filesystem as data (an unknown word is)."""
    from conch import config
    for opt in features():
        m = config.parse_mount({"destination": "/x", "type": "tmpfs", "source": "tmpfs",
                                "options": [opt]}, "mounts[0]", "/b")
        assert m.data == "", opt


# the visible effect of an option in /proc/self/mountinfo: (per-mount, optional, super)
EFFECTS = {
    "ro": ("ro", "", ""), "rro": ("ro", "", ""), "nosuid": ("nosuid", "", ""),
    "rnosuid": ("nosuid", "", ""), "nodev": ("nodev", "", ""), "rnodev": ("nodev", "", ""),
    "noexec": ("noexec", "", ""), "rnoexec": ("noexec", "", ""),
    "noatime": ("noatime", "", ""), "rnoatime": ("noatime", "", ""),
    "nodiratime": ("nodiratime", "", ""), "rnodiratime": ("nodiratime", "", ""),
    "nosymfollow": ("nosymfollow", "", ""), "rnosymfollow": ("nosymfollow", "", ""),
    "sync": ("", "", "sync"), "dirsync": ("", "", "dirsync"), "lazytime": ("", "", "lazytime"),
    "shared": ("", "shared:", ""), "rshared": ("", "shared:", ""),
    "unbindable": ("", "unbindable", ""), "runbindable": ("", "unbindable", ""),
}
NOT_RELATIME = {"strictatime", "rstrictatime"}


def test_every_listed_mount_option_works(conch, make_bundle, cid, tmp_path):
    """One container with a mount for each option conch features lists: a tmpfs,
    or a bind for the bind-only ones (bind, rbind, remount; idmap and ridmap need
    a user namespace: tests/test_userns.py). Each is made, and shows its effect."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("x\n")
    b = make_bundle(["cat", "/proc/self/mountinfo"], copy_rootfs=True)
    os.makedirs(os.path.join(b.config["root"]["path"], "o", "tmpcopyup"))
    with open(os.path.join(b.config["root"]["path"], "o", "tmpcopyup", "kept"), "w") as f:
        f.write("kept\n")
    points = {}
    for opt in features():
        if opt in ("idmap", "ridmap"):
            continue
        dest = f"/o/{opt}"
        if opt in ("bind", "rbind", "remount"):
            m = {"destination": dest, "type": "bind", "source": str(src),
                 "options": ["bind", opt] if opt == "remount" else [opt]}
        else:
            m = {"destination": dest, "type": "tmpfs", "source": "tmpfs", "options": [opt]}
        b.config["mounts"].append(m)
        points[dest] = opt
    b.save()
    seen = {}
    for line in ok(conch("run", "-b", b.path, cid())).splitlines():
        f = line.split()
        sep = f.index("-")
        seen[f[4]] = (set(f[5].split(",")), " ".join(f[6:sep]), set(f[sep + 3].split(",")))
    assert set(points) <= set(seen), set(points) - set(seen)
    for dest, opt in points.items():
        per, optional, sup = seen[dest]
        p, o, s = EFFECTS.get(opt, ("", "", ""))
        assert (not p or p in per) and o in optional and (not s or s in sup), (opt, seen[dest])
        if opt in NOT_RELATIME:
            assert not per & {"relatime", "noatime"}, (opt, per)
        if opt in ("rw", "rrw", "suid", "rsuid", "dev", "rdev", "exec", "rexec", "atime"):
            assert not per & {"ro", "nosuid", "nodev", "noexec", "noatime"}, (opt, per)
    b.process["args"] = ["cat", "/o/tmpcopyup/kept", "/o/bind/f"]
    b.save()
    assert ok(conch("run", "-b", b.path, cid())) == "kept\nx\n"
