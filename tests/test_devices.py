"""The devices cgroup: linux.resources.devices as runc applies it (v1)."""

import pytest

from conch.cgroups import effective_device_rules
from conch.config import DEFAULT_DEVICE_RULES


def test_deny_all_then_allows_keeps_the_allows():
    allow_all, entries = effective_device_rules(
        [(False, "a", -1, -1, "rwm"), (True, "c", 10, 229, "rwm")] + list(DEFAULT_DEVICE_RULES))
    assert not allow_all
    assert entries[("c", 10, 229)] == "mrw"
    assert entries[("c", -1, -1)] == "m"
    assert ("c", 1, 11) not in entries


def test_a_later_deny_takes_access_back():
    allow_all, entries = effective_device_rules(
        [(False, "a", -1, -1, "rwm"), (True, "c", 1, 3, "rwm"), (False, "c", 1, 3, "w")])
    assert entries == {("c", 1, 3): "mr"}


def test_allow_all_with_exceptions():
    allow_all, entries = effective_device_rules([(True, "a", -1, -1, "rwm"),
                                                 (False, "b", 8, 0, "rwm")])
    assert allow_all and entries == {("b", 8, 0): "mrw"}


def test_a_device_node_outside_the_allow_list_cannot_be_opened(conch, make_bundle, cid):
    b = make_bundle(["sh", "-c", "head -c1 /dev/kmsg >/dev/null && echo open; "
                     "head -c1 /dev/urandom >/dev/null && echo urandom"])
    b.linux["devices"] = [{"path": "/dev/kmsg", "type": "c", "major": 1, "minor": 11,
                           "fileMode": 0o644}]
    b.save()  # the default spec has resources.devices = [deny all]
    r = conch("run", "-b", b.path, cid())
    assert "open" not in r.stdout.split()
    assert "urandom" in r.stdout
    assert "Operation not permitted" in r.stderr


@pytest.mark.parametrize("rule,field", [
    ({"allow": "yes"}, "linux.resources.devices[0].allow: expected boolean"),
    ({"allow": True, "type": "x"}, "linux.resources.devices[0].type: unknown device type"),
    ({"allow": True, "access": "rwx"}, "linux.resources.devices[0].access: expected letters"),
    ({"allow": True, "major": "1"}, "linux.resources.devices[0].major: expected integer"),
])
def test_bad_device_rules_name_the_field(conch, make_bundle, cid, rule, field):
    b = make_bundle(["true"])
    b.linux["resources"] = {"devices": [rule]}
    b.save()
    r = conch("run", "-b", b.path, cid())
    assert r.returncode == 1
    assert field in r.stderr
