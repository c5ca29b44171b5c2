"""The shape of the configs: the mode as a name, plain data, declarative rules, checked keywords."""

from __future__ import annotations

import copy
import dataclasses
import pickle
from typing import Any

import pytest

from executor import ConfigError, ContainerConfig, EngineEndpoint, LocalConfig
from executor._settings import validate
from executor.container.config import DEFAULT_CONTAINERS

IMG = "img:1"


# -- the mode is a name ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "containers", "fork", "uses"),
    [
        ("fresh", 0, False, 1),
        ("pool", 4, False, 1),
        ("reuse", 4, False, 100),
        ("fork", 4, True, 1000),
    ],
)
def test_each_mode_has_its_documented_default_containers(
    mode: str, containers: int, fork: bool, uses: int
) -> None:
    """Without containers=, each mode keeps its documented number (fresh 0, others 4)."""
    config = ContainerConfig(IMG, mode=mode)  # type: ignore[arg-type]
    assert (config.mode, config.containers, config.fork) == (mode, containers, fork)
    assert config.uses_per_container == uses
    assert DEFAULT_CONTAINERS[mode] == containers


def test_containers_is_kept_as_given() -> None:
    """containers=N is what the mode keeps; max_uses applies to worker modes only."""
    assert ContainerConfig(IMG, mode="pool", containers=2).containers == 2
    assert ContainerConfig(IMG, mode="reuse", containers=0).containers == 0  # no cap
    assert ContainerConfig(IMG, mode="fork", max_uses=7).uses_per_container == 7
    assert ContainerConfig(IMG, mode="pool", max_uses=7).uses_per_container == 1


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        ({"containers": 2}, r"mode='fresh'.*use mode='pool', containers=2"),
        ({"mode": "pool", "containers": 0}, r"at least 1 in mode='pool'"),
        ({"mode": "fork", "containers": 0}, r"at least 1 in mode='fork'"),
        ({"mode": "forked"}, r"ContainerConfig\.mode must be 'fresh', 'pool', 'reuse' or 'fork'"),
        ({"mode": "pool", "containers": -1}, r"containers must be a non-negative integer"),
        ({"mode": "fork", "read_only": False}, r"read_only=False cannot be used with mode='fork'"),
    ],
)
def test_a_mode_and_containers_that_do_not_fit_are_refused(
    settings: dict[str, Any], match: str
) -> None:
    """A count the mode cannot use, or an unknown mode, is a ConfigError that says what fits."""
    with pytest.raises(ConfigError, match=match):
        ContainerConfig(IMG, **settings)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ({"reuse": True}, {"mode": "reuse", "containers": 0}, "use mode='reuse', containers=0"),
        ({"reuse": "fork"}, {"mode": "fork", "containers": 1}, "use mode='fork', containers=1"),
        ({"pool_size": 3}, {"mode": "pool", "containers": 3}, "use mode='pool', containers=3"),
        ({"pool_size": 0}, {"mode": "fresh"}, r"ContainerConfig\(pool_size=0\).*mode='fresh'"),
        ({"reuse": False}, {}, r"ContainerConfig\(reuse=False\) is deprecated"),
        (
            {"reuse": "fork", "pool_size": 2},
            {"mode": "fork", "containers": 2},
            r"reuse='fork', pool_size=2\) is deprecated since 0.3: use mode='fork', containers=2",
        ),
        ({"reuse": True, "pool_size": 4}, {"mode": "reuse", "containers": 4}, "containers=4"),
        ({"mode": "fork", "pool_size": 2}, {"mode": "fork", "containers": 2}, "containers=2"),
        ({"reuse": "fork", "mode": "fork"}, {"mode": "fork", "containers": 1}, "mode='fork'"),
        ({"reuse": True, "containers": 3}, {"mode": "reuse", "containers": 3}, "mode='reuse'"),
    ],
)
def test_old_mode_keywords_warn_and_keep_their_meaning(
    old: dict[str, Any], new: dict[str, Any], message: str
) -> None:
    """reuse= and pool_size= still work in 0.3, with a DeprecationWarning naming the new form."""
    with pytest.warns(DeprecationWarning, match=message):
        config = ContainerConfig(IMG, **old)
    assert config == ContainerConfig(IMG, **new)


@pytest.mark.parametrize(
    "settings",
    [
        {"reuse": "fork", "mode": "pool"},
        {"reuse": True, "mode": "fork"},
        {"pool_size": 2, "containers": 3, "mode": "pool"},
        {"reuse": "fork", "pool_size": 2, "containers": 5},
    ],
)
def test_old_and_new_mode_keywords_that_disagree_are_refused(settings: dict[str, Any]) -> None:
    """An old keyword contradicting a new one is a ConfigError, not a silent pick."""
    with pytest.raises(ConfigError, match="contradicts itself"):
        ContainerConfig(IMG, **settings)


def test_old_mode_attributes_warn_and_answer() -> None:
    """config.reuse and config.pool_size still read (deprecated): what the mode means."""
    config = ContainerConfig(IMG, mode="fork", containers=2)
    with pytest.warns(DeprecationWarning, match="config.mode"):
        assert config.reuse == "fork"
    with pytest.warns(DeprecationWarning, match="config.containers"):
        assert config.pool_size == 2


def test_old_mode_keyword_values_are_checked() -> None:
    """A wrong old value is refused as before, naming the old keyword."""
    with pytest.raises(ConfigError, match="reuse must be False, True or 'fork'"):
        ContainerConfig(IMG, reuse="yes")
    with pytest.raises(ConfigError, match="pool_size must be a non-negative integer"):
        ContainerConfig(IMG, pool_size=-1)


# -- plain data ------------------------------------------------------------------------------


def rich_config() -> ContainerConfig:
    return ContainerConfig(
        IMG,
        mode="fork",
        containers=3,
        files={"/app/execute.py": "def execute(x):\n    return x\n", "/app/blob": b"\x00"},
        env={"A": "1"},
        labels={"team": "x"},
        engines=["unix:///var/run/docker.sock", EngineEndpoint(url="tcp://h:2376", capacity=2)],
        schema_in={"type": "object"},
        collect="/tmp/out",
    )


def test_a_config_is_plain_data() -> None:
    """A config pickles, deep-copies and replaces into equal (or changed) configs."""
    config = rich_config()
    assert pickle.loads(pickle.dumps(config)) == config
    assert copy.deepcopy(config) == config
    assert copy.copy(config) == config
    assert dataclasses.replace(config, timeout=5) == dataclasses.replace(config, timeout=5.0)
    assert dataclasses.replace(config, timeout=5) != config
    assert dataclasses.replace(config, containers=1).containers == 1
    local = LocalConfig(timeout=2)
    assert pickle.loads(pickle.dumps(local)) == local == copy.deepcopy(local)


def test_a_live_client_in_the_config_is_refused_with_what_to_write() -> None:
    """docker= (an aiodocker client) is refused: the message says where it goes instead."""
    with pytest.raises(ConfigError, match=r"ContainerExecutor\(config, engine=DockerEngine"):
        ContainerConfig(IMG, docker=object())


def test_engine_objects_in_the_config_are_refused_with_what_to_write() -> None:
    """engines= in the config holds URLs and EngineEndpoints; Engine objects go to the
    executor, and the message says so."""
    from executor.testing import FakeEngine

    with pytest.raises(ConfigError, match=r"ContainerExecutor\(config, engines=\[\.\.\.\]\)"):
        ContainerConfig(IMG, engines=[FakeEngine()])
    with pytest.raises(ConfigError, match="engines and docker_url"):
        ContainerConfig(IMG, engines=["unix:///a.sock"], docker_url="unix:///b.sock")


# -- declarative rules -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "must"),
    [
        ("memory_bytes", "1g", "an integer of at least 6 MiB"),
        ("memory_bytes", 1024, "an integer of at least 6 MiB"),
        ("pids_limit", True, "a positive integer"),
        ("timeout", -1, "a positive number of seconds or None"),
        ("timeout", float("inf"), "a positive number of seconds or None"),
        ("start_timeout", None, "a positive number of seconds"),
        ("cpus", "2", "a number > 0 and <= 1024"),
        ("network", "yes", "True or False"),
        ("read_only", 1, "True or False"),
        ("user", "", "a non-empty string"),
        ("env", {"A": 1}, "a mapping of strings to strings"),
        ("files", {"/a": 1}, "a mapping of strings to str or bytes"),
        ("mounts", "/a:/b", "a list of strings"),
        ("command", "python x.py", "a list of strings or None"),
        ("labels", ["a=b"], "a mapping of strings to strings"),
        ("missing_image", "pull", "'error', 'copy' or 'build'"),
        ("on_empty", "queue", "'start' or 'wait'"),
        ("max_uses", 0, "a positive integer or None"),
        ("max_idle", 0, "a positive number of seconds or None"),
        ("image", "", "a non-empty image name"),
        ("engines", 5, "a list of engine URLs or EngineEndpoints"),
    ],
)
def test_a_wrong_value_is_a_config_error_naming_the_field(
    field: str, value: Any, must: str
) -> None:
    """Every field's rule refuses a wrong type or range with ContainerConfig.<field> must be..."""
    settings = {field: value}
    image = settings.pop("image", IMG)
    with pytest.raises(ConfigError) as info:
        ContainerConfig(image, **settings)
    message = str(info.value)
    assert message.startswith(f"ContainerConfig.{field} must be {must}")
    assert message.endswith(f", got {value!r}")


def test_every_container_setting_has_a_rule() -> None:
    """A new field comes with its rule (schemas excepted: any schema source is checked later)."""
    without = [
        f.name
        for f in dataclasses.fields(ContainerConfig)
        if "executor.rule" not in f.metadata and f.name not in ("schema_in", "schema_out")
    ]
    assert without == []


def test_validate_runs_cross_checks_after_field_rules() -> None:
    """validate() applies field rules first, then each named cross-field check in order."""

    @dataclasses.dataclass
    class Probe:
        n: int = 1

    with pytest.raises(ConfigError, match=r"^Probe\.n is odd$"):
        validate(Probe(), [lambda p: "n is odd" if p.n % 2 else None])


# -- checked keywords ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (
            lambda: ContainerConfig(IMG, timout=5),
            r"has no setting 'timout' \(did you mean 'timeout'\?\)",
        ),
        (lambda: ContainerConfig(IMG, contaners=2), r"did you mean 'containers'\?"),
        (lambda: ContainerConfig(IMG, memroy_bytes=2), r"did you mean 'memory_bytes'\?"),
        (lambda: LocalConfig(timout=5), r"LocalConfig has no setting 'timout' \(did you mean"),
        (lambda: ContainerConfig(IMG, zzz=1), r"no setting 'zzz' \(its settings: image, command"),
        (lambda: ContainerConfig(), r"missing a required argument: 'image'"),
        (lambda: ContainerConfig(IMG, 5), r"ContainerConfig: too many positional arguments"),
    ],
)
def test_a_wrong_keyword_is_a_config_error_with_a_suggestion(make: Any, match: str) -> None:
    """A misspelled, unknown or missing argument raises ConfigError (not TypeError)."""
    with pytest.raises(ConfigError, match=match):
        make()


def test_executor_keywords_are_checked_too() -> None:
    """A misspelled executor keyword is a ConfigError with a suggestion."""
    from executor import ContainerExecutor, LocalExecutor

    with pytest.raises(ConfigError, match=r"did you mean 'engines'\?"):
        ContainerExecutor(ContainerConfig(IMG), engnies=[])
    with pytest.raises(ConfigError, match=r"did you mean 'input_type'\?"):
        LocalExecutor(abs, input_typ=int)


@pytest.mark.parametrize("owner", ["CodeExecutor", "Session", "SessionPool"])
def test_the_config_given_where_the_language_belongs_shows_the_right_call(owner: str) -> None:
    """``CodeExecutor(config)`` (and ``Session``/``SessionPool``: the language comes first) is a
    ConfigError showing ``Owner("python", config)``, not a TypeError from the language table;
    any other non-string language too."""
    import executor

    make = getattr(executor, owner)
    right = rf'{owner} takes the language first.*{owner}\("python", config\)'
    with pytest.raises(ConfigError, match=right + "; got a ContainerConfig as the language"):
        make(ContainerConfig(IMG))
    with pytest.raises(ConfigError, match=right + "; got a int as the language"):
        make(3)
    with pytest.raises(ConfigError, match=right):
        make(ContainerConfig(IMG), ContainerConfig(IMG))


def test_signature_shows_the_real_settings() -> None:
    """The keyword check keeps the introspected signature (help(), IDEs) intact."""
    import inspect

    params = inspect.signature(ContainerConfig).parameters
    assert "mode" in params and "containers" in params and "reuse" not in params
