"""Configuration precedence, `cbir config`, and the CLI's dispatch and exit codes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cbir.cli import build_parser
from cbir.commands import COMMANDS
from cbir.core.config import Settings
from cbir.core.errors import ConfigError


def test_defaults():
    s = Settings.resolve(env={})
    assert s.home == Path("var")
    assert s.store == f"local:{Path('var') / 'index'}"
    assert s.cifar10 is None and s.es_url is None
    assert s.max_pixels == 64_000_000


def test_flags_override_environment():
    env = {"CBIR_HOME": "/e/home", "CBIR_STORE": "http://es:9200", "CBIR_CIFAR10": "/e/c.tgz"}
    s = Settings.resolve(env=env, store="local:/flag/idx")
    assert s.home == Path("/e/home")
    assert s.store == "local:/flag/idx"
    assert s.cifar10 == "/e/c.tgz"
    sources = {name: src for name, _, src in s.describe()}
    assert sources == {
        "CBIR_HOME": "environment",
        "CBIR_CIFAR10": "environment",
        "CBIR_STORE": "flag",
        "CBIR_ES_URL": "default",
        "CBIR_MAX_PIXELS": "default",
    }


def test_bad_pixel_limit():
    with pytest.raises(ConfigError, match="CBIR_MAX_PIXELS='lots'"):
        Settings.resolve(env={"CBIR_MAX_PIXELS": "lots"})


def test_cbir_config_prints_effective_values(cli, home):
    code, out, _ = cli("config", "--store", "http://localhost:9200")
    assert code == 0
    assert f"CBIR_HOME        {home}  (environment)" in out
    assert "CBIR_STORE       http://localhost:9200  (flag)" in out


def test_every_subcommand_is_listed_in_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert name.replace("_", "-") in out


def test_unknown_subcommand_is_a_usage_error(cli):
    with pytest.raises(SystemExit) as exit_info:
        cli("frobnicate")
    assert exit_info.value.code == 2


@pytest.mark.parametrize("given", [None, "ACTIVE"])
def test_the_cli_makes_openmp_threads_wait_passively_unless_told_otherwise(
    cli, home, monkeypatch, given
):
    monkeypatch.setenv("OMP_WAIT_POLICY", given or "")  # records the original for undo
    if given is None:
        monkeypatch.delenv("OMP_WAIT_POLICY")
    code, _, _ = cli("config")
    assert code == 0
    assert os.environ["OMP_WAIT_POLICY"] == (given or "PASSIVE")
