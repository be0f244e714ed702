"""Configuration: validation errors name file, line and field; every error is reported at once."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from spotme_hub.service import load_config
from spotme_hub.yamlsource import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "spotme_hub.cli", *args],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=120,
    )  # fmt: skip


def test_example_config_is_valid() -> None:
    res = cli("config", "check", "-c", "configs/example.yaml")
    assert res.returncode == 0, res.stderr
    assert "OK" in res.stdout


BAD = """\
hub:
  id: bad-hub
offices:
  - id: hq
    state: PJY
    latitude: 200
    longitude: 101.7
devices:
  - id: d1
    kind: simulated
    office: nowhere
    evry: 5
"""


def test_three_errors_with_lines_and_paths(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD)
    res = cli("config", "check", "-c", str(path))
    assert res.returncode != 0
    lines = [line for line in res.stderr.splitlines() if line.startswith("error")]
    assert len(lines) == 3, res.stderr
    text = "\n".join(lines)
    assert f"{path}:6: offices[0].latitude" in text
    assert f"{path}:11: devices[0].office: unknown office 'nowhere'" in text
    assert f"{path}:12: devices[0].evry: unknown key" in text


def test_error_list_is_complete_in_one_pass(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "hub: {id: x, colour: red}\n"
        "offices:\n  - {id: a, timezone: Mars/Olympus}\n  - {id: a}\n"
        "employees:\n  - {id: E1, cards: ['0008844356']}\n  - {id: E2, cards: ['134,62532']}\n"
        "devices:\n  - {id: d, kind: teleporter, office: a}\n"
    )
    with pytest.raises(ConfigError) as err:
        load_config(path)
    msgs = {(i.line, i.path): i.message for i in err.value.issues}
    assert msgs[(1, "hub.colour")].startswith("unknown key")
    assert "Mars/Olympus" in msgs[(3, "offices[0].timezone")]
    assert "duplicate office id" in msgs[(4, "offices[1].id")]
    assert "already mapped to employee 'E1'" in msgs[(7, "employees[1].cards[0]")]
    assert "unknown kind 'teleporter'" in msgs[(9, "devices[0].kind")]


def test_env_interpolation_and_secrets_not_shown(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(
        "offices: [{id: a}]\ncore:\n  url: http://core\n  token: ${HUB_TEST_TOKEN}\n"
        "api:\n  tokens: [{name: t, token: '${MISSING_TOKEN:-fallback}', scopes: [admin]}]\n"
    )
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert "HUB_TEST_TOKEN is not set" in str(err.value)
    assert err.value.issues[0].line == 4
    import os

    os.environ["HUB_TEST_TOKEN"] = "s3cret-value"
    try:
        cfg = load_config(path)
    finally:
        del os.environ["HUB_TEST_TOKEN"]
    assert cfg.core.token is not None
    assert cfg.core.token.get_secret_value() == "s3cret-value"
    assert "s3cret-value" not in repr(cfg) and "s3cret-value" not in str(cfg.model_dump())
    assert cfg.api.tokens[0].token.get_secret_value() == "fallback"


def test_employees_file_and_scoped_pins(tmp_path: Path) -> None:
    (tmp_path / "staff.csv").write_text(
        "id,name,user_ids,cards\nE9,Ali,9;d1:77,0x86F444\n,nobody,,\n"
    )
    path = tmp_path / "e.yaml"
    path.write_text("offices: [{id: a}]\nemployees_file: staff.csv\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    issue = err.value.issues[0]
    assert issue.file.endswith("staff.csv") and issue.line == 3
    (tmp_path / "staff.csv").write_text("id,name,user_ids,cards\nE9,Ali,9;d1:77,0x86F444\n")
    cfg = load_config(path)
    assert cfg.employees[0].user_ids == ["9", "d1:77"]


def test_yaml_syntax_error_has_a_line(tmp_path: Path) -> None:
    path = tmp_path / "y.yaml"
    path.write_text("offices:\n  - id: a\n   bad: [\n")
    res = cli("config", "check", "-c", str(path))
    assert res.returncode != 0
    assert f"{path}:" in res.stderr and "YAML syntax" in res.stderr
    assert "Traceback" not in res.stderr


def test_schema_covers_device_kinds() -> None:
    res = cli("config", "schema")
    assert res.returncode == 0, res.stderr
    schema = json.loads(res.stdout)
    variants = schema["properties"]["devices"]["items"]["anyOf"]
    names = {v["$ref"].rsplit("/", 1)[-1] for v in variants}
    assert "Device_simulated" in names
    sim = schema["$defs"]["Device_simulated"]
    assert sim["additionalProperties"] is False
    assert {"id", "kind", "office", "every"} <= set(sim["properties"])


def test_schema_takes_times_and_durations_as_they_are_written() -> None:
    """Editors check files against the schema: `late_after: "09:00"` and `span: 9h` are what the
    files say (the models turn them into minutes), so the schema must take them."""
    import jsonschema_rs

    from spotme_hub.service import json_schema

    validator = jsonschema_rs.validator_for(json_schema())
    good = {"schemes": {"WBF": {"late_after": "09:15", "span": "8h30m"},
                        "K": {"kind": "fixed", "start": "08:00", "end": "17:00", "grace": 10}}}  # fmt: skip
    assert validator.is_valid(good), list(validator.iter_errors(good))
    for bad in ({"late_after": "9 o'clock"}, {"late_after": "25:00"}, {"span": "nine"}):
        assert not validator.is_valid({"schemes": {"WBF": bad}}), bad


def test_missing_file_is_one_line() -> None:
    res = cli("config", "check", "-c", "does-not-exist.yaml")
    assert res.returncode != 0
    assert "cannot read file" in res.stderr and "Traceback" not in res.stderr


def test_config_from_dict_reports_errors_without_lines(tmp_path: Path) -> None:
    from spotme_hub.service import config_from_dict

    with pytest.raises(ConfigError) as err:
        config_from_dict({"offices": [{"id": "a", "latitude": 500, "longitude": 1}]}, tmp_path)
    (issue,) = err.value.issues
    assert issue.line is None and issue.path == "offices[0].latitude"


ALL_AT_ONCE = """\
hub:
  failure_to_down: 3
api:
  listen: localhost
  tokens:
    - {name: feed, token: "${SPOTME_TEST_UNSET_TOKEN}", scopes: [feed:read]}
core:
  url: spotme.example.gov.my
offices:
  - {id: hq, state: PJY}
devices:
  - {id: z, kind: zkteco, office: hq, host: 192.0.2.7, pol_every: 5}
"""


def test_an_unset_variable_hides_nothing_and_each_error_says_what_to_write(tmp_path: Path) -> None:
    path = tmp_path / "hub.yaml"
    path.write_text(ALL_AT_ONCE)
    res = cli("config", "check", "-c", str(path))
    assert res.returncode == 2
    assert [line for line in res.stderr.splitlines() if line.startswith("error")] == [
        f"error {path}:2: hub.failure_to_down: unknown key (did you mean `failures_to_down`?)",
        f"error {path}:4: api.listen: must be HOST:PORT, e.g. 127.0.0.1:8080 or 0.0.0.0:8080 "
        "(got 'localhost')",
        f"error {path}:6: api.tokens[0].token: environment variable SPOTME_TEST_UNSET_TOKEN is not "
        "set",
        f"error {path}:8: core.url: must be an http:// or https:// URL with a host, e.g. "
        "https://spotme.example.gov.my (got 'spotme.example.gov.my')",
        f"error {path}:12: devices[0].pol_every: unknown key (did you mean `poll_every`?)",
    ], res.stderr


@pytest.mark.parametrize("text", ["", "\n\n", "# nothing but a comment\n"])
def test_an_empty_file_is_not_ok(tmp_path: Path, text: str) -> None:
    path = tmp_path / "hub.yaml"
    path.write_text(text)
    res = cli("config", "check", "-c", str(path))
    assert res.returncode == 2 and "OK" not in res.stdout
    assert "the file is empty" in res.stderr
