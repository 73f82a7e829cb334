"""The table of settings: the dataclasses, README's configuration table and --help agree with it."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from pylsyncd import cli
from pylsyncd.config import ENV_VARS, SETTINGS, Config, PairConfig, Scope, Setting, load_config
from pylsyncd.config.kinds import FlagForm
from pylsyncd.config.settings import BY_NAME, DAEMON_SETTINGS, LAYERED, PAIR_SETTINGS

README = Path(__file__).resolve().parent.parent / "README.md"
# PairConfig and Config fields that are the pairs themselves, not settings of one.
_NOT_SETTINGS = {"source", "destination", "remote", "pairs"}


def _fields(cls: type) -> dict[str, object]:
    return {
        field.name: field.default
        for field in dataclasses.fields(cls)
        if field.name not in _NOT_SETTINGS
    }


# --- the declarations ----------------------------------------------------------------------


def test_names_env_names_and_flags_are_unique() -> None:
    for attribute in ("name", "env", "flag"):
        values = [getattr(setting, attribute) for setting in SETTINGS]
        assert len(values) == len(set(values)), attribute


@pytest.mark.parametrize(
    ("cls", "scope"), [(PairConfig, Scope.PAIR), (Config, Scope.DAEMON)], ids=["pair", "daemon"]
)
def test_every_field_has_one_declaration_with_its_default(cls: type, scope: Scope) -> None:
    # A setting that adds to another (exclude_from) has no field of its own.
    declared = {
        setting.name: setting.default
        for setting in LAYERED
        if setting.scope is scope and not setting.adds_to
    }
    assert _fields(cls) == declared


def test_a_setting_adds_only_to_a_pair_field_of_its_own_kind() -> None:
    for setting in LAYERED:
        if setting.adds_to:
            target = BY_NAME[setting.adds_to]
            assert target.name in _fields(PairConfig if setting.scope is Scope.PAIR else Config)
            assert (target.scope, target.default) == (setting.scope, setting.default)


def test_env_vars_name_every_setting_once() -> None:
    # The daemon reads no variable without a declaration (the test fixtures clear ENV_VARS).
    assert len(ENV_VARS) == len(SETTINGS)
    assert {"SOURCES", "DESTINATIONS", "CONFIG", "DELAY", "PUID"} <= set(ENV_VARS)


def test_load_config_refuses_a_flag_that_names_no_setting() -> None:
    with pytest.raises(TypeError, match="dealy"):
        load_config({"dealy": "1"}, {})


# --- README's configuration table ----------------------------------------------------------


def _readme_rows() -> list[list[str]]:
    """The configuration table's rows after its header, as cells (an escaped \\| stays in one)."""
    section = README.read_text().split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    assert lines[0] == "| env | flag | default | meaning |"
    return [[cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]] for line in lines[2:]]


def _flag_cell(setting: Setting) -> str:
    if setting.form is FlagForm.POSITIONAL:
        return f"`{setting.flag}` (positional)"
    if setting.form is FlagForm.SWITCH:
        return f"`{setting.flag}` / `--no-{setting.flag.removeprefix('--')}`"
    value = "\\|".join(setting.choices) if setting.choices else setting.placeholder
    repeat = " (repeat)" if setting.form is FlagForm.REPEATED else ""
    return f"`{setting.flag} {value}`{repeat}"


def _default_cell(setting: Setting) -> str:
    return (
        "none" if setting.default is None or setting.default == () else f"`{setting.default_text}`"
    )


def test_readme_has_one_row_per_setting_in_the_table_order() -> None:
    assert [row[0] for row in _readme_rows()] == [f"`{setting.env}`" for setting in SETTINGS]


@pytest.mark.parametrize("setting", SETTINGS, ids=[setting.env for setting in SETTINGS])
def test_readme_row_matches_the_declaration(setting: Setting) -> None:
    rows = {row[0]: row for row in _readme_rows()}
    _, flag, default, meaning = rows[f"`{setting.env}`"]
    assert flag == _flag_cell(setting)
    # A default may be followed by a remark in parentheses: "none (the image: ...)".
    expected = _default_cell(setting)
    assert default == expected or default.startswith(f"{expected} ("), default
    assert meaning


def test_readme_names_the_daemon_settings_refused_inside_pair_tables() -> None:
    section = README.read_text().split("\n## Configuration\n", 1)[1]
    sentence = re.search(r"((?:`\w+`,? (?:and )?)+)apply to the whole daemon", section)
    assert sentence is not None
    named = re.findall(r"`(\w+)`", sentence.group(1))
    assert named == [setting.name for setting in DAEMON_SETTINGS]
    assert "Inside a `[[pair]]` table they are refused." in section


# --- --help and check -------------------------------------------------------------------------


def test_every_setting_has_its_option_under_its_name() -> None:
    actions = {action.dest: action for action in cli.build_parser()._actions}
    for setting in SETTINGS:
        if setting.form is FlagForm.POSITIONAL:
            assert actions["paths"].metavar == "SRC DST"
            continue
        action = actions[setting.name]
        assert setting.flag in action.option_strings
        assert f"(env {setting.env}; default {setting.default_text})" in str(action.help)


def test_help_lists_every_toml_key_and_the_daemon_only_ones() -> None:
    text = " ".join(cli.build_parser().format_help().split())
    keys = ", ".join(setting.name for setting in LAYERED)
    daemon = ", ".join(setting.name for setting in DAEMON_SETTINGS)
    assert f"top-level keys with the same names in lower case ({keys})" in text
    assert f"the daemon-wide settings ({daemon}) are refused inside [[pair]]" in text


def test_check_lists_every_field_in_the_table_order() -> None:
    config = Config(pairs=(PairConfig("/a", "/b"),))
    listed = re.findall(r"^  (\w+): ", cli.describe(config), flags=re.MULTILINE)
    pair_fields = [setting.name for setting in PAIR_SETTINGS if not setting.adds_to]
    assert listed == [*pair_fields, *(setting.name for setting in DAEMON_SETTINGS)]
    assert pair_fields == list(_fields(PairConfig))
