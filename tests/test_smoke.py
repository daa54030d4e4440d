"""The shortest path a user takes: run a container, see its output and exit code."""


def test_run_prints_and_exits_with_status(conch, make_bundle, cid):
    b = make_bundle(["sh", "-c", "echo hello; exit 3"])
    r = conch("run", "-b", b.path, cid())
    assert r.stdout == "hello\n"
    assert r.returncode == 3


def test_version(conch):
    r = conch("--version", check=True)
    lines = r.stdout.splitlines()
    assert lines[0].startswith("conch version ")
    assert lines[1].startswith("commit: ")
    assert lines[2].startswith("spec: 1.2")


def test_every_command_has_help(conch):
    from conch.cli import IMPLEMENTED
    for cmd in IMPLEMENTED:
        r = conch(cmd, "--help")
        assert r.returncode == 0, (cmd, r.stderr)
        assert f"conch {cmd}" in r.stdout and "USAGE" in r.stdout, cmd
    r = conch("--help")
    assert r.returncode == 0 and "COMMANDS" in r.stdout


def test_global_flags_in_both_forms(conch, make_bundle, cid):
    b = make_bundle(["true"])
    c = cid()
    r = conch("--log-format=json", f"--log={b.path}/log.json", "run", f"--bundle={b.path}", c,
              root=True)
    assert r.returncode == 0, r.stderr
    r = conch("--debug", "--log-format", "text", "--systemd-cgroup=false", "state", c)
    assert r.returncode == 1 and "container does not exist" in r.stderr
