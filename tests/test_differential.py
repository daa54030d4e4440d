"""conch against Debian's runc: the same bundle, run by each, must give the same
exit codes, the same view from inside the container and the same answers from
the command line.

Each test builds ONE bundle and hands it to both runtimes (each with its own
--root and its own container id). Where the two may legitimately differ the
difference is normalised in one visible place: the runtime's name in error
prefixes, container ids, times and pids, mount ids and device numbers.
"""

import json
import os
import re
import subprocess
import time

import pytest

pytestmark = pytest.mark.runc

# what a user looks at inside the container; sections are split on the markers
VIEW = r"""
echo '## id'; id
echo '## hostname'; hostname
echo '## pwd'; pwd
echo '## env'; env | sort
echo '## ulimit'; ulimit -S -n; ulimit -H -n
echo '## limits'; cat /proc/self/limits
echo '## umask'; umask
echo '## status'; grep -E '^(Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs|Seccomp):' /proc/self/status
echo '## groups'; grep -E '^(Uid|Gid|Groups):' /proc/self/status
echo '## mountinfo'; cat /proc/self/mountinfo
echo '## dev'; ls -la /dev /dev/pts
"""

# Places where conch is stricter than runc 1.1.5 on purpose, and the only mount flags
# allowed to differ: the tmpfs that holds the v1 cgroup hierarchies is read-only when
# the cgroup mount says "ro" (runc 1.1 leaves it writable; cf. CVE-2023-25809), and
# readonlyPaths are also nosuid,nodev,noexec.
HARDENED = {"/sys/fs/cgroup": {"ro"}}
READONLY_PATH_EXTRAS = {"nosuid", "nodev", "noexec"}


# --- helpers ------------------------------------------------------------------------

def run_both(runc, conch, bundle, cid):
    """`run` the bundle in the foreground under each runtime: {name: CompletedProcess}."""
    return {rt.name: rt("run", "-b", bundle.path, cid()) for rt in (runc, conch)}


def detached(rt, tmp_path, *args):
    """Run a command whose container keeps its stdio (create, run -d): stdio on files."""
    out = tmp_path / f"{rt.name}-{args[0]}-{time.monotonic_ns()}"
    with open(f"{out}.out", "wb") as fo, open(f"{out}.err", "wb") as fe:
        p = rt.popen(*args, stdin=subprocess.DEVNULL, stdout=fo, stderr=fe)
        rc = p.wait(30)
    with open(f"{out}.out") as fo, open(f"{out}.err") as fe:
        return subprocess.CompletedProcess(p.args, rc, fo.read(), fe.read())


def message(stderr):
    """The msg of the logrus line on stderr (no --log), quotes unescaped."""
    m = re.search(r'level=error msg="((?:[^"\\]|\\.)*)"', stderr)
    assert m, f"no error line in {stderr!r}"
    return re.sub(r"\\(.)", r"\1", m.group(1))


def normal(text, rt, ids=()):
    """Runtime name and container ids replaced by placeholders."""
    for i in ids:
        text = text.replace(i, "<id>")
    return text.replace(rt.name, "<runtime>")


def sections(stdout):
    out = {}
    name = None
    for line in stdout.splitlines():
        if line.startswith("## "):
            name = line[3:]
            out[name] = []
        elif name:
            out[name].append(line)
    return out


def mounts(lines):
    """(mount point, fs type, {ro, nosuid, nodev, noexec}) of each mountinfo line,
    sorted: mount ids, device numbers, sources and super options are left out."""
    out = []
    for line in lines:
        f = line.split()
        sep = f.index("-")
        opts = set(f[5].split(","))
        out.append((f[4], f[sep + 1], frozenset(opts & {"ro", "nosuid", "nodev", "noexec"})))
    return sorted(out, key=lambda m: (m[0], m[1], sorted(m[2])))


def compare_mounts(runc_lines, conch_lines, readonly_paths=()):
    """Same mount points, types and flags; conch may add its documented hardening."""
    r, c = mounts(runc_lines), mounts(conch_lines)
    assert [m[:2] for m in c] == [m[:2] for m in r], "\n".join(
        ["mount points differ", "runc:"] + [str(m) for m in r] + ["conch:"] + [str(m) for m in c])
    for (point, fstype, rf), (_, _, cf) in zip(r, c):
        allowed = HARDENED.get(point, set())
        if point in readonly_paths:
            allowed = allowed | READONLY_PATH_EXTRAS
        assert rf <= cf and cf - rf <= allowed, (point, fstype, "runc", sorted(rf),
                                                 "conch", sorted(cf))


LS_LINE = re.compile(r"^(\S+)\s+\d+\s+(\S+)\s+(\S+)\s+(?:(\d+),\s+(\d+)|\d+)\s+"
                     r"\w+\s+\d+\s+[\d:]+\s+(.*)$")


def dev_listing(lines):
    """`ls -la` lines as (mode, owner, group, major:minor, name [-> target]); the
    sizes and times of directories are left out."""
    out = []
    for line in lines:
        m = LS_LINE.match(line)
        if not m:
            continue  # "total N", directory headers, blank lines
        mode, owner, group, major, minor, name = m.groups()
        out.append((mode, owner, group, f"{major}:{minor}" if major else "", name))
    return out


def compare_views(res, readonly_paths=()):
    r, c = res["runc"], res["conch"]
    assert r.returncode == 0, r.stderr
    assert c.returncode == 0, c.stderr
    assert c.stderr == r.stderr
    rs, cs = sections(r.stdout), sections(c.stdout)
    assert list(cs) == list(rs)
    wrong = {}
    for name in rs:
        if name == "mountinfo":
            continue
        a, b = rs[name], cs[name]
        if name == "dev":
            a, b = dev_listing(a), dev_listing(b)
        if a != b:
            wrong[name] = {"runc": a, "conch": b}
    assert not wrong, json.dumps(wrong, indent=1)
    compare_mounts(rs["mountinfo"], cs["mountinfo"], readonly_paths)


def view_bundle(make_bundle, **changes):
    b = make_bundle(["sh", "-c", VIEW])
    for dotted, value in changes.items():
        d = b.config
        *path, last = dotted.split(".")
        for p in path:
            d = d[p]
        if value is None:
            d.pop(last, None)
        else:
            d[last] = value
    return b.save()


# --- exit codes -------------------------------------------------------------------------

@pytest.mark.parametrize("args,code", [
    (["true"], 0),
    (["sh", "-c", "exit 3"], 3),
    (["sh", "-c", "nosuchcommand"], 127),
    (["sh", "-c", "echo out; echo err >&2; exit 42"], 42),
])
def test_exit_codes_and_output(runc, conch, make_bundle, cid, args, code):
    b = make_bundle(args)
    res = run_both(runc, conch, b, cid)
    assert res["runc"].returncode == code, res["runc"].stderr
    assert res["conch"].returncode == code, res["conch"].stderr
    assert res["conch"].stdout == res["runc"].stdout
    assert res["conch"].stderr == res["runc"].stderr


def test_exit_code_of_a_process_that_kills_itself(runc, conch, make_bundle, cid):
    # pid 1 of a pid namespace ignores a SIGKILL sent from inside it: without a
    # pid namespace the shell is an ordinary process and dies of its own SIGKILL
    b = make_bundle(["sh", "-c", "kill -9 $$; echo survived"])
    b.linux["namespaces"] = [ns for ns in b.linux["namespaces"] if ns["type"] != "pid"]
    b.save()
    res = run_both(runc, conch, b, cid)
    for name, r in res.items():
        assert (r.returncode, r.stdout) == (128 + 9, ""), (name, r.returncode, r.stderr)


def test_exit_code_of_a_container_killed_from_outside(runc, conch, make_bundle, cid):
    b = make_bundle(["sleep", "1000"])
    for rt in (runc, conch):
        c = cid()
        p = rt.popen("run", "-b", b.path, c, stdin=subprocess.DEVNULL,
                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 10
            while True:
                st = rt("state", c)
                if st.returncode == 0 and json.loads(st.stdout)["status"] == "running":
                    break
                assert time.monotonic() < deadline, f"{rt.name}: {c} never ran"
                time.sleep(0.02)
            assert rt("kill", c, "KILL").returncode == 0
            assert p.wait(10) == 128 + 9, (rt.name, p.stderr.read())
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            p.stderr.close()


# --- the view from inside -----------------------------------------------------------------

def test_default_view(runc, conch, make_bundle, cid):
    b = view_bundle(make_bundle)
    res = run_both(runc, conch, b, cid)
    compare_views(res, b.linux["readonlyPaths"])
    # what was compared is what it should be
    view = sections(res["conch"].stdout)
    assert view["id"] == ["uid=0(root) gid=0(root)"] and view["hostname"] == ["conch"]
    dev = dev_listing(view["dev"])
    for entry in [("crw-rw-rw-", "root", "root", "1:3", "null"),
                  ("crw-rw-rw-", "root", "root", "5:0", "tty"),
                  ("crw-rw-rw-", "root", "root", "5:2", "ptmx"),
                  ("lrwxrwxrwx", "root", "root", "", "ptmx -> pts/ptmx"),
                  ("lrwxrwxrwx", "root", "root", "", "fd -> /proc/self/fd")]:
        assert entry in dev, dev
    points = {m[0]: m for m in mounts(view["mountinfo"])}
    assert points["/dev/shm"] == ("/dev/shm", "tmpfs", {"nosuid", "nodev", "noexec"})
    assert points["/sys"] == ("/sys", "sysfs", {"ro", "nosuid", "nodev", "noexec"})
    assert {"/", "/proc", "/dev/pts", "/dev/mqueue", "/sys/fs/cgroup/memory",
            "/proc/keys", "/proc/acpi", "/proc/sys"} <= set(points)


def test_user_with_additional_groups_and_umask(runc, conch, make_bundle, cid):
    b = view_bundle(make_bundle, **{
        "process.user": {"uid": 1000, "gid": 1000, "additionalGids": [100, 5], "umask": 0o027},
        "process.cwd": "/home/user",
    })
    res = run_both(runc, conch, b, cid)
    compare_views(res, b.linux["readonlyPaths"])
    assert "uid=1000(user) gid=1000(user) groups=5(tty),100(users)" in res["conch"].stdout


def test_unknown_user_gets_home_slash(runc, conch, make_bundle, cid):
    b = view_bundle(make_bundle, **{"process.user": {"uid": 4242, "gid": 4242}})
    res = run_both(runc, conch, b, cid)
    compare_views(res, b.linux["readonlyPaths"])
    assert "HOME=/" in sections(res["conch"].stdout)["env"]


def test_env_hostname_and_cwd(runc, conch, make_bundle, cid):
    b = view_bundle(make_bundle, **{
        "process.env": ["PATH=/bin:/usr/bin", "A=1", "B=two words", "HOME=/tmp", "EMPTY="],
        "process.cwd": "/tmp",
        "hostname": "box",
    })
    compare_views(run_both(runc, conch, b, cid), b.linux["readonlyPaths"])


def test_rlimits(runc, conch, make_bundle, cid):
    b = view_bundle(make_bundle, **{"process.rlimits": [
        {"type": "RLIMIT_NOFILE", "soft": 256, "hard": 512},
        {"type": "RLIMIT_NPROC", "soft": 66, "hard": 77},
        {"type": "RLIMIT_CORE", "soft": 0, "hard": 0},
        {"type": "RLIMIT_STACK", "soft": 4 << 20, "hard": 16 << 20},
    ]})
    res = run_both(runc, conch, b, cid)
    compare_views(res, b.linux["readonlyPaths"])
    assert sections(res["conch"].stdout)["ulimit"] == ["256", "512"]


def test_no_rlimits(runc, conch, make_bundle, cid):
    b = view_bundle(make_bundle, **{"process.rlimits": None})
    compare_views(run_both(runc, conch, b, cid), b.linux["readonlyPaths"])


def test_capability_sets_of_a_user(runc, conch, make_bundle, cid):
    b = view_bundle(make_bundle, **{
        "process.user": {"uid": 1000, "gid": 1000},
        "process.noNewPrivileges": False,
        "process.capabilities": {
            "bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW", "CAP_SETUID", "CAP_SYS_ADMIN"],
            "effective": ["CAP_CHOWN", "CAP_NET_RAW"],
            "permitted": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW"],
            "inheritable": ["CAP_NET_RAW", "CAP_KILL"],
            "ambient": ["CAP_NET_RAW"],
        },
    })
    res = run_both(runc, conch, b, cid)
    compare_views(res, b.linux["readonlyPaths"])
    status = sections(res["conch"].stdout)["status"]
    assert "CapAmb:\t0000000000002000" in status  # CAP_NET_RAW survived the exec
    assert "NoNewPrivs:\t0" in status


def test_no_capabilities_object_means_no_capabilities(runc, conch, make_bundle, cid):
    b = view_bundle(make_bundle, **{"process.capabilities": None})
    res = run_both(runc, conch, b, cid)
    compare_views(res, b.linux["readonlyPaths"])
    assert "CapBnd:\t0000000000000000" in sections(res["conch"].stdout)["status"]


def test_host_network(runc, conch, make_bundle, cid):
    b = view_bundle(make_bundle)
    b.linux["namespaces"] = [ns for ns in b.linux["namespaces"] if ns["type"] != "network"]
    b.process["args"][-1] += "echo '## net'; readlink /proc/self/ns/net; ls /sys/class/net\n"
    b.save()
    res = run_both(runc, conch, b, cid)
    compare_views(res, b.linux["readonlyPaths"])
    net = sections(res["conch"].stdout)["net"]
    assert net[0] == os.readlink("/proc/self/ns/net")
    assert sorted(net[1:]) == sorted(os.listdir("/sys/class/net"))


def test_new_network_namespace_has_only_loopback(runc, conch, make_bundle, cid):
    b = make_bundle(["sh", "-c", "ls /sys/class/net; cat /sys/class/net/lo/operstate; "
                                 "readlink /proc/self/ns/net"])
    res = run_both(runc, conch, b, cid)
    r, c = res["runc"], res["conch"]
    assert r.returncode == 0 and c.returncode == 0, (r.stderr, c.stderr)
    assert c.stdout.splitlines()[:2] == r.stdout.splitlines()[:2]
    assert c.stdout.splitlines()[2] != os.readlink("/proc/self/ns/net")


def test_masked_and_readonly_paths(runc, conch, make_bundle, cid):
    b = make_bundle(copy_rootfs=True)
    b.config["root"]["readonly"] = False
    b.linux["maskedPaths"] += ["/etc/group", "/home"]
    b.linux["readonlyPaths"] += ["/tmp"]
    b.process["args"] = ["sh", "-c", r"""
for f in /proc/kcore /proc/keys /proc/timer_list /proc/sched_debug /etc/group; do
  echo "$f: $(cat $f 2>/dev/null | wc -c)"
done
echo "acpi, home, firmware: $(ls -A /proc/acpi /home /sys/firmware 2>&1 | grep -v : | grep -c .)"
{ echo x > /proc/sys/kernel/hostname; } 2>&1; echo "rc=$?"
{ touch /home/new; } 2>&1; echo "rc=$?"
{ touch /tmp/new; } 2>&1; echo "rc=$?"
cat /proc/sys/kernel/ostype
rm -f /root/probe && touch /root/probe && echo "root writable"
echo '## mountinfo'; cat /proc/self/mountinfo
"""]
    b.save()
    res = run_both(runc, conch, b, cid)
    r, c = res["runc"], res["conch"]
    assert r.returncode == 0 and c.returncode == 0, (r.stderr, c.stderr)
    rv, cv = r.stdout.split("## mountinfo\n"), c.stdout.split("## mountinfo\n")
    assert cv[0] == rv[0]
    assert "Read-only file system" in cv[0] and "root writable" in cv[0]
    compare_mounts(rv[1].splitlines(), cv[1].splitlines(), b.linux["readonlyPaths"])


@pytest.mark.parametrize("readonly", [True, False])
def test_root_readonly(runc, conch, make_bundle, cid, readonly):
    b = make_bundle(copy_rootfs=not readonly)
    b.config["root"]["readonly"] = readonly
    b.process["args"] = ["sh", "-c", "rm -f /probe; { touch /probe; } 2>&1; echo rc=$?; "
                                     "echo '## mountinfo'; cat /proc/self/mountinfo"]
    b.save()
    res = run_both(runc, conch, b, cid)
    r, c = res["runc"], res["conch"]
    rv, cv = r.stdout.split("## mountinfo\n"), c.stdout.split("## mountinfo\n")
    assert cv[0] == rv[0]
    assert ("Read-only file system" in cv[0]) == readonly
    compare_mounts(rv[1].splitlines(), cv[1].splitlines(), b.linux["readonlyPaths"])
    root = [m for m in mounts(cv[1].splitlines()) if m[0] == "/"]
    assert len(root) == 1 and ("ro" in root[0][2]) == readonly


def test_bind_mounts(runc, conch, make_bundle, cid, tmp_path):
    src = tmp_path / "shared"
    src.mkdir()
    (src / "hello").write_text("from the host\n")
    b = make_bundle()
    b.config["mounts"] += [
        {"destination": "/mnt/ro", "type": "bind", "source": str(src),
         "options": ["rbind", "ro", "nosuid", "nodev"]},
        {"destination": "/mnt/rw", "type": "none", "source": str(src),
         "options": ["bind", "noexec"]},
        {"destination": "/etc/hello", "type": "bind", "source": str(src / "hello"),
         "options": ["bind", "ro"]},
    ]
    b.process["args"] = ["sh", "-c", r"""
cat /mnt/ro/hello /mnt/rw/hello /etc/hello
{ touch /mnt/ro/x; } 2>&1; echo rc=$?
touch /mnt/rw/x && echo wrote && rm /mnt/rw/x
echo '## mountinfo'; cat /proc/self/mountinfo
"""]
    b.save()
    res = run_both(runc, conch, b, cid)
    r, c = res["runc"], res["conch"]
    assert r.returncode == 0 and c.returncode == 0, (r.stderr, c.stderr)
    rv, cv = r.stdout.split("## mountinfo\n"), c.stdout.split("## mountinfo\n")
    assert cv[0] == rv[0]
    assert cv[0].startswith("from the host\n" * 3) and "wrote" in cv[0]
    compare_mounts(rv[1].splitlines(), cv[1].splitlines(), b.linux["readonlyPaths"])
    assert not os.path.exists(src / "x")


def test_missing_cwd_is_created(runc, conch, make_bundle, cid):
    b = make_bundle(["sh", "-c", "pwd; stat -c '%n %a %u:%g' /made /made/by /made/by/runtime"],
                    copy_rootfs=True)
    assert b.config["root"]["readonly"] is True  # made before the root is read-only
    b.process["cwd"] = "/made/by/runtime"
    b.process["user"] = {"uid": 1000, "gid": 1000}
    b.save()
    made = os.path.join(b.config["root"]["path"], "made")
    out = {}
    for rt in (runc, conch):
        if os.path.isdir(made):
            os.rmdir(os.path.join(made, "by", "runtime"))
            os.rmdir(os.path.join(made, "by"))
            os.rmdir(made)
        r = rt("run", "-b", b.path, cid())
        assert r.returncode == 0, (rt.name, r.stderr)
        out[rt.name] = r.stdout
        assert os.path.isdir(os.path.join(made, "by", "runtime")), rt.name
    assert out["conch"] == out["runc"]
    assert out["conch"].splitlines() == ["/made/by/runtime", "/made 755 0:0", "/made/by 755 0:0",
                                         "/made/by/runtime 755 0:0"]


def test_devices_cgroup_allow_list(runc, conch, make_bundle, cid):
    b = make_bundle(["cat", "/sys/fs/cgroup/devices/devices.list"])
    res = run_both(runc, conch, b, cid)
    assert res["runc"].returncode == 0, res["runc"].stderr
    assert res["conch"].stdout == res["runc"].stdout


# --- spec ---------------------------------------------------------------------------------

@pytest.mark.parametrize("rootless", [False, True])
def test_spec_is_runcs_default(runc, conch, tmp_path, rootless):
    files = {}
    extra = ["--rootless"] if rootless else []
    for rt in (runc, conch):
        d = tmp_path / f"spec-{rt.name}"
        d.mkdir()
        r = rt("spec", *extra, cwd=d)
        assert (r.returncode, r.stdout, r.stderr) == (0, "", ""), rt.name
        files[rt.name] = (d / "config.json").read_text()
    rj, cj = json.loads(files["runc"]), json.loads(files["conch"])
    assert (rj.pop("hostname"), cj.pop("hostname")) == ("runc", "conch")
    assert rj.pop("ociVersion").startswith("1.") and cj.pop("ociVersion").startswith("1.")
    assert cj == rj
    if not rootless:
        # the same text, tab-indented, line for line
        def lines(text):
            return [ln for ln in text.splitlines()
                    if not ln.strip().startswith(('"ociVersion"', '"hostname"'))]
        assert lines(files["conch"]) == lines(files["runc"])


def test_spec_refuses_to_overwrite(runc, conch, tmp_path):
    for rt in (runc, conch):
        d = tmp_path / f"spec-{rt.name}"
        d.mkdir()
        (d / "config.json").write_text("mine\n")
        for args in (("spec",), ("spec", "-b", str(d))):
            r = rt(*args, cwd=d)
            assert r.returncode == 1, rt.name
            assert message(r.stderr) == "File config.json exists. Remove it first", r.stderr
            assert (d / "config.json").read_text() == "mine\n"


# --- state and errors of the lifecycle ------------------------------------------------------

def wait_status(rt, c, status):
    deadline = time.monotonic() + 10
    while True:
        st = rt.state(c)
        if st["status"] == status:
            return st
        assert time.monotonic() < deadline, f"{rt.name}: {c} is {st['status']}, not {status}"
        time.sleep(0.02)


def test_state_through_the_lifecycle(runc, conch, make_bundle, cid, tmp_path):
    b = make_bundle(["sleep", "1000"])
    b.config["annotations"] = {"org.example.key": "value"}
    b.save()
    seen = {}
    for rt in (runc, conch):
        c = cid()
        r = detached(rt, tmp_path, "create", "-b", b.path, c)
        assert r.returncode == 0, r.stderr
        states = [rt.state(c)]
        assert rt("start", c).returncode == 0
        states.append(wait_status(rt, c, "running"))
        assert rt("kill", c, "KILL").returncode == 0
        states.append(wait_status(rt, c, "stopped"))
        r = rt("state", c)
        assert r.stdout.startswith("{\n  ") and not r.stdout.endswith("\n"), rt.name
        assert rt("delete", c).returncode == 0
        assert message(rt("state", c).stderr) == "container does not exist"
        seen[rt.name] = (c, states)
    for name, (c, states) in seen.items():
        assert [s["status"] for s in states] == ["created", "running", "stopped"], name
        assert [s["id"] for s in states] == [c] * 3
        assert states[0]["pid"] == states[1]["pid"] > 0 and states[2]["pid"] == 0
        assert len({s["created"] for s in states}) == 1
    for r_st, c_st in zip(seen["runc"][1], seen["conch"][1]):
        assert list(c_st) == list(r_st)
        for key in ("bundle", "rootfs", "annotations", "owner"):
            assert c_st[key] == r_st[key], key


def test_delete_force_of_an_unknown_id(runc, conch, cid):
    for rt in (runc, conch):
        r = rt("delete", "--force", cid())
        assert (r.returncode, r.stdout, r.stderr) == (0, "", ""), rt.name


def test_errors_of_wrong_state_operations(runc, conch, make_bundle, cid, tmp_path):
    b = make_bundle(["sleep", "1000"])
    msgs = {}
    for rt in (runc, conch):
        c = cid()
        got = msgs[rt.name] = []

        def fail(*args, rt=rt, c=c, got=got):
            r = rt(*args)
            got.append((" ".join(args).replace(c, "<id>"), r.returncode,
                        normal(message(r.stderr), rt, [c])))

        assert detached(rt, tmp_path, "create", "-b", b.path, c).returncode == 0
        assert rt("start", c).returncode == 0
        fail("start", c)
        fail("delete", c)
        fail("kill", c, "FOO")
        assert rt("kill", c, "0").returncode == 0  # only checks that it is there
        assert rt.state(c)["status"] == "running"
        assert rt("kill", c, "KILL").returncode == 0
        wait_status(rt, c, "stopped")
        fail("kill", c, "KILL")
        fail("kill", c)
        fail("kill", c, "0")
        fail("start", c)
        assert rt("delete", c).returncode == 0
        fail("delete", c)
        fail("kill", c, "9")
        fail("start", c)
    assert msgs["conch"] == msgs["runc"]
    assert msgs["runc"][:3] == [
        ("start <id>", 1, "cannot start an already running container"),
        ("delete <id>", 1, "cannot delete container <id> that is not stopped: running"),
        ("kill <id> FOO", 1, 'unknown signal "FOO"'),
    ]


def test_error_lines_with_a_json_log(runc, conch, cid, tmp_path):
    for rt in (runc, conch):
        log = tmp_path / f"{rt.name}.log"
        r = rt("--log", log, "--log-format", "json", "state", cid(), root=True)
        assert r.returncode == 1
        assert r.stderr == "container does not exist\n", rt.name
        (entry,) = [json.loads(ln) for ln in log.read_text().splitlines()]
        assert sorted(entry) == ["level", "msg", "time"]
        assert (entry["level"], entry["msg"]) == ("error", "container does not exist")


def test_error_messages_engines_match(runc, conch, make_bundle, cid, tmp_path):
    """The texts engines match on (engine-contract.md), for the common mistakes."""
    b = make_bundle(["sleep", "1000"])
    msgs = {}
    for rt in (runc, conch):
        c, ghost = cid(), cid()
        got = msgs[rt.name] = []

        def fail(*args, rt=rt, c=c, ghost=ghost, got=got):
            r = rt(*args)
            got.append((" ".join(args).replace(c, "<id>").replace(ghost, "<ghost>"),
                        r.returncode, normal(message(r.stderr), rt, [c, ghost])))

        for args in (("state", ghost), ("start", ghost), ("kill", ghost, "KILL"),
                     ("delete", ghost), ("pause", ghost), ("resume", ghost), ("ps", ghost),
                     ("exec", ghost, "true"), ("state", "../x"), ("state", "")):
            fail(*args)
        assert detached(rt, tmp_path, "create", "-b", b.path, c).returncode == 0
        r = detached(rt, tmp_path, "create", "-b", b.path, c)
        got.append(("create <id> again", r.returncode, normal(message(r.stderr), rt, [c])))
        assert rt("start", c).returncode == 0
        fail("delete", c)
        fail("resume", c)
        for sig in ("FOO", "SIGRTMIN", "99", "-9"):
            fail("kill", c, sig)
        assert rt.state(c)["status"] == "running"
        assert rt("kill", c, "KILL").returncode == 0
        wait_status(rt, c, "stopped")
        fail("pause", c)
        fail("exec", c, "true")
        assert rt("kill", "--all", c, "KILL").returncode == 0  # runc 1.1: not an error
        assert rt("delete", c).returncode == 0
    assert msgs["conch"] == msgs["runc"]
    assert msgs["runc"][10:12] == [
        ("create <id> again", 1, "<runtime> create failed: container with given ID already exists"),
        ("delete <id>", 1, "cannot delete container <id> that is not stopped: running")]


@pytest.mark.parametrize("argv", [
    ["state"], ["state", "a", "b"], ["kill"], ["kill", "a", "9", "x"], ["delete"], ["exec"],
    ["create"], ["run", "a", "b"], ["start"], ["ps"], ["pause"], ["list", "x"], ["spec", "x"],
    ["kill", "--bogus", "a"], ["kill", "a", "--all=maybe"], ["list", "-f"], ["delete", "a", "--forc"],
    ["nosuchcommand"], ["--bogus", "list"],
], ids=lambda a: "_".join(a))
def test_usage_errors_as_runc(runc, conch, argv, tmp_path):
    """A command line runc refuses: its status, the first line it prints on stdout
    ("Incorrect Usage", then the command's help) and its error, conch's name for runc's
    (runc names itself by its argv[0], as conch does)."""
    got = {}
    for rt in (runc, conch):
        r = rt(*argv, cwd=tmp_path)
        msg = message(r.stderr).replace(rt.argv0[0], "<argv0>")
        got[rt.name] = (r.returncode, r.stdout.split("\n", 1)[0], normal(msg, rt))
    assert got["conch"] == got["runc"]


def listing(rt, *args):
    r = rt("list", *args, check=True)
    return r.stdout


def tabwriter_columns(text):
    """The cells of a `list` table, checked to be laid out as Go's tabwriter lays out
    runc's: each column as wide as its widest cell + 3, at least 12; the last one bare."""
    lines = text.splitlines()
    cells = [re.split(r" {3,}", ln) for ln in lines]
    assert len({len(c) for c in cells}) == 1, text
    widths = [max(max(len(c[k]) for c in cells) + 3, 12) for k in range(len(cells[0]) - 1)]
    for ln, c in zip(lines, cells):
        assert ln == "".join(x.ljust(w) for x, w in zip(c, widths)) + c[-1], text
    return cells


def test_list_outputs_as_runc(runc, conch, make_bundle, cid, tmp_path):
    """`list` in every form as runc prints it, with 0, 1 and 2 containers (one created,
    one running, then one stopped): byte for byte once ids, pids, times and the
    ociVersion are put aside; tables laid out as Go's tabwriter does."""
    b = make_bundle(["sleep", "1000"])
    forms = (("--format", "json"), ("-f", "json"), ("--format=table",), (), ("-q",),
             ("--quiet", "--format", "json"))
    outs = {}
    for rt in (runc, conch):
        ids = [cid(), cid()]
        seen = [[listing(rt, *f) for f in forms]]
        for i, c in enumerate(ids):
            assert detached(rt, tmp_path, "create", "-b", b.path, c).returncode == 0
            if i:
                assert rt("start", c).returncode == 0
            seen.append([listing(rt, *f) for f in forms])
        assert rt("kill", ids[1], "KILL").returncode == 0
        wait_status(rt, ids[1], "stopped")
        seen.append([listing(rt, *f) for f in forms])
        for c in ids:
            assert rt("delete", "--force", c).returncode == 0

        def norm(text, form, ids=ids):
            if form in ((), ("--format=table",)):
                text = "\n".join(" | ".join(c) for c in tabwriter_columns(text))
            for n, c in enumerate(ids):
                text = text.replace(c, f"<id{n}>")
            text = re.sub(r"\d{4}-\d\d-\d\dT[\d:.]+Z", "<time>", text)
            text = re.sub(r'"ociVersion":"[^"]*"', '"ociVersion":"<v>"', text)  # runc: its own
            return re.sub(r'(?<=[ :])[1-9]\d*(?=[ ,])', "<pid>", text)

        outs[rt.name] = [[norm(o, f) for o, f in zip(step, forms)] for step in seen]
        if rt is runc:
            assert seen[0][:2] == ["null\n"] * 2  # no container: a nil slice in JSON
            assert seen[0][4:] == ["", ""]
    assert outs["conch"] == outs["runc"]


def test_stdio_is_given_to_the_user_as_runc(runc, conch, make_bundle, cid, tmp_path):
    """runc's fixStdioPermissions: a container process of a user can reopen its stdio
    (/proc/self/fd/N) when it is a pipe or a file the caller made; the uid only."""
    b = make_bundle(["sh", "-c", "echo out >> /proc/self/fd/1; echo err >> /proc/self/fd/2; "
                                 "stat -L -c %u:%g /proc/self/fd/1 >> /proc/self/fd/1"])
    b.process["user"] = {"uid": 1000, "gid": 1000}
    b.save()
    got = {}
    for rt in (runc, conch):
        # run -d: stdout a pipe the test made, stderr a file
        err = tmp_path / f"{rt.name}.err"
        with open(err, "wb") as fe:
            p = rt.popen("run", "-d", "-b", b.path, cid(), stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=fe)
            out = p.communicate(timeout=30)[0].decode()
        st = os.stat(err)
        got[rt.name] = [(p.returncode, out, err.read_text(), st.st_uid, st.st_gid)]
        # create + start: stdout a file
        out = tmp_path / f"{rt.name}.out"
        with open(out, "wb") as fo:
            c = cid()
            p = rt.popen("create", "-b", b.path, c, stdin=subprocess.DEVNULL, stdout=fo,
                         stderr=subprocess.DEVNULL)
            assert p.wait(30) == 0
        assert rt("start", c).returncode == 0
        wait_status(rt, c, "stopped")
        got[rt.name].append((out.read_text(), os.stat(out).st_uid))
    assert got["conch"] == got["runc"]
    (rc, out, err, uid, gid), (out2, uid2) = got["conch"]
    assert (rc, out[:9], err, uid, gid) == (0, "out\n1000:", "err\n", 1000, 0)  # gid kept
    assert (out2, uid2) == ("out\n1000:0\n", 1000)
