"""registry_config.py and config_file.py: the configuration built from settings, the user's mapping merged on top,
every refusal in one line, the masking of secrets, and the trial start and the write against a fake engine."""

from __future__ import annotations

import json

import pytest

from ansible_collections.dockhand.registry.plugins.module_utils import registry_config as rc
from ansible_collections.dockhand.registry.plugins.module_utils.config_file import TrialFile, trial_start, write_config
from ansible_collections.dockhand.registry.plugins.module_utils.registry_config import (
    ConfigError,
    ConfigSettings,
    Endpoint,
    build,
    deep_merge,
    masked,
    parse,
    render,
    storage_driver,
)


def test_base_configuration_of_the_defaults():
    config = build(ConfigSettings())
    assert config["http"]["addr"] == ":5000"
    assert config["storage"] == {"filesystem": {"rootdirectory": "/var/lib/registry"}, "cache": {"blobdescriptor": "inmemory"}}
    assert config["health"]["storagedriver"]["enabled"] is True
    assert config["log"]["level"] == "info" and config["log"]["formatter"] == "text"
    assert "debug" not in config["http"] and "auth" not in config and "notifications" not in config


def test_every_setting_lands_in_its_key():
    settings = ConfigSettings(
        htpasswd="/auth/htpasswd", auth_realm="R", tls_cert="/certs/server.crt", tls_key="/certs/server.key",
        delete_enabled=True, drain_timeout=10, http_secret="s", proxy={"url": "https://up.example", "username": "u", "password": "p"},
        log_level="debug", log_formatter="json", storage_redirect_disable=True, blob_cache="redis",
        redis={"addr": "redis:6379", "password": "rp", "db": 2}, metrics=True,
        notifications=[Endpoint(url="http://hook.example/e", headers={"Authorization": "Bearer t"}, timeout="2s",
                                threshold=5, backoff="1s", ignored_media_types=["application/octet-stream"], ignored_actions=["pull"])],
    )  # fmt: skip
    config = build(settings)
    assert config["auth"] == {"htpasswd": {"realm": "R", "path": "/auth/htpasswd"}}
    assert config["http"]["tls"] == {"certificate": "/certs/server.crt", "key": "/certs/server.key"}
    assert config["http"]["draintimeout"] == "10s" and config["http"]["secret"] == "s"
    assert config["http"]["debug"] == {"addr": ":5001", "prometheus": {"enabled": True, "path": "/metrics"}}
    assert config["storage"]["delete"] == {"enabled": True} and config["storage"]["redirect"] == {"disable": True}
    assert config["storage"]["cache"] == {"blobdescriptor": "redis"}
    assert config["redis"] == {"addr": "redis:6379", "password": "rp", "db": 2}
    assert config["proxy"] == {"remoteurl": "https://up.example", "username": "u", "password": "p"}
    assert config["log"]["formatter"] == "json" and config["log"]["level"] == "debug"
    endpoint = config["notifications"]["endpoints"][0]
    assert endpoint == {
        "name": "endpoint-1", "url": "http://hook.example/e", "disabled": False, "headers": {"Authorization": ["Bearer t"]},
        "timeout": "2s", "threshold": 5, "backoff": "1s", "ignoredmediatypes": ["application/octet-stream"], "ignore": {"actions": ["pull"]},
    }  # fmt: skip


def test_deep_merge_merges_mappings_replaces_the_rest_and_null_removes():
    lower = {"a": {"b": 1, "c": [1, 2]}, "d": 1}
    assert deep_merge(lower, {"a": {"c": [3], "e": 2}, "d": None}) == {"a": {"b": 1, "c": [3], "e": 2}}
    assert lower == {"a": {"b": 1, "c": [1, 2]}, "d": 1}


def test_user_mapping_merged_on_top_and_another_driver_replaces_filesystem():
    config = build(ConfigSettings(
        config={"log": {"level": "warn"}, "storage": {"s3": {"region": "eu-west-1", "bucket": "b"}}, "http": {"headers": {"X-A": ["1"]}}},
        secret_config={"storage": {"s3": {"accesskey": "AK", "secretkey": "SK"}}},
    ))  # fmt: skip
    assert config["log"]["level"] == "warn"
    assert "filesystem" not in config["storage"]
    assert config["storage"]["s3"] == {"region": "eu-west-1", "bucket": "b", "accesskey": "AK", "secretkey": "SK"}
    assert config["storage"]["cache"] == {"blobdescriptor": "inmemory"}
    assert config["http"]["headers"] == {"X-Content-Type-Options": ["nosniff"], "X-A": ["1"]}
    assert storage_driver(config) == "s3"


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (ConfigSettings(config={"http": {"addr": ":6000"}}),
         "registry_config (option config) key http.addr conflicts with registry_port (option port), which sets it"),
        (ConfigSettings(config={"storage": {"filesystem": {"rootdirectory": "/data"}}}),
         "key storage.filesystem.rootdirectory conflicts with registry_data_path or registry_volume"),
        (ConfigSettings(config={"storage": None}), "key storage conflicts with registry_data_path"),
        (ConfigSettings(htpasswd="/auth/htpasswd", config={"auth": {"token": {}}}), "key auth conflicts with registry_auth_users"),
        (ConfigSettings(tls_cert="/c", tls_key="/k", config={"http": {"tls": {"minimumtls": "tls1.2"}}}),
         "key http.tls conflicts with registry_tls_cert or registry_tls_generate"),
        (ConfigSettings(metrics=True, config={"http": {"debug": {"addr": ":7000"}}}), "key http.debug.addr conflicts with registry_metrics"),
        (ConfigSettings(proxy={"url": "https://up"}, config={"proxy": {"remoteurl": "https://other"}}), "key proxy conflicts with registry_proxy"),
        (ConfigSettings(notifications=[Endpoint(url="http://a/")], config={"notifications": {"endpoints": []}}),
         "key notifications.endpoints conflicts with registry_notifications"),
        (ConfigSettings(http_secret="x", secret_config={"http": {"secret": "y"}}),
         "registry_secret_config (option secret_config) key http.secret conflicts with registry_http_secret"),
        (ConfigSettings(config={"bogus": {}}), "key 'bogus' is not a key of the distribution 2.8 configuration (it would be ignored)"),
        (ConfigSettings(config={"log": "debug"}), "registry_config (option config) log must be a mapping, not a string"),
        (ConfigSettings(config={"http": {"debug": {"adr": ":1"}}}), "http.debug: unknown key 'adr' (distribution 2.8 reads only addr, prometheus there)"),
        (ConfigSettings(config={"redis": {"db": "one"}}), "redis.db must be an integer, not a string"),
        (ConfigSettings(config={"health": {"storagedriver": {"interval": "often"}}}), "health.storagedriver.interval must be a duration"),
        (ConfigSettings(config={"http": {"headers": {"X-A": "1"}}}), "http.headers must be a mapping of header lists, not a mapping"),
        (ConfigSettings(config={"notifications": {"endpoints": [{"url": 1}]}}), "notifications.endpoints.0.url must be a string, not an integer"),
        (ConfigSettings(config={"storage": {"s3": {"region": "x"}, "gcs": {"bucket": "b"}}}), "names 2 storage drivers (gcs, s3): give one"),
        (ConfigSettings(blob_cache="redis"), "blob_cache type redis needs the Redis address"),
        (ConfigSettings(log_level="loud"), "log_level 'loud': one of error, warn, info, debug"),
        (ConfigSettings(notifications=[Endpoint(url="ftp://x")]), "notification endpoint 1: url 'ftp://x' is not an http(s) URL"),
        (ConfigSettings(notifications=[Endpoint(url="http://a/", name="n"), Endpoint(url="http://b/", name="n")]), "name 'n' is given twice"),
        (ConfigSettings(notifications=[Endpoint(url="http://a/", timeout="soon")]), "timeout 'soon' is not a duration"),
        (ConfigSettings(config=["log"]), "registry_config (option config) must be a mapping, not a list"),
    ],
)  # fmt: skip
def test_refusals_are_one_line_naming_the_key(settings, message):
    with pytest.raises(ConfigError) as caught:
        build(settings)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_secret_is_never_in_a_type_error():
    with pytest.raises(ConfigError) as caught:
        build(ConfigSettings(secret_config={"redis": {"password": ["hunter2"]}}))
    assert "hunter2" not in str(caught.value)


def test_render_is_stable_and_parses_back():
    config = build(ConfigSettings(config={"catalog": {"maxentries": 5}}))
    data = render(config)
    assert data == render(json.loads(json.dumps(config)))
    assert data.startswith(b"# ")
    assert parse(data) == config
    assert parse(b"[1, 2]") is None, "a list is not a configuration"


def test_masked_hides_secret_keys_headers_and_given_values():
    config = {
        "http": {"secret": "s", "headers": {"X-A": ["visible"]}, "tls": {"certificate": "/c"}},
        "storage": {"s3": {"accesskey": "AK", "secretkey": "SK", "region": "eu"}},
        "redis": {"password": "rp", "addr": "redis:6379"},
        "notifications": {"endpoints": [{"url": "http://x/", "headers": {"Authorization": ["Bearer t"]}}]},
        "proxy": {"remoteurl": "https://up", "password": "pp", "username": "u"},
        "custom": {"thing": "the-secret-value"},
    }
    shown = masked(config, ["the-secret-value"])
    text = json.dumps(shown)
    for secret in ("\"s\"", "AK", "SK", "rp", "Bearer t", "pp", "the-secret-value"):
        assert secret not in text, secret
    assert shown["http"]["headers"] == {"X-A": ["visible"]}
    assert shown["storage"]["s3"]["region"] == "eu" and shown["proxy"]["username"] == "u"


class TrialEngine:
    """An engine whose trial container logs ``output`` and then runs (listening) or exits."""

    def __init__(self, output: str, exits: bool) -> None:
        self.output, self.exits = output, exits
        self.created: dict = {}
        self.removed: list[str] = []

    def container(self, ref):
        if ref == "cid":
            return {"Id": "cid", "State": {"Running": not self.exits, "Status": "exited" if self.exits else "running", "ExitCode": 1}}
        return None

    def image(self, ref):
        return {"Id": "sha256:x"}

    def create_container(self, **kwargs):
        self.created = kwargs
        self.mounted = {m["target"]: open(m["source"], "rb").read() for m in kwargs["mounts"]}
        return "cid"

    def start(self, ref):
        pass

    def logs(self, ref, tail=5, since=None):
        return self.output

    def remove_container(self, ref):
        self.removed.append(ref)


def test_trial_start_listening_is_success_and_leaves_nothing(tmp_path):
    engine = TrialEngine('level=info msg="listening on [::]:5000"\n', exits=False)
    files = [TrialFile(rc.CONFIG_TARGET, data=b"{}"), TrialFile(rc.AUTH_TARGET, source=str(tmp_path / "h"))]
    (tmp_path / "h").write_text("alice:x\n")
    assert trial_start(engine, "registry:2", "reg", files, timeout=5) >= 0
    created = engine.created
    assert created["name"] == "reg-dockhand-trial" and created["port_bindings"] == {}
    assert created["read_only"] and created["cap_drop"] == ["ALL"] and created["tmpfs"] == {"/var/lib/registry": "size=64m"}
    assert engine.mounted == {rc.CONFIG_TARGET: b"{}", rc.AUTH_TARGET: b"alice:x\n"}
    assert engine.removed == ["cid"]
    source = next(m["source"] for m in created["mounts"] if m["target"] == rc.CONFIG_TARGET)
    assert not __import__("os").path.exists(source), "the candidate file outlived the trial"


def test_trial_start_failure_is_the_registry_error_in_one_line():
    output = (
        "configuration error: error parsing /etc/docker/registry/config.yml: invalid loglevel loud Must be one of [error, warn, info, debug]\n"
        "Usage:\n  registry serve <config> [flags]\n"
    )
    engine = TrialEngine(output, exits=True)
    with pytest.raises(ConfigError) as caught:
        trial_start(engine, "registry:2", "reg", [TrialFile(rc.CONFIG_TARGET, data=b"{}")], timeout=5)
    assert str(caught.value) == (
        "the registry refused the configuration (trial start of registry:2 exited 1): configuration error: error parsing"
        " /etc/docker/registry/config.yml: invalid loglevel loud Must be one of [error, warn, info, debug]"
    )
    assert engine.removed == ["cid"]


def test_trial_start_fatal_log_line_gives_its_message():
    engine = TrialEngine('time="t" level=info msg="starting"\ntime="t" level=fatal msg="open /certs/server.crt: no such file or directory"\n', exits=True)
    with pytest.raises(ConfigError, match=r"exited 1\): open /certs/server.crt: no such file or directory$"):
        trial_start(engine, "registry:2", "reg", [TrialFile(rc.CONFIG_TARGET, data=b"{}")], timeout=5)


def _params(tmp_path, **extra):
    params = {
        "path": str(tmp_path / "etc" / "registry.yml"), "name": "reg", "image": "registry:2", "validate": True, "validate_timeout": 5,
        "htpasswd": None, "auth_realm": "dockhand.registry", "tls_cert": None, "tls_key": None, "drain_timeout": 10,
        "http_secret": None, "proxy": None, "env": {}, "secret_env": {}, "log_level": "info", "log_formatter": "text",
        "storage_redirect_disable": False, "delete_enabled": False, "blob_cache": None, "metrics": False, "metrics_path": "/metrics",
        "notifications": [], "config": {}, "secret_config": {},
    }  # fmt: skip
    params.update(extra)
    return params


def test_write_config_tries_then_writes_then_is_unchanged(tmp_path):
    engine = TrialEngine('msg="listening on [::]:5000"', exits=False)
    params = _params(tmp_path, secret_config={"redis": {"password": "hunter2"}}, config={"redis": {"addr": "r:6379"}})
    first = write_config(params, lambda: engine)
    assert first["changed"] and first["actions"][0].startswith("try the configuration: the registry started on it")
    path = tmp_path / "etc" / "registry.yml"
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert parse(path.read_bytes())["redis"]["password"] == "hunter2"
    assert "hunter2" not in json.dumps(first)
    assert engine.mounted[rc.CONFIG_TARGET] == path.read_bytes()
    engine.created = {}
    again = write_config(params, lambda: engine)
    assert not again["changed"] and engine.created == {}, "an unchanged configuration is not tried again"


def test_write_config_refused_by_the_registry_writes_nothing(tmp_path):
    path = tmp_path / "etc" / "registry.yml"
    path.parent.mkdir()
    path.write_bytes(b"old")
    engine = TrialEngine("panic: invalid region provided: x\n", exits=True)
    with pytest.raises(ConfigError, match="exited 1\\): panic: invalid region provided: x"):
        write_config(_params(tmp_path, config={"storage": {"s3": {"region": "x"}}}), lambda: engine)
    assert path.read_bytes() == b"old"


def test_write_config_check_mode_neither_tries_nor_writes(tmp_path):
    def no_engine():
        raise AssertionError("check mode asked the engine")

    result = write_config(_params(tmp_path, log_formatter="json"), no_engine, check_mode=True)
    assert result["changed"] and result["actions"] == ["write %s" % (tmp_path / "etc" / "registry.yml")]
    assert json.loads(result["diff"]["after"])["log"]["formatter"] == "json"
    assert not (tmp_path / "etc").exists()
