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
