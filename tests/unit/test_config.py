"""Settings: a TOML file, overridden by the environment, overridden by flags; units;
one-line errors that say where a bad value came from; --print-config reads back."""
import io
import re
import tomllib
from pathlib import Path

import pytest

from chatsrv import cli
from chatsrv import config as C


def resolve(argv=(), env=None, toml=None, tmp_path=None):
    args = cli.parser().parse_args(["serve", *argv])
    if toml is not None:
        path = tmp_path / "chatsrv.toml"
        path.write_text(toml)
        args.config = str(path)
    return cli.settings(args, env or {})


def test_flag_over_env_over_file_over_default(tmp_path):
    toml = 'port = 9001\nmap_size = "2GiB"\nping-interval = "1m"\nsignup = false\nhost = "127.0.0.2"\n'
    env = {"CHATSRV_PORT": "9002", "CHATSRV_MAP_SIZE": "3G", "CHATSRV_UNRELATED": "x"}
    cfg, src = resolve(["--port", "9003"], env, toml, tmp_path)
    assert cfg.port == 9003 and src["port"] == "flag --port"
    assert cfg.map_size == 3 << 30 and src["map_size"] == "env CHATSRV_MAP_SIZE"
    assert cfg.ping_interval == 60.0 and src["ping_interval"].startswith("file ")
    assert cfg.signup is False and cfg.host == "127.0.0.2"
    assert cfg.rate == 100.0 and src["rate"] == "default"


def test_lists_and_bools_replace_the_lower_layer(tmp_path):
    toml = 'trusted_proxy = ["10.0.0.1", "10.0.0.2"]\nmetrics = false\n'
    cfg, src = resolve([], {}, toml, tmp_path)
    assert cfg.trusted_proxy == ["10.0.0.1", "10.0.0.2"] and cfg.metrics is False
    cfg, src = resolve([], {"CHATSRV_TRUSTED_PROXY": "127.0.0.1, ::1", "CHATSRV_METRICS": "on"}, toml, tmp_path)
    assert cfg.trusted_proxy == ["127.0.0.1", "::1"] and cfg.metrics is True
    cfg, src = resolve(["--trusted-proxy", "a", "--trusted-proxy", "b", "--no-metrics"],
                       {"CHATSRV_TRUSTED_PROXY": "c"}, toml, tmp_path)
    assert cfg.trusted_proxy == ["a", "b"] and cfg.metrics is False and src["metrics"] == "flag --metrics"


@pytest.mark.parametrize("raw, value", [
    ("16384", 16384), (4096, 4096), ("512KiB", 512 << 10), ("512k", 512 << 10), ("64M", 64 << 20),
    ("1G", 1 << 30), ("1GiB", 1 << 30), ("1.5MiB", 3 << 19), ("2GB", 2 * 10**9), ("100 B", 100),
])
def test_sizes_take_units(raw, value):
    assert C.parse("write_buffer_limit", raw) == value


@pytest.mark.parametrize("raw, value", [
    ("30", 30.0), (2.5, 2.5), ("30s", 30.0), ("500ms", 0.5), ("2m", 120.0), ("1h30m", 5400.0),
    ("1d", 86400.0), ("0.25s", 0.25),
])
def test_times_take_units(raw, value):
    assert C.parse("ping_interval", raw) == value


@pytest.mark.parametrize("name, raw", [
    ("map_size", "lots"), ("map_size", "1.5B"), ("map_size", -1), ("map_size", True), ("map_size", "1000"),
    ("map_size", "1023KiB"), ("ping_interval", "5x"),
    ("ping_interval", "-3s"), ("port", "http"), ("port", "70000"), ("rate", "fast"), ("rate", "-1"),
    ("signup", "maybe"), ("log_level", "loud"), ("push_ttl", "1.5s"), ("max_batch", "0"), ("host", 5),
])
def test_bad_values_are_refused(name, raw):
    with pytest.raises(ValueError):
        C.parse(name, raw)


def test_errors_are_one_line_and_name_the_source(tmp_path):
    with pytest.raises(C.ConfigError, match=r"^env CHATSRV_MAP_SIZE: expected a size"):
        resolve([], {"CHATSRV_MAP_SIZE": "huge"})
    with pytest.raises(C.ConfigError, match=r"^flag --port: expected a whole number, got 'x'$"):
        resolve(["--port", "x"])
    with pytest.raises(C.ConfigError, match=r"chatsrv.toml: unknown setting 'map_sise' \(did you mean map_size\?\)"):
        resolve([], {}, 'map_sise = "1G"\n', tmp_path)
    with pytest.raises(C.ConfigError, match=r"chatsrv.toml: not valid TOML"):
        resolve([], {}, "port = = 3\n", tmp_path)
    with pytest.raises(C.ConfigError, match=r"missing.toml: not found"):
        resolve(["--config", str(tmp_path / "missing.toml")])
    with pytest.raises(C.ConfigError, match=r"^file .*: expected a whole number, got 8080.5$"):
        resolve([], {}, "port = 8080.5\n", tmp_path)


def test_print_config_says_where_each_came_from_and_reads_back(tmp_path, capsys):
    path = tmp_path / "base.toml"
    path.write_text('max_message_bytes = "32KiB"\nallowed_origin = ["https://chat.example.com"]\n')
    rc = cli.main(["serve", "--config", str(path), "--port", "9100", "--push-ttl", "2h", "--print-config"])
    out = capsys.readouterr().out
    assert rc == 0
    lines = {m[1]: (m[2], m[3]) for m in re.finditer(r"^(\w+) = (.+?)\s+# (.+)$", out, re.M)}
    assert set(lines) == set(C.BY_NAME)
    assert lines["port"] == ("9100", "flag --port")
    assert lines["push_ttl"] == ('"2h"', "flag --push-ttl")
    assert lines["max_message_bytes"] == ('"32KiB"', f"file {path}")
    assert lines["rate"][1] == "default"
    # the output is a config file that gives the same settings
    again = tmp_path / "again.toml"
    again.write_text(out)
    tomllib.loads(out)
    cfg1, _ = resolve(["--config", str(path), "--port", "9100", "--push-ttl", "2h"])
    cfg2, src2 = resolve(["--config", str(again)])
    assert cfg1 == cfg2 and set(src2.values()) == {f"file {again}"}


def test_help_names_each_setting_environment_variable():
    out = io.StringIO()
    cli.parser()._subparsers._group_actions[0].choices["serve"].print_help(out)
    text = " ".join(out.getvalue().split())
    for name in C.BY_NAME:
        assert f"env {C.env_name(name)}]" in text, name
    assert "--config FILE" in text and "512KiB" in text


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--version"])
    assert e.value.code == 0 and re.fullmatch(r"chatsrv \d+\.\d+\.\d+\n", capsys.readouterr().out)


def test_every_setting_is_in_the_protocol_document():
    doc = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text()
    missing = [n for n in C.BY_NAME if f"`{C.env_name(n)}`" not in doc or f"`{C.flag_name(n)}" not in doc]
    assert not missing, f"settings missing from docs/protocol.md: {missing}"
