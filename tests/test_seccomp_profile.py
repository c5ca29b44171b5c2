"""The seccomp profile and ``ContainerConfig.seccomp``, without an engine."""

from __future__ import annotations

import json
import pickle
from typing import TYPE_CHECKING, Any

import pytest

from executor import ConfigError, ContainerConfig
from executor.container.config import (
    _default_profile,
    _gvisor_profile,
    _profile_problem,
    create_body,
)
from executor.engine.docker import _podman_oom, _podman_seccomp

if TYPE_CHECKING:
    from pathlib import Path

#: What the profile must never allow (docs/SECURITY.md, "System calls").
REFUSED = {
    "io_uring_setup", "io_uring_enter", "io_uring_register", "setns", "keyctl", "add_key",
    "request_key", "bpf", "userfaultfd", "perf_event_open", "ptrace", "process_vm_readv",
    "process_vm_writev", "kexec_load", "kexec_file_load", "open_by_handle_at",
    "name_to_handle_at", "mount", "umount2", "pivot_root", "fsopen", "fsmount", "move_mount",
    "open_tree", "init_module", "finit_module", "delete_module", "swapon", "swapoff", "acct",
    "quotactl", "lookup_dcookie", "vm86", "vm86old", "chroot", "reboot", "syslog",
}  # fmt: skip
#: What the runners need (fork mode's wipe and reaping, the Go supervisor's IPC calls).
NEEDED = {
    "prctl", "kill", "wait4", "waitid", "shmget", "shmctl", "semget", "semctl", "msgget",
    "msgctl", "execve", "pidfd_open", "pidfd_send_signal", "getdents64", "unlinkat",
}  # fmt: skip


def rules() -> list[dict[str, Any]]:
    profile = json.loads(_default_profile())
    assert profile["defaultAction"] == "SCMP_ACT_ERRNO"
    return list(profile["syscalls"])


def test_the_profile_allows_none_of_the_risky_calls_unconditionally() -> None:
    """No allow rule names a refused call; clone and unshare only with namespace flags masked."""
    for rule in rules():
        if rule["action"] != "SCMP_ACT_ALLOW":
            continue
        names = set(rule["names"])
        assert not names & REFUSED, names & REFUSED
        if names & {"clone", "unshare"}:
            (arg,) = rule["args"]
            assert arg["op"] == "SCMP_CMP_MASKED_EQ" and arg["valueTwo"] == 0
            assert arg["value"] & 0x7E020000 == 0x7E020000  # every CLONE_NEW* flag


def test_clone3_is_enosys_and_the_runners_needs_are_allowed() -> None:
    """clone3 answers ENOSYS (libc falls back to clone); what the runners call is allowed."""
    (clone3,) = [r for r in rules() if r["names"] == ["clone3"]]
    assert (clone3["action"], clone3["errnoRet"]) == ("SCMP_ACT_ERRNO", 38)
    allowed = {n for r in rules() if r["action"] == "SCMP_ACT_ALLOW" and "args" not in r
               for n in r["names"]}  # fmt: skip
    assert allowed >= NEEDED, NEEDED - allowed


def test_default_config_sends_the_profile_and_engine_sends_none() -> None:
    """The create body carries seccomp=<the profile>; seccomp='engine' leaves it out."""
    body = create_body(ContainerConfig("img"), "img", {})
    options = body["HostConfig"]["SecurityOpt"]
    assert options[0] == "no-new-privileges"
    assert json.loads(options[1].removeprefix("seccomp=")) == json.loads(_default_profile())
    engine = create_body(ContainerConfig("img", seccomp="engine"), "img", {})
    assert engine["HostConfig"]["SecurityOpt"] == ["no-new-privileges"]


def test_under_gvisor_clone3_is_left_to_gvisors_kernel() -> None:
    """runsc turns any seccomp errno into EPERM (no thread could start on clone3's), so a gVisor
    runtime gets the profile with clone3 allowed (gVisor answers ENOSYS itself); the rest is the
    same profile."""

    def rules(config: ContainerConfig) -> list[dict[str, Any]]:
        assert config.seccomp_json is not None
        return list(json.loads(config.seccomp_json)["syscalls"])

    runc, gvisor = ContainerConfig("x"), ContainerConfig("x", runtime="runsc")
    assert [r for r in rules(gvisor) if "clone3" in r["names"]] == [
        {"names": ["clone3"], "action": "SCMP_ACT_ALLOW"}
    ]
    assert next(r for r in rules(runc) if "clone3" in r["names"])["errnoRet"] == 38
    others = [r for r in rules(gvisor) if "clone3" not in r["names"]]
    assert others == [r for r in rules(runc) if "clone3" not in r["names"]]
    assert ContainerConfig("x", runtime="runsc", seccomp="engine").seccomp_json is None


def test_a_profile_path_is_read_at_config_time(tmp_path: Path) -> None:
    """A path's profile is loaded once, when the config is made; the config still pickles."""
    path = tmp_path / "p.json"
    path.write_text('{"defaultAction": "SCMP_ACT_ALLOW"}')
    config = ContainerConfig("img", seccomp=str(path))
    path.unlink()
    assert config.seccomp_json == '{"defaultAction":"SCMP_ACT_ALLOW"}'
    assert pickle.loads(pickle.dumps(config)).seccomp_json == config.seccomp_json


@pytest.mark.parametrize(
    ("content", "says"),
    [(None, "cannot read"), ("{not json", "cannot read"), ("[1]", "not a seccomp profile")],
)
def test_an_unusable_profile_is_a_config_error(
    tmp_path: Path, content: str | None, says: str
) -> None:
    """A missing, unparsable or non-profile file is a ConfigError naming it, before any engine."""
    path = tmp_path / "p.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError, match=says) as info:
        ContainerConfig("img", seccomp=str(path))
    assert str(path) in info.value.message


ACTIONS = "SCMP_ACT_KILL, SCMP_ACT_KILL_PROCESS, SCMP_ACT_KILL_THREAD, SCMP_ACT_TRAP"
ALLOW, ERRNO, NOTIFY = "SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_NOTIFY"


def write_profile(path: Path, default: object, rules: object) -> str:
    path.write_text(json.dumps({"defaultAction": default, "syscalls": rules}))
    return str(path)


@pytest.mark.parametrize(
    ("default", "rules", "field"),
    [
        ("SCMP_ACT_NONSENSE", None, "defaultAction"),
        ("scmp_act_allow", None, "defaultAction"),
        (3, None, "defaultAction"),
        (NOTIFY, None, "defaultAction is SCMP_ACT_NOTIFY"),
        (ALLOW, {"names": ["mknod"], "action": ERRNO}, "syscalls"),
        (ALLOW, ["mknod"], "syscalls[0]"),
        (ALLOW, [{"names": "mknod", "action": ERRNO}], "syscalls[0].names"),
        (ALLOW, [{"names": ["mknod", 7], "action": ERRNO}], "syscalls[0].names"),
        (ALLOW, [{"action": ERRNO}], "syscalls[0].names"),
        (ALLOW, [{"name": "mknod", "names": ["mknod"], "action": ERRNO}], "syscalls[0].name"),
        (ERRNO, [{"names": ["read"], "action": ALLOW}, {"names": ["mknod"]}], "syscalls[1].action"),
        (ERRNO, [{"names": ["read"], "action": "SCMP_ACT_NONSENSE"}], "syscalls[0].action"),
        (ALLOW, [{"names": ["mknod"], "action": NOTIFY}], "syscalls[0].action is SCMP_ACT_NOTIFY"),
    ],
)
def test_a_profile_the_engine_would_refuse_is_a_config_error(
    tmp_path: Path, default: object, rules: object, field: str
) -> None:
    """A parseable profile with a bad action or rule shape is CONFIG_INVALID when the config is
    made, naming the field and what is accepted, instead of an engine error at create."""
    path = write_profile(tmp_path / "p.json", default, rules)
    with pytest.raises(ConfigError) as info:
        ContainerConfig("img", seccomp=path)
    message = info.value.message
    assert info.value.code == "CONFIG_INVALID"
    assert f"in {path!r}, {field}" in message, message
    if field.split()[0].lower().endswith("action"):
        assert ACTIONS in message and "SCMP_ACT_LOG" in message, message


@pytest.mark.parametrize(
    "rules",
    [
        None,
        [],
        [{"name": "mknod", "action": ERRNO, "errnoRet": 1}],
        [{"names": [], "action": "SCMP_ACT_LOG"}],
        [{"names": ["no_such_call"], "action": "SCMP_ACT_KILL_THREAD"}],
        [
            {"names": ["mknod"], "action": action}
            for action in ("SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_TRAP")
        ],
        [{"names": ["mknod"], "action": "SCMP_ACT_TRACE"}],
    ],
)
def test_profiles_the_engine_takes_pass(tmp_path: Path, rules: list[Any] | None) -> None:
    """What runc takes passes (each runc action but NOTIFY, moby's older one-string ``name``, a
    null or empty rule list, names runc does not know), and so do the library's own profiles."""
    path = write_profile(tmp_path / "p.json", ALLOW, rules)
    assert ContainerConfig("img", seccomp=path).seccomp_json is not None
    assert _profile_problem(json.loads(_default_profile())) is None
    assert _profile_problem(json.loads(_gvisor_profile())) is None


def test_podman_gets_the_profile_as_a_private_file() -> None:
    """For Podman an inline profile becomes a path to an identical file only we may change."""
    body = create_body(ContainerConfig("img"), "img", {})
    changed = _podman_seccomp(body, "unix:///run/podman/podman.sock")
    option = changed["HostConfig"]["SecurityOpt"][1]
    with open(option.removeprefix("seccomp="), encoding="utf-8") as fh:
        assert fh.read() == _default_profile()
    with pytest.raises(ConfigError, match="own host"):
        _podman_seccomp(body, "tcp://10.0.0.1:8080")


@pytest.mark.parametrize(
    ("state", "host", "path", "oom"),
    [
        ({"ExitCode": 137}, {"Memory": 64}, "python3", True),
        ({"ExitCode": 137}, {"Memory": 0}, "python3", False),
        ({"ExitCode": 1}, {"Memory": 64}, "python3", False),
        ({"ExitCode": 137}, {"Memory": 64, "Init": True}, "python3", False),
        ({"ExitCode": 137}, {"Memory": 64}, "/run/podman-init", False),
    ],
)
def test_podman_oom_is_137_under_a_limit_without_an_init(
    state: dict[str, int], host: dict[str, object], path: str, oom: bool
) -> None:
    """On Podman a SIGKILL status of PID 1 under a memory limit reads as OOM, unless an init ran."""
    assert _podman_oom({"State": state, "HostConfig": host, "Path": path}) is oom
