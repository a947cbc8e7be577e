"""Player settings: command line over environment over the TOML file over defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from player.config import ConfigError, load


def cli(**values: object) -> dict[str, object]:
    base = dict.fromkeys(["config", "server", "token", "data_dir", "display", "frames_dir",
                          "size", "fullscreen", "font", "log_level"])
    return {**base, **values}


def test_precedence(tmp_path: Path) -> None:
    toml = tmp_path / "player.toml"
    toml.write_text('server = "https://file.example/"\ntoken = "file-token"\n'
                    'display = "headless"\nsize = "1280x720"\nfullscreen = false\n'
                    f'data_dir = "{tmp_path / "d"}"\n')
    s = load(cli(config=str(toml)), {})
    assert (s.server, s.token, s.display, s.size, s.fullscreen) == (
        "https://file.example", "file-token", "headless", (1280, 720), False)
    assert s.frames_dir == tmp_path / "d" / "frames"
    env = {"CUNPING_PLAYER_SERVER": "http://env.example", "CUNPING_PLAYER_SIZE": "1080x1920"}
    s = load(cli(config=str(toml)), env)
    assert (s.server, s.size) == ("http://env.example", (1080, 1920))
    s = load(cli(config=str(toml), server="http://cli.example", fullscreen=True), env)
    assert (s.server, s.fullscreen, s.token) == ("http://cli.example", True, "file-token")


def test_defaults(tmp_path: Path) -> None:
    s = load(cli(server="http://h", data_dir=str(tmp_path)), {})
    assert s.display == "pygame" and s.size is None and s.fullscreen is True
    assert s.log_level == "INFO" and s.token is None
    s = load(cli(server="http://h", display="headless", data_dir=str(tmp_path)), {})
    assert s.size == (1920, 1080)


def test_player_section_is_accepted(tmp_path: Path) -> None:
    toml = tmp_path / "p.toml"
    toml.write_text('[player]\nserver = "http://h"\n')
    assert load(cli(config=str(toml), data_dir=str(tmp_path)), {}).server == "http://h"


@pytest.mark.parametrize(("values", "message"), [
    ({}, "no server URL"),
    ({"server": "cunping.example"}, "http:// or https://"),
    ({"server": "http://h", "size": "big"}, "size must look like"),
    ({"server": "http://h", "size": "10x10"}, "out of range"),
    ({"server": "http://h", "display": "x11"}, "display must be one of"),
    ({"server": "http://h", "log_level": "loud"}, "log_level must be one of"),
    ({"server": "http://h", "font": "/no/such/font.ttc"}, "does not exist"),
    ({"server": "http://h", "config": "/no/such.toml"}, "does not exist"),
])
def test_bad_settings(tmp_path: Path, values: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load(cli(data_dir=str(tmp_path), **values), {})


def test_bad_file(tmp_path: Path) -> None:
    toml = tmp_path / "p.toml"
    toml.write_text('server = "http://h"\ncolour = "red"\n')
    with pytest.raises(ConfigError, match="unknown setting"):
        load(cli(config=str(toml)), {})
    toml.write_text("server = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load(cli(config=str(toml)), {})
    with pytest.raises(ConfigError, match="fullscreen must be true or false"):
        load(cli(server="http://h", data_dir=str(tmp_path)),
             {"CUNPING_PLAYER_FULLSCREEN": "maybe"})


def test_mute_from_each_source(tmp_path: Path) -> None:
    base = cli(server="http://h", data_dir=str(tmp_path))
    assert load(base, {}).mute is False
    assert load({**base, "mute": True}, {}).mute is True
    assert load(base, {"CUNPING_PLAYER_MUTE": "yes"}).mute is True
    toml = tmp_path / "player.toml"
    toml.write_text("mute = true\n")
    assert load({**base, "config": str(toml)}, {}).mute is True
    with pytest.raises(ConfigError, match="mute must be true or false"):
        load(base, {"CUNPING_PLAYER_MUTE": "loud"})


def test_mute_on_the_command_line() -> None:
    from player.__main__ import parser

    assert parser().parse_args(["--mute"]).mute is True
    assert parser().parse_args([]).mute is None
