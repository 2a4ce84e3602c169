"""Each setting is declared once, on its field: ``serve``'s flags, their variables and the documented table agree."""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

import pytest

from tornado_petitions import cli
from tornado_petitions.settings import (
    DeclaredSetting,
    Limits,
    RateLimits,
    Settings,
    declared_settings,
    markdown_table,
    networks,
)

OPERATIONS = Path(__file__).resolve().parent.parent / "docs" / "operations.md"

# Fields tests and benchmarks set through ``make_app``, on purpose without a flag (docs/operations.md says so).
WITHOUT_A_FLAG = {
    "xsrf_cookies",
    "db_inline",
    *(
        f"limits.{field.name}"
        for field in dataclasses.fields(Limits)
        if field.name.endswith(("_min", "_max"))
    ),
}


def field_paths(cls: type = Settings, prefix: str = "") -> list[str]:
    paths = []
    for field in dataclasses.fields(cls):
        if field.name in ("limits", "rate_limits"):
            paths += field_paths(Limits if field.name == "limits" else RateLimits, f"{field.name}.")
        else:
            paths.append(prefix + field.name)
    return paths


def sample_text(setting: DeclaredSetting) -> tuple[str, object]:
    """Text an operator might write for this setting, and the value it means."""
    default = setting.default
    if setting.declaration.parse is networks:
        return "10.0.0.0/8, 2001:db8::1", ("10.0.0.0/8", "2001:db8::1/128")
    if isinstance(default, bool):
        return ("1", True) if not default else ("0", False)
    if isinstance(default, tuple):
        return " https://a.example/, https://b.example ,", ("https://a.example", "https://b.example")
    if default is None:
        return "redis://elsewhere:6380/2", "redis://elsewhere:6380/2"
    if isinstance(default, int):
        return str(default + 7), default + 7
    if isinstance(default, float):
        return str(default + 0.25), default + 0.25
    return "warning", "warning"


@pytest.fixture
def clean_environment(monkeypatch):
    for name in [name for name in os.environ if name.startswith("PETITIONS_")]:
        monkeypatch.delenv(name)
    return monkeypatch


def test_the_documented_table_is_the_declaration():
    text = OPERATIONS.read_text()
    documented = text.split("<!-- settings:begin -->\n", 1)[1].split("<!-- settings:end -->", 1)[0]
    assert documented == markdown_table(), (
        "docs/operations.md's settings table differs from tornado_petitions/settings.py: "
        "paste `python -m tornado_petitions settings --markdown` between the settings markers"
    )


def test_every_field_has_a_flag_and_a_variable_unless_it_is_for_tests_only():
    declared = {setting.path: setting.declaration for setting in declared_settings()}
    assert set(field_paths()) - set(declared) == WITHOUT_A_FLAG
    flags = [declaration.flag for declaration in declared.values()]
    assert len(set(flags)) == len(flags)
    for declaration in declared.values():
        assert re.fullmatch(r"--[a-z][a-z0-9-]*", declaration.flag)
        assert declaration.variable == "PETITIONS_" + declaration.flag[2:].upper().replace("-", "_")
        assert declaration.help


def test_serve_help_names_every_flag_with_its_variable(clean_environment, capsys):
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["serve", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    for setting in declared_settings():
        assert setting.declaration.flag in shown
        assert f"(env {setting.declaration.variable})" in shown


def test_without_flags_or_variables_serve_takes_the_defaults(clean_environment):
    assert cli.settings_from_args(cli.build_parser().parse_args(["serve"])) == Settings()


def test_every_variable_is_honoured_and_its_flag_wins(clean_environment):
    for setting in declared_settings():
        text, value = sample_text(setting)
        if setting.declaration.choices:
            text = value = next(choice for choice in setting.declaration.choices if choice != setting.default)
        clean_environment.setenv(setting.declaration.variable, text)
        from_variable = cli.settings_from_args(cli.build_parser().parse_args(["serve"]))
        assert read(from_variable, setting.path) == value, setting.declaration.variable
        if not isinstance(setting.default, bool):  # a switch flag only turns on
            flag = [setting.declaration.flag, as_text(setting.default)]
            from_flag = cli.settings_from_args(cli.build_parser().parse_args(["serve", *flag]))
            assert read(from_flag, setting.path) == setting.default, setting.declaration.flag
        clean_environment.delenv(setting.declaration.variable)


def as_text(default: object) -> str:
    """A default as an operator writes it: empty for unset, tuples comma-separated."""
    if default is None:
        return ""
    return ",".join(default) if isinstance(default, tuple) else str(default)


def read(settings: Settings, path: str) -> object:
    value: object = settings
    for part in path.split("."):
        value = getattr(value, part)
    return value


@pytest.mark.parametrize(
    ("text", "value"),
    [("1", True), ("true", True), ("on", True), ("0", False), ("false", False), ("", False)],
)
def test_a_switch_variable_takes_1_0_true_false(clean_environment, text, value):
    clean_environment.setenv("PETITIONS_XHEADERS", text)
    assert cli.settings_from_args(cli.build_parser().parse_args(["serve"])).xheaders is value
    assert cli.settings_from_args(cli.build_parser().parse_args(["serve", "--xheaders"])).xheaders is True


def test_an_optional_setting_set_empty_is_unset(clean_environment):
    clean_environment.setenv("PETITIONS_REDIS", "")
    assert cli.settings_from_args(cli.build_parser().parse_args(["serve"])).redis_url is None


def test_create_user_and_prune_events_take_the_database_setting(clean_environment):
    clean_environment.setenv("PETITIONS_DB", "sqlite:///elsewhere.db")
    for command in (
        ["create-user", "--email", "a@example.org", "--name", "A"],
        ["prune-events", "--keep", "1"],
    ):
        assert cli.build_parser().parse_args(command).db_url == "sqlite:///elsewhere.db"


def test_the_settings_command_prints_the_table(clean_environment, capsys):
    assert cli.main(["settings", "--markdown"]) == 0
    assert capsys.readouterr().out == markdown_table()
