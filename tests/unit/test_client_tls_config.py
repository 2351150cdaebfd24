"""Where the SDK and CLI take their TLS settings from: arguments, LORAG_TLS_* and the config file."""

import pytest

from lorag.client.config import ConfigError, read_config_file, resolve, write_config_file
from lorag.client.tls import TLSConfig, TLSConfigError


def test_plaintext_unless_something_asks_for_tls(tmp_path):
    cfg = resolve(env={}, path=tmp_path / "none.toml", local_key=False)
    assert cfg.tls is None and "tls" not in cfg.sources


def test_a_ca_bundle_turns_tls_on_and_env_beats_the_file(tmp_path):
    path = tmp_path / "lorag" / "config.toml"
    write_config_file({"tls_ca": "certs/ca.pem", "tls_server_name": "lorag.internal"}, path)
    cfg = resolve(env={}, path=path, local_key=False)
    assert cfg.tls == TLSConfig(
        ca_file=(path.parent / "certs/ca.pem").resolve(), server_name="lorag.internal"
    )
    assert cfg.sources["tls_ca"] == str(path) and cfg.sources["tls"]
    assert cfg.tls.channel_options() == [("grpc.ssl_target_name_override", "lorag.internal")]

    env = {"LORAG_TLS_CA": "/etc/ca.pem", "LORAG_TLS_CERT": "/etc/c.pem", "LORAG_TLS_KEY": "/etc/c.key"}
    cfg = resolve(env=env, path=path, local_key=False)
    assert (str(cfg.tls.ca_file), str(cfg.tls.cert_file), str(cfg.tls.key_file)) == tuple(env.values())
    assert cfg.sources["tls_cert"] == "$LORAG_TLS_CERT"

    cfg = resolve(tls=False, env=env, path=path, local_key=False)  # --no-tls wins
    assert cfg.tls is None


def test_tls_alone_uses_the_system_roots(tmp_path):
    path = tmp_path / "config.toml"
    write_config_file({"tls": True}, path)
    assert read_config_file(path) == {"tls": True}
    cfg = resolve(env={}, path=path, local_key=False)
    assert cfg.tls == TLSConfig()
    assert resolve(env={"LORAG_TLS": "off"}, path=path, local_key=False).tls is None


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"LORAG_TLS": "maybe"}, "true or false"),
        ({"LORAG_TLS_CERT": "/c.pem"}, "needs its key"),
    ],
)
def test_bad_tls_settings_are_config_errors(tmp_path, env, message):
    with pytest.raises(ConfigError, match=message):
        resolve(env=env, path=tmp_path / "none.toml", local_key=False)


def test_a_config_file_with_a_wrong_type_is_refused(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text('tls = "yes"\n')
    with pytest.raises(ConfigError, match="tls must be a bool"):
        read_config_file(path)


def test_unreadable_or_non_pem_files_fail_with_the_file_named(tmp_path):
    with pytest.raises(TLSConfigError, match="cannot read the TLS CA bundle"):
        TLSConfig(ca_file=tmp_path / "missing.pem").credentials()
    (tmp_path / "junk.pem").write_text("junk")
    with pytest.raises(TLSConfigError, match="not PEM"):
        TLSConfig(ca_file=tmp_path / "junk.pem").credentials()


def test_cli_config_set_show_and_unset_tls(tmp_path):
    from click.testing import CliRunner

    from lorag.cli import cli

    config = tmp_path / "config.toml"
    env = {"LORAG_CONFIG": str(config), "LORAG_DATA_DIR": str(tmp_path / "data")}
    runner = CliRunner()
    (tmp_path / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    assert runner.invoke(cli, ["config", "set", "tls_ca", str(tmp_path / "ca.pem")], env=env).exit_code == 0
    assert runner.invoke(cli, ["config", "set", "tls", "maybe"], env=env).exit_code == 2
    assert runner.invoke(cli, ["config", "set", "tls", "yes"], env=env).exit_code == 0
    assert read_config_file(config) == {"tls_ca": str(tmp_path / "ca.pem"), "tls": True}
    shown = runner.invoke(cli, ["config", "show"], env=env).output
    assert "tls          on" in shown and str(tmp_path / "ca.pem") in shown
    assert runner.invoke(cli, ["config", "unset", "tls"], env=env).exit_code == 0
    assert runner.invoke(cli, ["config", "unset", "tls_ca"], env=env).exit_code == 0
    assert "off (plaintext)" in runner.invoke(cli, ["config", "show"], env=env).output
