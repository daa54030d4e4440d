"""cgroups with real containers: limits in the cgroup files and their effect,
pause/resume, ps, update, events, kill --all, removal on delete, bad input;
some against runc on the same bundle; the cgroup v2 code (freeze, procs, kill,
the device program) on this VM's cgroup2 mount; the systemd driver against a
real systemd booted as pid 1 of a conch container.

Containers use relative cgroup paths (the default: the id), so their cgroups
land under the test process's own cgroup in each hierarchy; the fixtures
check that nothing named after a container is left.
"""

import json
import os
import subprocess
import sys
import time

import pytest

from conftest import REPO, SESSION

sys.path.insert(0, REPO)

from conch.cgroups import V1Manager  # noqa: E402
from conch.cgroups.common import own_cgroups  # noqa: E402
from conch.cgroups.v2 import V2Manager  # noqa: E402
from helpers import SignalState, wait_for

UNIFIED = "/sys/fs/cgroup/unified"
MB = 1 << 20




def dirs_of(cid, cgpath=""):
    """The container's directory in each hierarchy, as conch and runc both place it."""
    return V1Manager.for_path(cgpath, cid).dirs


def cat(d, name):
    with open(os.path.join(d, name)) as f:
        return f.read().strip()


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return int(rest[11]) + int(rest[12])


def proc_state(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("State:"):
                return line.split(":", 1)[1].strip()
    return ""


def message(r):
    """The message of a logrus error line, unquoted."""
    line = r.stderr.strip()
    if 'msg="' in line:
        line = line.split('msg="', 1)[1][:-1]
    return line.replace('\\"', '"')


def ps_json(conch, c):
    r = conch("ps", "--format", "json", c, check=True)
    return json.loads(r.stdout)


def sleeper(make_bundle, args=("sleep", "100"), **linux):
    b = make_bundle(list(args))
    b.linux.update(linux)
    return b.save()


def start(conch, b, c):
    conch("run", "-d", "-b", b.path, c, check=True)
    return conch.state(c)["pid"]


# --- limits in the files, as runc writes them ---------------------------------------

RESOURCES = {
    "memory": {"limit": 64 * MB, "reservation": 32 * MB, "swap": 128 * MB, "swappiness": 10,
               "disableOOMKiller": True},
    "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0",
            "realtimeRuntime": 10000, "realtimePeriod": 1000000},
    "pids": {"limit": 50},
    "blockIO": {"weight": 500},
    "devices": [{"allow": False, "access": "rwm"}, {"allow": True, "type": "c", "major": 1,
                                                    "minor": 11, "access": "r"}],
}

FILES = [("memory", "memory.limit_in_bytes"), ("memory", "memory.soft_limit_in_bytes"),
         ("memory", "memory.memsw.limit_in_bytes"), ("memory", "memory.swappiness"),
         ("memory", "memory.oom_control"), ("cpu", "cpu.shares"), ("cpu", "cpu.cfs_quota_us"),
         ("cpu", "cpu.cfs_period_us"), ("cpu", "cpu.rt_runtime_us"), ("cpu", "cpu.rt_period_us"),
         ("cpuset", "cpuset.cpus"), ("cpuset", "cpuset.mems"), ("pids", "pids.max"),
         ("blkio", "blkio.bfq.weight"), ("devices", "devices.list")]


@pytest.mark.runc
def test_resource_files_are_what_runc_writes(runc, conch, make_bundle, cid):
    b = sleeper(make_bundle, resources=RESOURCES)
    seen = {}
    for rt in (runc, conch):
        c = cid()
        rt("run", "-d", "-b", b.path, c, check=True)
        d = dirs_of(c)
        seen[rt.name] = {f: cat(d[ctrl], f) for ctrl, f in FILES}
        rt("delete", "--force", c, check=True)
    assert seen["conch"] == seen["runc"]
    assert seen["conch"]["memory.limit_in_bytes"] == str(64 * MB)
    assert seen["conch"]["memory.oom_control"].startswith("oom_kill_disable 1")
    assert "c 1:11 r" in seen["conch"]["devices.list"]


def test_only_what_is_set_is_written(conch, make_bundle, cid):
    b = sleeper(make_bundle, resources={"pids": {"limit": 7}, "cpu": {"burst": 2000, "idle": 1}})
    c = cid()
    start(conch, b, c)
    d = dirs_of(c)
    assert cat(d["pids"], "pids.max") == "7"
    assert cat(d["cpu"], "cpu.cfs_burst_us") == "2000" and cat(d["cpu"], "cpu.idle") == "1"
    assert cat(d["memory"], "memory.limit_in_bytes") == cat(os.path.dirname(d["memory"]),
                                                            "memory.limit_in_bytes")
    assert cat(d["cpu"], "cpu.cfs_quota_us") == "-1"


# --- their effect ---------------------------------------------------------------------------

BOMB = "bomb() { bomb | bomb & }; bomb 2>/dev/null; exec sleep 60"


def refused_forks(d):
    return int(cat(d, "pids.events").split()[1])  # "max N": forks the limit refused


def test_a_fork_bomb_stops_at_the_pids_limit(conch, make_bundle, cid):
    b = sleeper(make_bundle, ["sh", "-c", BOMB], resources={"pids": {"limit": 16}})
    c = cid()
    pid = start(conch, b, c)
    d = dirs_of(c)["pids"]
    # a refused fork means the cgroup had 16 tasks at that moment
    wait_for(lambda: refused_forks(d) > 0, what="forks refused at the limit")
    seen = set()
    for _ in range(20):
        seen.add(int(cat(d, "pids.current")))
        time.sleep(0.01)
    assert max(seen) <= 16  # never more (the bomb's zombies keep their pids: pid 1 is sleep)
    assert len(ps_json(conch, c)) <= 16
    assert proc_state(pid)[0] in "SR"  # the init (now `sleep 60`) is unharmed
    conch("kill", c, "KILL", check=True)


def test_a_memory_hog_is_oom_killed_and_events_says_oom(conch, make_bundle, cid, tmp_path):
    # the hog volunteers (oom_score_adj 1000): once the reaper has freed tail's memory the
    # kernel may pick a second victim, and it must not be the init (lowering the init's
    # score needs CAP_SYS_RESOURCE, which CI's sandbox does not grant)
    b = sleeper(make_bundle, ["sh", "-c", "(echo 1000 > /proc/self/oom_score_adj; "
                              "head -c 200000000 /dev/zero | tail); "
                              "echo hog=$? > /dev/shm/rc; exec sleep 60"],
                resources={"memory": {"limit": 16 * MB}})
    c = cid()
    conch("create", "-b", b.path, c, check=True)
    out = open(tmp_path / "events.out", "w+")
    ev = conch.popen("events", "--interval", "30s", c, stdout=out, stderr=subprocess.STDOUT,
                     stdin=subprocess.DEVNULL)
    try:
        time.sleep(0.3)  # events has registered for OOM notifications
        conch("start", c, check=True)
        mem = dirs_of(c)["memory"]
        kills = lambda: int(cat(mem, "memory.oom_control").split("oom_kill ")[1].split()[0])
        wait_for(lambda: kills() >= 1, what="the OOM kill")
        assert int(cat(mem, "memory.failcnt")) > 0
        assert cat(mem, "memory.max_usage_in_bytes") == str(16 * MB)
        # the kill is counted before the shell has written the status: wait for it
        r = wait_for(lambda: (lambda r: r if r.returncode == 0 else None)(
            conch("exec", c, "cat", "/dev/shm/rc")), what="the hog's status")
        assert r.stdout.strip() == "hog=137"  # the pipeline's tail died of SIGKILL
        conch("kill", c, "KILL", check=True)
        assert ev.wait(10) == 0  # events ends with the container
    finally:
        if ev.poll() is None:
            ev.kill()
            ev.wait()
    out.seek(0)
    lines = [json.loads(x) for x in out.read().splitlines()]
    assert {"type": "oom", "id": c} in lines


def test_pause_freezes_every_process_and_resume_thaws(conch, make_bundle, cid):
    b = sleeper(make_bundle, ["sh", "-c", "while :; do :; done"])
    c = cid()
    pid = start(conch, b, c)
    conch("pause", c, check=True)
    assert conch.state(c)["status"] == "paused"
    assert cat(dirs_of(c)["freezer"], "freezer.state") == "FROZEN"
    assert proc_state(pid).startswith("D")  # a frozen task sleeps in the refrigerator
    t0 = cpu_ticks(pid)
    time.sleep(0.3)
    assert cpu_ticks(pid) == t0  # a busy loop gets no CPU while frozen
    r = conch("exec", c, "true")
    assert r.returncode != 0 and "paused" in r.stderr
    conch("resume", c, check=True)
    assert conch.state(c)["status"] == "running"
    time.sleep(0.3)
    assert cpu_ticks(pid) > t0
    assert proc_state(pid).startswith("R")


@pytest.mark.runc
def test_pause_and_resume_refusals_are_runc_s(runc, conch, make_bundle, cid):
    b = sleeper(make_bundle)
    for rt in (runc, conch):
        c = cid()
        rt("run", "-d", "-b", b.path, c, check=True)
        r = rt("resume", c)
        assert r.returncode == 1 and "container not paused" in r.stderr, (rt.name, r.stderr)
        rt("pause", c, check=True)
        r = rt("pause", c)
        assert r.returncode == 1 and "container not running" in r.stderr, (rt.name, r.stderr)
        r = rt("delete", c)
        assert r.returncode == 1 and "not stopped: paused" in r.stderr, (rt.name, r.stderr)
        rt("delete", "--force", c, check=True)  # a frozen container can be force-deleted


def test_a_created_container_can_be_paused(conch, make_bundle, cid):
    c = cid()
    conch("create", "-b", sleeper(make_bundle).path, c, check=True)
    conch("pause", c, check=True)
    assert conch.state(c)["status"] == "paused"
    conch("resume", c, check=True)
    assert conch.state(c)["status"] == "created"


HOG = "head -c 24000000 /dev/zero | tail >/dev/null; echo tail=$?"  # tail keeps 24 MB (one long line)


def test_update_changes_a_live_limit(conch, make_bundle, cid):
    b = sleeper(make_bundle, resources={"pids": {"limit": 10}, "memory": {"limit": 16 * MB}})
    c = cid()
    start(conch, b, c)
    d = dirs_of(c)
    assert conch("exec", c, "sh", "-c", HOG).stdout.strip() == "tail=137"  # OOM-killed
    conch("update", "--pids-limit", "12", "--memory", "64m", c, check=True)
    assert cat(d["pids"], "pids.max") == "12"
    assert cat(d["memory"], "memory.limit_in_bytes") == str(64 * MB)
    assert conch("exec", c, "sh", "-c", HOG).stdout.strip() == "tail=0"  # now it fits


UPDATE_FLAGS = ["--memory", "128m", "--memory-swap", "256m", "--memory-reservation", "64m",
                "--cpu-share", "300", "--cpu-quota", "20000", "--cpu-period", "50000",
                "--cpuset-cpus", "1", "--pids-limit", "20", "--blkio-weight", "700"]
UPDATED = [("memory", "memory.limit_in_bytes"), ("memory", "memory.memsw.limit_in_bytes"),
           ("memory", "memory.soft_limit_in_bytes"), ("cpu", "cpu.shares"),
           ("cpu", "cpu.cfs_quota_us"), ("cpu", "cpu.cfs_period_us"), ("cpuset", "cpuset.cpus"),
           ("pids", "pids.max"), ("blkio", "blkio.bfq.weight")]


@pytest.mark.runc
def test_update_flags_write_what_runc_writes(runc, conch, make_bundle, cid):
    b = sleeper(make_bundle, resources={"memory": {"limit": 64 * MB, "swap": 64 * MB}})
    seen = {}
    for rt in (runc, conch):
        c = cid()
        rt("run", "-d", "-b", b.path, c, check=True)
        rt("update", *UPDATE_FLAGS, c, check=True)
        d = dirs_of(c)
        seen[rt.name] = {f: cat(d[ctrl], f) for ctrl, f in UPDATED}
        rt("delete", "--force", c, check=True)
    assert seen["conch"] == seen["runc"]
    assert seen["conch"]["memory.memsw.limit_in_bytes"] == str(256 * MB)


def test_update_from_a_file_and_from_stdin(conch, make_bundle, cid, tmp_path):
    c = cid()
    start(conch, sleeper(make_bundle), c)
    d = dirs_of(c)
    f = tmp_path / "res.json"
    f.write_text(json.dumps({"memory": {"limit": 100 * MB, "reservation": 0, "swap": 200 * MB,
                                        "kernel": 0}, "cpu": {"shares": 256, "quota": 0,
                                                              "period": 0},
                             "blockIO": {"weight": 0}}))  # what docker sends
    conch("update", f"--resources={f}", c, check=True)
    assert cat(d["memory"], "memory.limit_in_bytes") == str(100 * MB)
    assert cat(d["memory"], "memory.memsw.limit_in_bytes") == str(200 * MB)
    assert cat(d["cpu"], "cpu.shares") == "256"
    assert cat(d["cpu"], "cpu.cfs_quota_us") == "-1"  # 0: not set
    conch("update", "-r", "-", "--pids-limit", "3", c, input='{"pids":{"limit":9}}', check=True)
    assert cat(d["pids"], "pids.max") == "9"  # with -r the flags are ignored
    # what was set before is kept: raising the limit alone still fits the swap limit
    conch("update", "--memory", "150m", c, check=True)
    assert cat(d["memory"], "memory.limit_in_bytes") == str(150 * MB)
    assert cat(d["memory"], "memory.memsw.limit_in_bytes") == str(200 * MB)


def test_update_refused_by_the_kernel_is_undone(conch, make_bundle, cid, tmp_path):
    c = cid()
    start(conch, sleeper(make_bundle), c)
    d = dirs_of(c)
    before = {k: cat(d[k], f) for k, f in (("memory", "memory.limit_in_bytes"), ("pids", "pids.max"))}
    res = {"memory": {"limit": 100 * MB}, "pids": {"limit": 9},
           "blockIO": {"throttleReadBpsDevice": [{"major": 1, "minor": 3, "rate": 1000}]}}
    r = conch("update", "-r", "-", c, input=json.dumps(res))
    assert r.returncode == 1
    assert "blockIO.throttleReadBpsDevice[0]: writing '1:3 1000' to blkio.throttle.read_bps_device" \
        in r.stderr
    after = {k: cat(d[k], f) for k, f in (("memory", "memory.limit_in_bytes"), ("pids", "pids.max"))}
    assert after == before  # the memory and pids writes were rolled back


@pytest.mark.parametrize("args,msg", [
    (["--memory", "lots"], "invalid value for --memory: invalid size: 'lots'"),
    (["--cpu-share", "-5"], "invalid value for --cpu-share: -5 is negative"),
    (["--cpuset-cpus", "9"], "cpu.cpus: writing '9' to cpuset.cpus: Numerical result out of range"),
    (["--memory", "1m"], "memory.limit: unable to set memory limit to 1048576 (current usage"),
    (["-r", "/nonexistent.json"], "reading resources from /nonexistent.json: No such file"),
])
def test_update_bad_values(conch, make_bundle, cid, args, msg):
    c = cid()
    # 3 MB in tmpfs: charged to the container, and it cannot go (no swap here)
    b = sleeper(make_bundle, ["sh", "-c", "head -c 3000000 /dev/zero > /dev/shm/f; "
                              "echo ready > /dev/shm/r; sleep 100"])
    start(conch, b, c)
    wait_for(lambda: conch("exec", c, "cat", "/dev/shm/r").stdout == "ready\n")
    r = conch("update", *args, c)
    assert r.returncode == 1 and msg in r.stderr, r.stderr


def test_update_of_a_stopped_container(conch, make_bundle, cid):
    c = cid()
    conch("run", "-d", "-b", make_bundle(["true"]).path, c, check=True)
    wait_for(lambda: conch.state(c)["status"] == "stopped")
    r = conch("update", "--pids-limit", "3", c)
    assert r.returncode == 1 and "container not running" in r.stderr


def test_ps_lists_exec_processes(conch, make_bundle, cid):
    c = cid()
    pid = start(conch, sleeper(make_bundle), c)
    conch("exec", "-d", c, "sleep", "201", check=True)
    pids = wait_for(lambda: (lambda p: p if len(p) == 2 else None)(ps_json(conch, c)))
    assert pid in pids
    other = [p for p in pids if p != pid][0]
    with open(f"/proc/{other}/cmdline", "rb") as f:
        assert f.read().split(b"\0")[:2] == [b"sleep", b"201"]
    table = conch("ps", c, check=True).stdout.splitlines()
    assert table[0].split()[:3] == ["UID", "PID", "PPID"]
    assert sorted(int(line.split()[1]) for line in table[1:]) == sorted(pids)
    assert any(line.endswith("sleep 201") for line in table[1:])
    custom = conch("ps", c, "-o", "pid,comm", check=True).stdout.split()
    assert custom[:2] == ["PID", "COMMAND"] and str(other) in custom


@pytest.mark.parametrize("sig", ["TERM", "KILL"])
def test_kill_all_reaches_every_process(conch, make_bundle, cid, sig):
    # TERM: the cgroup frozen, each process signalled, thawed; KILL: cgroup.kill of the
    # container's cgroup2 directory (this hybrid host's unified one), as runc 1.2
    b = make_bundle(["sh", "-c", "sleep 100 & sleep 100 & sleep 100"])
    b.linux["namespaces"] = [ns for ns in b.linux["namespaces"] if ns["type"] != "pid"]
    b.save()  # no pid namespace: the init's death would not take the others along
    c = cid()
    start(conch, b, c)
    pids = wait_for(lambda: (lambda p: p if len(p) == 3 else None)(ps_json(conch, c)))
    conch("kill", "--all", c, sig, check=True)
    wait_for(lambda: not ps_json(conch, c), what="every process gone")
    for pid in pids:
        assert not os.path.exists(f"/proc/{pid}/status") or proc_state(pid).startswith("Z")
    assert cat(dirs_of(c)["freezer"], "freezer.state") == "THAWED"
    # runc 1.1: --all on a stopped container is not an error (engines send it before delete)
    assert conch("kill", "--all", c, "KILL").returncode == 0
    assert conch("kill", c, "KILL").returncode == 1  # the init alone: "container not running"


def test_kill_all_of_a_paused_container(conch, make_bundle, cid):
    b = make_bundle(["sh", "-c", "sleep 100 & sleep 100"])
    b.linux["namespaces"] = [ns for ns in b.linux["namespaces"] if ns["type"] != "pid"]
    b.save()
    c = cid()
    start(conch, b, c)
    wait_for(lambda: len(ps_json(conch, c)) == 2)
    conch("pause", c, check=True)
    # a signal other than KILL leaves it paused (runc would thaw it): delivered on resume
    conch("kill", "--all", c, "STOP", check=True)
    assert conch.state(c)["status"] == "paused"
    # KILL: through cgroup.kill, and the v1 freezer thawed so that they can die
    conch("kill", "--all", c, "KILL", check=True)
    wait_for(lambda: not ps_json(conch, c), what="every process gone")
    assert conch.state(c)["status"] == "stopped"


def test_delete_removes_every_cgroup_and_sub_cgroups(conch, make_bundle, cid):
    b = make_bundle(["sh", "-c", "mkdir /sys/fs/cgroup/pids/sub /sys/fs/cgroup/memory/sub "
                     "&& echo $$ > /sys/fs/cgroup/pids/sub/cgroup.procs && exec sleep 100"])
    for m in b.config["mounts"]:
        if m["destination"] == "/sys/fs/cgroup":
            m["options"] = [o for o in m["options"] if o != "ro"] + ["rw"]
    b.linux["namespaces"].append({"type": "cgroup"})
    b.save()
    c = cid()
    start(conch, b, c)
    d = dirs_of(c)
    wait_for(lambda: os.path.isdir(os.path.join(d["memory"], "sub")))
    wait_for(lambda: ps_json(conch, c), what="the process in the sub-cgroup")
    assert set(d) >= {"memory", "pids", "freezer", "devices", "cpu", ""}
    conch("delete", "--force", c, check=True)
    for path in d.values():
        assert not os.path.exists(path), path


def test_cgroup_namespace_and_the_read_only_mount(conch, make_bundle, cid):
    b = make_bundle(["sh", "-c", "cat /proc/self/cgroup; cat /sys/fs/cgroup/memory/memory.limit_in_bytes;"
                     " cat /sys/fs/cgroup/pids/pids.max; mkdir /sys/fs/cgroup/pids/x"])
    b.linux["namespaces"].append({"type": "cgroup"})
    b.linux["resources"] = {"memory": {"limit": 32 * MB}, "pids": {"limit": 30}}
    b.save()
    r = conch("run", "-b", b.path, cid())
    lines = r.stdout.splitlines()
    assert all(line.endswith(":/") for line in lines[:-2]), lines  # the container's own root
    assert lines[-2:] == [str(32 * MB), "30"]
    assert r.returncode == 1 and "Read-only file system" in r.stderr


def test_hybrid_host_joins_the_unified_hierarchy_as_runc(conch, runc, make_bundle, cid):
    if not os.path.exists(os.path.join(UNIFIED, "cgroup.procs")):
        pytest.skip("not a hybrid host")
    b = sleeper(make_bundle)
    for rt in (runc, conch):
        c = cid()
        pid = start(rt, b, c)
        with open(f"/proc/{pid}/cgroup") as f:
            unified = [line.strip() for line in f if line.startswith("0::")][0]
        assert unified == "0::/" + os.path.join(own_cgroups()[""], c).lstrip("/"), rt.name
        rt("delete", "--force", c, check=True)
        assert not os.path.exists(dirs_of(c)[""])


@pytest.mark.runc
def test_a_relative_cgroups_path_is_under_our_own_cgroup(runc, conch, make_bundle, cid):
    """As runc: "parent/leaf" under the runtime's own cgroup in each hierarchy (ours
    in memory is not the root here); delete removes the leaf, the parent stays."""
    for rt in (runc, conch):
        c = cid()
        path = f"{c}-parent/leaf"
        b = sleeper(make_bundle)
        b.linux["cgroupsPath"] = path
        b.save()
        pid = start(rt, b, c)
        own = own_cgroups()
        with open(f"/proc/{pid}/cgroup") as f:
            got = dict(line.strip().split(":", 2)[1:] for line in f)
        for name, mine in own.items():
            key = "name=" + name if name == "systemd" else name
            assert got[key] == os.path.join(mine, path), (rt.name, name)
        rt("delete", "--force", c, check=True)
        d = dirs_of(c, path)
        for leaf in d.values():
            assert not os.path.exists(leaf)
            parent = os.path.dirname(leaf)
            assert os.path.isdir(parent), (rt.name, parent)
            os.rmdir(parent)


@pytest.mark.parametrize("res,path,msg", [
    ({"memory": {"limit": "x"}}, "", 'linux.resources.memory.limit: expected integer, got "x"'),
    ({"cpu": {"cpus": "7"}}, "", "linux.resources.cpu.cpus: writing '7' to cpuset.cpus: "
     "Numerical result out of range"),
    ({"cpu": {"shares": 1}}, "", "linux.resources.cpu.shares: the minimum allowed cpu-shares is 2"),
    ({"cpu": {"realtimeRuntime": 2000000, "realtimePeriod": 1000000}}, "",
     "linux.resources.cpu.realtimeRuntime: writing '2000000' to cpu.rt_runtime_us: Invalid argument"),
    ({"memory": {"useHierarchy": False}}, "", "linux.resources.memory.useHierarchy: this kernel only"),
    ({"unified": {"memory.high": "1"}}, "", "linux.resources.unified: cannot use unified"),
    ({"hugepageLimits": [{"pageSize": "2MB", "limit": 0}]}, "",
     "linux.resources.hugepageLimits: the hugetlb cgroup controller is not mounted"),
    ({"network": {"classID": 17}}, "", "linux.resources.network.classID: the net_cls cgroup"),
    ({"unified": {"../../escape": "1"}}, "", "linux.resources.unified.../../escape: must be a file name"),
    ({}, "a/../../b", "linux.cgroupsPath: must not contain '..'"),
    ({}, "system.slice:x:y", "needs --systemd-cgroup"),
])
def test_bad_resources_name_the_field_and_leave_nothing(conch, make_bundle, cid, res, path, msg):
    b = make_bundle(["true"])
    b.linux["resources"] = res
    if path:
        b.linux["cgroupsPath"] = path
    b.save()
    c = cid()
    r = conch("run", "-b", b.path, c)
    assert r.returncode == 1 and msg in message(r), r.stderr
    assert r.stderr.count("\n") == 1
    assert conch("list", "-q").stdout == ""
    for d in dirs_of(c).values():
        assert not os.path.exists(d), d  # nothing half-made (the fixture checks again)


# --- events ------------------------------------------------------------------------------------

def shape(o, prefix=""):
    out = []
    if isinstance(o, dict):
        for k, v in o.items():
            out.append(prefix + "/" + k)
            if k != "raw":
                out += shape(v, prefix + "/" + k)
    return out


@pytest.mark.runc
def test_events_stats_has_runc_s_shape(runc, conch, make_bundle, cid):
    b = sleeper(make_bundle, resources={"memory": {"limit": 64 * MB}, "pids": {"limit": 40}})
    got = {}
    for rt in (runc, conch):
        c = cid()
        rt("run", "-d", "-b", b.path, c, check=True)
        got[rt.name] = json.loads(rt("events", "--stats", c, check=True).stdout)
        assert got[rt.name]["id"] == c and got[rt.name]["type"] == "stats"
        rt("delete", "--force", c, check=True)
    r, k = got["runc"], got["conch"]
    assert [x for x in shape(k) if x != "/data/memory/cache"] == \
        [x for x in shape(r) if x != "/data/memory/cache"]
    assert set(k["data"]["memory"]["raw"]) == set(r["data"]["memory"]["raw"])
    assert k["data"]["pids"] == {"current": 1, "limit": 40} == r["data"]["pids"]
    assert k["data"]["memory"]["usage"]["limit"] == 64 * MB
    assert k["data"]["cpuset"] == r["data"]["cpuset"]


def test_events_streams_stats_and_ends_with_the_container(conch, make_bundle, cid):
    c = cid()
    start(conch, sleeper(make_bundle, ["sleep", "1"]), c)
    t = time.monotonic()
    r = conch("events", "--interval", "200ms", c, check=True)
    assert time.monotonic() - t < 3
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert len(lines) >= 2 and all(x["type"] == "stats" and x["id"] == c for x in lines)
    assert "cpu" in lines[0]["data"] and "memory" in lines[0]["data"]
    r = conch("events", c)
    assert r.returncode == 1 and f"container with id {c} is not running" in r.stderr


# --- cgroup v2, for real, on this VM's cgroup2 mount --------------------------------------------

@pytest.fixture
def unified_cgroup(request):
    """A V2Manager for a test cgroup under our own cgroup2 cgroup; removed afterwards."""
    if not os.path.exists(os.path.join(UNIFIED, "cgroup.procs")):
        pytest.skip("no cgroup2 mount at /sys/fs/cgroup/unified")
    own = own_cgroups().get("", "/")
    name = f"t{SESSION}-{request.node.name}"[:60].replace("[", "-").replace("]", "")
    m = V2Manager({"": os.path.normpath(f"{UNIFIED}{own}/{name}")})
    m.create()
    procs = []
    yield m, procs
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait()
    m.destroy()
    assert not os.path.exists(m.path)


def test_v2_procs_freeze_thaw_and_kill(unified_cgroup):
    m, procs = unified_cgroup
    for _ in range(2):
        procs.append(subprocess.Popen(["sh", "-c", "while :; do :; done"]))
    for p in procs:
        m.join(p.pid, [m.path])
    assert m.procs() == sorted(p.pid for p in procs)
    m.freeze()
    assert "frozen 1" in cat(m.path, "cgroup.events")
    ticks = [cpu_ticks(p.pid) for p in procs]
    time.sleep(0.3)
    assert [cpu_ticks(p.pid) for p in procs] == ticks  # no CPU while frozen
    assert all(proc_state(p.pid).startswith("S") for p in procs)  # cgroup2 freezer: sleeping
    m.thaw()
    assert "frozen 0" in cat(m.path, "cgroup.events")
    time.sleep(0.2)
    assert all(cpu_ticks(p.pid) > t for p, t in zip(procs, ticks))
    assert m.kill()  # cgroup.kill
    assert [p.wait(5) for p in procs] == [-9, -9]
    wait_for(lambda: m.procs() == [])


def test_v2_kill_all_uses_cgroup_kill(unified_cgroup, monkeypatch):
    from conch import container
    m, procs = unified_cgroup
    sub = os.path.join(m.path, "sub")
    os.mkdir(sub)
    try:
        for _ in range(2):
            procs.append(subprocess.Popen(["sleep", "100"]))
        m.join(procs[0].pid, [m.path])
        m.join(procs[1].pid, [sub])  # a sub-cgroup of the container's: reached too

        def no_kill(pid, sig):
            raise AssertionError("signalled one by one: cgroup.kill was not used")
        monkeypatch.setattr(container.os, "kill", no_kill)
        container.signal_all(SignalState(m), 9)
        assert [p.wait(5) for p in procs] == [-9, -9]
        wait_for(lambda: m.procs() == [])
    finally:
        os.rmdir(sub)


def test_v2_kill_all_other_signals_freeze_signal_thaw(unified_cgroup, monkeypatch):
    from conch import container
    m, procs = unified_cgroup
    for _ in range(2):
        procs.append(subprocess.Popen(["sleep", "100"]))
    for p in procs:
        m.join(p.pid, [m.path])
    seen = []
    real_kill = os.kill

    def kill(pid, sig):
        # the cgroup is to be frozen while each process is signalled (cgroup.events can
        # say "frozen 0" meanwhile: a frozen task leaves the freezer to die of a signal)
        seen.append((pid, sig, cat(m.path, "cgroup.freeze")))
        real_kill(pid, sig)
    monkeypatch.setattr(container.os, "kill", kill)
    container.signal_all(SignalState(m), 15)
    assert sorted(seen) == sorted((p.pid, 15, "1") for p in procs)
    assert cat(m.path, "cgroup.freeze") == "0" and "frozen 0" in cat(m.path, "cgroup.events")
    assert [p.wait(5) for p in procs] == [-15, -15]


def test_v2_device_program_on_the_cgroup(unified_cgroup):
    from conch.cgroups import bpf
    from conch.config import DEFAULT_DEVICE_RULES
    m, procs = unified_cgroup
    script = ("read x; head -c1 /dev/kmsg >/dev/null && echo kmsg-read; "
              "head -c1 /dev/null; echo null-read=$?; echo > /dev/null && echo null-write")

    def attempt():
        p = subprocess.Popen(["sh", "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
        procs.append(p)
        m.join(p.pid, [m.path])  # its children are forked in the cgroup
        return p.communicate("go\n", timeout=10)[0]

    m.set_devices([(False, "a", -1, -1, "rwm")] + list(DEFAULT_DEVICE_RULES))
    assert len(bpf.attached(m.path)) == 1
    out = attempt()
    assert "kmsg-read" not in out and "/dev/kmsg" in out and "Operation not permitted" in out
    assert "null-read=0" in out and "null-write" in out
    # an update replaces the program: /dev/kmsg readable, /dev/null no longer writable
    first = bpf.attached(m.path)
    m.set_devices([(True, "a", -1, -1, "rwm"), (False, "c", 1, 3, "w")])
    now = bpf.attached(m.path)
    assert len(now) == 1 and now != first
    out = attempt()
    assert "null-write" not in out and "null-read=0" in out


# --- the systemd driver, against a real systemd --------------------------------------------------
#
# systemd cannot be the system manager unless it is pid 1, and this VM's pid 1 is not
# systemd: so it is booted as pid 1 of a conch container ("the host") whose root is
# the VM's /usr and /etc, with a target of its own and nothing else to start. conch
# then runs inside that container with --systemd-cgroup and asks that systemd for
# transient scopes, over the system bus (a dbus-daemon started there) and over
# systemd's private socket. Everything systemd makes is under the container's cgroup.

SYSTEMD = "/lib/systemd/systemd"
TARGET = "[Unit]\nDescription=conch test target\nDefaultDependencies=no\n"


def _bounding_caps():
    from conch.config import CAPS
    with open("/proc/self/status") as f:
        bnd = int([x for x in f if x.startswith("CapBnd:")][0].split()[1], 16)
    return [name for i, name in enumerate(CAPS) if bnd >> i & 1]


@pytest.fixture
def systemd_host(conch, conch_bin, make_bundle, cid, tmp_path, rootfs):
    if not os.path.exists(SYSTEMD):
        pytest.skip("systemd is not installed")
    root = tmp_path / "sdroot"
    for d in ("usr", "etc", "proc", "sys", "dev", "run", "tmp", "var"):
        (root / d).mkdir(parents=True)
    for name in ("bin", "lib", "lib64", "sbin"):
        if os.path.islink("/" + name):
            os.symlink(os.readlink("/" + name), root / name)
    run = tmp_path / "sdrun"
    (run / "systemd" / "system").mkdir(parents=True)
    (run / "systemd" / "system" / "conch-test.target").write_text(TARGET)
    b = make_bundle([SYSTEMD, "--unit=conch-test.target", "--log-target=console",
                     "--log-level=warning"], name="systemd-host")
    cfg = b.config
    cfg["root"] = {"path": str(root), "readonly": True}
    cfg["process"]["env"] = ["container=conch", "PATH=/usr/sbin:/usr/bin:/sbin:/bin"]
    caps = _bounding_caps()
    cfg["process"]["capabilities"] = {k: caps for k in ("bounding", "effective", "permitted")}
    cfg["process"]["noNewPrivileges"] = False
    mounts = [m for m in cfg["mounts"] if m["destination"] != "/sys/fs/cgroup"]
    mounts.append({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                   "options": ["nosuid", "noexec", "nodev", "rw"]})  # systemd manages it
    for dest, src, mode in (("/usr", "/usr", "ro"), ("/etc", "/etc", "ro"),
                            ("/run", str(run), "rw")):
        mounts.append({"destination": dest, "type": "bind", "source": src,
                       "options": ["rbind", mode]})
    for dest in ("/tmp", "/var"):
        mounts.append({"destination": dest, "type": "tmpfs", "source": "tmpfs",
                       "options": ["nosuid", "nodev"]})
    # conch itself, its launcher, the inner container's bundle and rootfs
    for path, mode in ((REPO, "ro"), (os.path.dirname(conch_bin), "ro"),
                       (os.path.dirname(rootfs), "ro"), (str(tmp_path), "rw")):
        mounts.append({"destination": path, "type": "bind", "source": path,
                       "options": ["rbind", mode]})
    cfg["mounts"] = mounts
    cfg["linux"]["namespaces"].append({"type": "cgroup"})
    cfg["linux"]["maskedPaths"] = []
    cfg["linux"]["readonlyPaths"] = []
    cfg["linux"]["resources"] = {"devices": [{"allow": True, "access": "rwm"}]}
    b.save()
    host = cid()
    conch("run", "-d", "-b", b.path, host, check=True)

    def inside(*args, env=(), check=True, timeout=30):
        r = conch("exec", *[f"--env={e}" for e in env], host, *args, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError(f"{' '.join(args)}: {r.returncode}\n{r.stdout}\n{r.stderr}")
        return r

    deadline = time.monotonic() + 30
    while True:
        r = inside("systemctl", "is-system-running", check=False)
        if r.stdout.strip() in ("running", "degraded"):
            break
        if time.monotonic() > deadline:
            pytest.fail(f"systemd did not come up in the container: {r.stdout} {r.stderr}")
        time.sleep(0.1)
    yield host, inside
    conch("delete", "--force", host, check=True)


def _unit_props(inside, unit, *names):
    r = inside("systemctl", "show", "-p", ",".join(names), unit)
    return dict(line.split("=", 1) for line in r.stdout.splitlines() if "=" in line)


def test_systemd_driver_against_a_real_systemd(systemd_host, conch, conch_bin, make_bundle, cid):
    host, inside = systemd_host
    hdirs = dirs_of(host)
    # the system bus: a dbus-daemon in the container, systemd told to connect to it
    inside("sh", "-c", "mkdir -p /run/dbus && dbus-daemon --system --fork --nopidfile "
           "&& kill -USR1 1")
    wait_for(lambda: inside("busctl", "--system", "status", "org.freedesktop.systemd1",
                            check=False).returncode == 0, what="systemd on the system bus")
    inner = [conch_bin, "--root", "/run/conch-inner", "--systemd-cgroup"]
    b = sleeper(make_bundle, resources={"memory": {"limit": 32 * MB}, "pids": {"limit": 20},
                                        "cpu": {"shares": 512}})
    c = cid()
    conch.ids.add(c)
    inside(*inner, "run", "-d", "-b", b.path, c)
    unit = f"conch-{c}.scope"
    props = _unit_props(inside, unit, "ActiveState", "ControlGroup", "MemoryLimit", "TasksMax",
                        "CPUShares", "Delegate")
    assert props == {"ActiveState": "active", "ControlGroup": f"/system.slice/{unit}",
                     "MemoryLimit": str(32 * MB), "TasksMax": "20", "CPUShares": "512",
                     "Delegate": "yes"}
    # the files, seen from the VM: under the host container's own cgroup
    sub = f"system.slice/{unit}"
    assert cat(os.path.join(hdirs["memory"], sub), "memory.limit_in_bytes") == str(32 * MB)
    assert cat(os.path.join(hdirs["pids"], sub), "pids.max") == "20"
    assert cat(os.path.join(hdirs["systemd"], sub), "cgroup.procs")  # systemd put the init there
    st = json.loads(inside(*inner, "state", c).stdout)
    assert st["status"] == "running"
    assert inside(*inner, "ps", "--format", "json", c).stdout.strip() == f"[{st['pid']}]"
    inside(*inner, "pause", c)
    assert json.loads(inside(*inner, "state", c).stdout)["status"] == "paused"
    inside(*inner, "resume", c)
    inside(*inner, "update", "--memory", "48m", c)  # SetUnitProperties and the file
    assert _unit_props(inside, unit, "MemoryLimit") == {"MemoryLimit": str(48 * MB)}
    assert cat(os.path.join(hdirs["memory"], sub), "memory.limit_in_bytes") == str(48 * MB)
    inside(*inner, "delete", "--force", c)
    assert _unit_props(inside, unit, "LoadState") == {"LoadState": "not-found"}
    for d in hdirs.values():
        assert not os.path.exists(os.path.join(d, sub))


def test_systemd_driver_over_the_private_socket(systemd_host, conch, conch_bin, make_bundle, cid):
    """No system bus: systemd's own socket (/run/systemd/private), a peer connection."""
    host, inside = systemd_host
    env = ["DBUS_SYSTEM_BUS_ADDRESS=unix:path=/run/no-bus-here"]
    inner = [conch_bin, "--root", "/run/conch-inner", "--systemd-cgroup"]
    b = sleeper(make_bundle, resources={"pids": {"limit": 9}})
    b.linux["cgroupsPath"] = "machine-test.slice:ctr:box"
    b.save()
    c = cid()
    conch.ids.add(c)
    inside(*inner, "run", "-d", "-b", b.path, c, env=env)
    props = _unit_props(inside, "ctr-box.scope", "ActiveState", "ControlGroup", "TasksMax")
    assert props == {"ActiveState": "active", "TasksMax": "9",
                     "ControlGroup": "/machine.slice/machine-test.slice/ctr-box.scope"}
    r = inside(*inner, "run", "-d", "-b", b.path, cid(), env=env, check=False)
    assert r.returncode == 1 and "unit ctr-box.scope already exists" in r.stderr
    inside(*inner, "delete", "--force", c, env=env)
    assert _unit_props(inside, "ctr-box.scope", "LoadState") == {"LoadState": "not-found"}
