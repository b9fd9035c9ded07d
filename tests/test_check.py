"""``gateway check`` names FILE:LINE for each problem and exits 1; ``serve`` refuses the same configs.

Broken maps live in a tmp copy of mappings/. Each test breaks one thing by inserting lines at a
structural anchor (after ``vendor:``, ``operations:`` or ``shapes:``), so the tests do not hang
on any map's current wording, and asserts the exact line the inserted mistake landed on.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from gateway.cli import main
from tests.conftest import MAPPINGS, ROOT, write_config

PROBLEM = re.compile(r"^(?P<file>.+?):(?P<line>\d+): (?P<message>.+)$")
GENERIC_CONNECTION = {
    "name": "gen",
    "vendor": "generic",
    "base_url": "https://vendor.test/v1",
    "credentials": {"api_key": "k"},
}
HAMSA_CONNECTION = {"name": "ham", "vendor": "hamsa", "base_url": "sandbox", "credentials": {"api_key": "k"}}
# Anchors every map has: the vendor line, the first operation, the shapes block.
AFTER_VENDOR = r"^vendor: \S+\n"
IN_FIRST_OPERATION = r"^operations:\n  \w+:\n"
IN_SHAPES = r"^shapes:\n"


def copy_maps(tmp_path: Path) -> Path:
    maps = tmp_path / "maps"
    maps.mkdir()
    for path in MAPPINGS.glob("*.yaml"):
        shutil.copy(path, maps / path.name)
    return maps


def insert(path: Path, anchor: str, lines: str) -> None:
    """Insert ``lines`` right after the one place ``anchor`` (a multi-line regex) matches."""
    text = path.read_text()
    found = list(re.finditer(anchor, text, flags=re.MULTILINE))
    assert len(found) == 1, f"anchor {anchor!r} matches {len(found)} times in {path.name}"
    end = found[0].end()
    path.write_text(text[:end] + lines + text[end:])


def line_of(path: Path, marker: str) -> int:
    """The 1-based line holding ``marker``, which must occur exactly once."""
    hits = [number for number, line in enumerate(path.read_text().splitlines(), 1) if marker in line]
    assert len(hits) == 1, (marker, hits)
    return hits[0]


def check(config: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[tuple[str, int, str]], str]:
    """Run ``gateway check`` in-process: exit code, the parsed problems on stderr, and stdout."""
    code = main(["check", "--config", str(config)])
    out, err = capsys.readouterr()
    problems = []
    for line in err.splitlines():
        found = PROBLEM.match(line)
        assert found, f"not FILE:LINE: message: {line!r}"
        problems.append((found["file"], int(found["line"]), found["message"]))
    return code, problems, out


def only_problem_in(problems: list[tuple[str, int, str]], path: Path) -> tuple[int, str]:
    mine = [(line, message) for file, line, message in problems if Path(file).resolve() == path.resolve()]
    assert len(mine) == 1, problems
    return mine[0]


@pytest.fixture
def maps(tmp_path: Path) -> Path:
    return copy_maps(tmp_path)


def config_with(tmp_path: Path, maps: Path, *connections: dict) -> Path:
    return write_config(tmp_path, list(connections or (HAMSA_CONNECTION,)), mappings_dir=maps)


def break_map(
    tmp_path: Path, maps: Path, capsys, file: str, anchor: str, lines: str, marker: str
) -> tuple[int, str, int]:
    """Insert a mistake, run check: the exit code, the one problem's message, and whether its line is right."""
    insert(maps / file, anchor, lines)
    code, problems, _ = check(config_with(tmp_path, maps), capsys)
    line, message = only_problem_in(problems, maps / file)
    assert line == line_of(maps / file, marker), (line, message)
    return code, message, line


MAP_FILES = ["generic.yaml", "hamsa.yaml", "sarvam.yaml", "voiso.yaml"]


# --- what passes ---------------------------------------------------------------------------------


def test_the_shipped_config_passes(capsys: pytest.CaptureFixture[str]) -> None:
    code, problems, out = check(ROOT / "config.yaml", capsys)
    assert (code, problems) == (0, [])
    assert "ok" in out


def test_the_console_script_passes_the_shipped_config() -> None:
    env = {k: v for k, v in os.environ.items() if k != "GATEWAY_CONFIG"}
    result = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "gateway"), "check", "--config", str(ROOT / "config.yaml")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert "ok" in result.stdout


def test_an_untouched_copy_of_the_maps_passes(tmp_path: Path, maps: Path, capsys) -> None:
    """The control for every test below: the tmp setup itself is sound, so each failure is the edit's."""
    config = config_with(tmp_path, maps, HAMSA_CONNECTION, GENERIC_CONNECTION)
    code, problems, _ = check(config, capsys)
    assert (code, problems) == (0, [])


def test_a_harmless_probe_shape_passes(tmp_path: Path, maps: Path, capsys) -> None:
    """The control for the probe shapes below: an unused but correct shape is no problem."""
    for file in MAP_FILES:
        insert(maps / file, IN_SHAPES, "  probe:\n    name: {from: x.y, pipe: [string]}\n")
    assert check(config_with(tmp_path, maps), capsys)[:2] == (0, [])


# --- broken maps ---------------------------------------------------------------------------------


@pytest.mark.parametrize("file", MAP_FILES)
@pytest.mark.parametrize(
    ("anchor", "lines", "marker", "named"),
    [
        (AFTER_VENDOR, "colour: blue\n", "colour: blue", "colour"),
        (IN_FIRST_OPERATION, "    bogus_key: 1\n", "bogus_key: 1", "bogus_key"),
        (IN_SHAPES, "  probe:\n    name: {from: x, pipes: [string]}\n", "pipes: [string]", "pipes"),
        (IN_SHAPES, "  probe:\n    name:\n      from: x\n      defualt: 1\n", "defualt: 1", "defualt"),
    ],
    ids=["top-level", "operation", "expression", "expression-block"],
)
def test_an_unknown_key_is_named_on_its_line(
    tmp_path: Path, maps: Path, capsys, file: str, anchor: str, lines: str, marker: str, named: str
) -> None:
    code, message, _line = break_map(tmp_path, maps, capsys, file, anchor, lines, marker)
    assert code == 1
    assert named in message


@pytest.mark.parametrize(
    ("file", "anchor", "lines", "marker", "bad"),
    [
        ("generic.yaml", IN_SHAPES, '  probe:\n    name: {from: "a..b"}\n', '"a..b"', "a..b"),
        ("hamsa.yaml", IN_SHAPES, "  probe:\n    name: a..b\n", "name: a..b", "a..b"),
        ("sarvam.yaml", IN_SHAPES, "  probe:\n    name: {coalesce: [x, y.]}\n", "y.]", "y."),
        ("voiso.yaml", IN_SHAPES, "  probe:\n    name: {from: 'items[x]'}\n", "items[x]", "items[x]"),
        (
            "generic.yaml",
            IN_FIRST_OPERATION,
            '    required: ["schedule..end_at"]\n',
            "schedule..",
            "schedule..end_at",
        ),
        ("hamsa.yaml", IN_SHAPES, "  probe:\n    a..b: name\n", "a..b: name", "a..b"),
    ],
    ids=["from", "shorthand", "coalesce", "index", "required", "target"],
)
def test_a_bad_path_is_named_on_its_line(
    tmp_path: Path, maps: Path, capsys, file: str, anchor: str, lines: str, marker: str, bad: str
) -> None:
    code, message, _line = break_map(tmp_path, maps, capsys, file, anchor, lines, marker)
    assert code == 1
    assert bad in message


@pytest.mark.parametrize("file", MAP_FILES)
@pytest.mark.parametrize(
    ("lines", "marker"),
    [
        ("  probe:\n    name: {from: x, pipe: [frobnicate]}\n", "frobnicate"),
        ("  probe:\n    name:\n      from: x\n      pipe:\n        - string\n        - frobnicate\n", "- frobnicate"),
        ("  probe:\n    name: {from: x, pipe: [string, {frobnicate: 2}]}\n", "frobnicate"),
    ],
    ids=["flow", "second-step", "with-argument"],
)
def test_an_unknown_transform_is_named_on_its_line(
    tmp_path: Path, maps: Path, capsys, file: str, lines: str, marker: str
) -> None:
    code, message, _line = break_map(tmp_path, maps, capsys, file, IN_SHAPES, lines, marker)
    assert code == 1
    assert "unknown transform" in message and "frobnicate" in message


@pytest.mark.parametrize("file", MAP_FILES)
@pytest.mark.parametrize("transform", ["enum", "vendor_enum"])
def test_an_unknown_enum_is_named_on_its_line(tmp_path: Path, maps: Path, capsys, file: str, transform: str) -> None:
    lines = f"  probe:\n    status: {{from: s, pipe: [{{{transform}: nosuchenum}}]}}\n"
    code, message, _line = break_map(tmp_path, maps, capsys, file, IN_SHAPES, lines, "nosuchenum")
    assert code == 1
    assert "unknown enum" in message and "nosuchenum" in message


@pytest.mark.parametrize("file", MAP_FILES)
def test_a_yaml_syntax_error_in_a_map_is_named_on_its_line(tmp_path: Path, maps: Path, capsys, file: str) -> None:
    code, message, _line = break_map(tmp_path, maps, capsys, file, AFTER_VENDOR, "oops: a: b\n", "oops: a: b")
    assert code == 1
    assert "YAML" in message


def test_a_yaml_syntax_error_in_the_config_is_named_on_its_line(tmp_path: Path, capsys) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("cache:\n  backend: memory\ntenants:\n  - id: [unclosed\n    keys: []\n")
    code, problems, _ = check(config, capsys)
    assert code == 1
    assert len(problems) == 1
    file, line, message = problems[0]
    assert Path(file) == config
    assert 4 <= line <= 5, "the line of the unclosed bracket, or the next one where the parser gave up"
    assert "YAML" in message


def test_a_broken_map_in_each_of_two_files_is_reported_twice(tmp_path: Path, maps: Path, capsys) -> None:
    insert(maps / "generic.yaml", IN_SHAPES, "  probe:\n    name: {from: x, pipe: [nope]}\n")
    insert(maps / "voiso.yaml", IN_FIRST_OPERATION, "    bogus_key: 1\n")
    code, problems, _ = check(config_with(tmp_path, maps, {**HAMSA_CONNECTION, "vendor": "sarvam"}), capsys)
    assert code == 1
    assert only_problem_in(problems, maps / "generic.yaml")[0] == line_of(maps / "generic.yaml", "pipe: [nope]")
    assert only_problem_in(problems, maps / "voiso.yaml")[0] == line_of(maps / "voiso.yaml", "bogus_key")


TYPOS_MAP = """\
vendor: typos
base_url: https://typos.example.com
shapes:
  campaign:
    id: id
    stats.totl: leads
operations:
  create:
    required: [agnet_id]
    unsupported: [webhook_ulr]
    request:
      method: POST
      path: /campaigns
      body:
        title: body.name
        days: body.shedule.days
    response: {shape: campaign}
"""


def test_every_misspelt_canonical_field_in_a_map_is_named_in_one_run(tmp_path: Path, maps: Path, capsys) -> None:
    """A typo in required, unsupported, a body source or a shape target: each on its line, with the right name."""
    (maps / "typos.yaml").write_text(TYPOS_MAP)
    connection = {"name": "t", "vendor": "typos", "credentials": {}}
    code, problems, _ = check(config_with(tmp_path, maps, connection), capsys)
    assert code == 1
    found = {line: message for file, line, message in problems if file.endswith("typos.yaml")}
    expected = {
        "agnet_id": "'agent_id'",
        "webhook_ulr": "'webhook_url'",
        "body.shedule.days": "'schedule.days'",
        "stats.totl": "'stats.total'",
    }
    assert len(found) == len(expected), problems
    for marker, suggestion in expected.items():
        message = found[line_of(maps / "typos.yaml", marker)]
        assert "not a canonical field" in message and f"did you mean {suggestion}?" in message, message
    # the connection to the broken map is not reported again as a missing file
    assert not [p for p in problems if p[0].endswith("config.yaml")], problems


def test_a_listed_unsupported_field_the_map_sends_is_a_contradiction(tmp_path: Path, maps: Path, capsys) -> None:
    (maps / "typos.yaml").write_text(
        TYPOS_MAP.replace("agnet_id", "agent_id")
        .replace("webhook_ulr", "name")
        .replace("shedule", "schedule")
        .replace("stats.totl", "stats.total")
    )
    code, problems, _ = check(config_with(tmp_path, maps, {"name": "t", "vendor": "typos", "credentials": {}}), capsys)
    assert code == 1
    mine = sorted((line, message) for file, line, message in problems if file.endswith("typos.yaml"))
    assert mine == [
        (line_of(maps / "typos.yaml", "required:"), "'agent_id' is required, but the map never sends it"),
        (line_of(maps / "typos.yaml", "unsupported:"), "'name' is listed as unsupported, but the map sends it"),
    ]


# --- config problems -----------------------------------------------------------------------------


def test_a_connection_to_a_missing_map_is_named(tmp_path: Path, capsys) -> None:
    config = write_config(tmp_path, [{"name": "x", "vendor": "nosuch", "credentials": {"api_key": "k"}}])
    code, problems, _ = check(config, capsys)
    assert code == 1
    line, message = only_problem_in(problems, config)
    assert line == line_of(config, "vendor: nosuch")
    assert "nosuch" in message


def test_a_missing_environment_variable_is_named(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.delenv("NOT_SET_VAR_X", raising=False)
    connection = {**GENERIC_CONNECTION, "credentials": {"api_key": "${NOT_SET_VAR_X}"}}
    config = write_config(tmp_path, [connection])
    code, problems, _ = check(config, capsys)
    assert code == 1
    line, message = only_problem_in(problems, config)
    assert line == line_of(config, "${NOT_SET_VAR_X}")
    assert "NOT_SET_VAR_X" in message
    # and once it is set, the same config passes
    monkeypatch.setenv("NOT_SET_VAR_X", "now-set")
    assert check(config, capsys)[:2] == (0, [])


def test_a_missing_variable_in_params_is_named_too(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.delenv("NOT_SET_CLUSTER_Y", raising=False)
    connection = {
        "name": "v",
        "vendor": "voiso",
        "credentials": {"api_key": "k"},
        "params": {"cluster_id": "${NOT_SET_CLUSTER_Y}", "team": "t"},
    }
    config = write_config(tmp_path, [connection])
    code, problems, _ = check(config, capsys)
    assert code == 1
    assert any(
        line == line_of(config, "${NOT_SET_CLUSTER_Y}") and "NOT_SET_CLUSTER_Y" in message
        for _file, line, message in problems
    ), problems


def test_a_missing_required_param_is_named(tmp_path: Path, capsys) -> None:
    connection = {"name": "v", "vendor": "voiso", "credentials": {"api_key": "k"}, "params": {"team": "t"}}
    config = write_config(tmp_path, [connection])
    code, problems, _ = check(config, capsys)
    assert code == 1
    line, message = only_problem_in(problems, config)
    assert line == line_of(config, "params:")
    assert "cluster_id" in message and "voiso" in message


def test_a_missing_params_block_is_named_at_the_connection(tmp_path: Path, capsys) -> None:
    config = write_config(tmp_path, [{"name": "v", "vendor": "voiso", "credentials": {"api_key": "k"}}])
    code, problems, _ = check(config, capsys)
    assert code == 1
    line, message = only_problem_in(problems, config)
    assert line == line_of(config, "- name: v")
    assert "cluster_id" in message


def test_every_config_problem_is_reported_in_one_run(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.delenv("NOT_SET_VAR_X", raising=False)
    config = write_config(
        tmp_path,
        [
            {"name": "a", "vendor": "nosuch"},
            {**GENERIC_CONNECTION, "name": "b", "credentials": {"api_key": "${NOT_SET_VAR_X}"}},
            {"name": "c", "vendor": "voiso", "credentials": {"api_key": "k"}, "params": {"team": "t"}},
        ],
    )
    code, problems, _ = check(config, capsys)
    assert code == 1
    found = {(line, message) for file, line, message in problems if Path(file) == config}
    assert len(found) == 3, problems
    lines = {line for line, _ in found}
    assert lines == {line_of(config, "vendor: nosuch"), line_of(config, "${NOT_SET_VAR_X}"), line_of(config, "params:")}


def test_an_unknown_key_in_the_config_is_named_on_its_line(tmp_path: Path, capsys) -> None:
    config = write_config(tmp_path, [{**GENERIC_CONNECTION, "base_uri": "https://typo.test"}])
    code, problems, _ = check(config, capsys)
    assert code == 1
    line, message = only_problem_in(problems, config)
    assert line == line_of(config, "base_uri:")
    assert "base_uri" in message


def test_a_missing_config_file_is_a_problem_not_a_crash(tmp_path: Path, capsys) -> None:
    code, problems, _ = check(tmp_path / "absent.yaml", capsys)
    assert code == 1
    assert len(problems) == 1 and problems[0][0].endswith("absent.yaml")


# --- serve refuses what check rejects ------------------------------------------------------------


@pytest.fixture
def uvicorn_runs(monkeypatch) -> list:
    """Record uvicorn's server starting instead of serving: a refused config must never get this far."""
    import uvicorn

    runs: list = []

    def record(server: uvicorn.Server) -> None:
        runs.append(server.config)
        server.started = True

    monkeypatch.setattr(uvicorn.Server, "run", record)
    return runs


def _bad_configs(tmp_path: Path) -> dict[str, Path]:
    bad: dict[str, Path] = {}
    for name, connection in {
        "missing-map": {"name": "x", "vendor": "nosuch"},
        "missing-env": {**GENERIC_CONNECTION, "credentials": {"api_key": "${NOT_SET_VAR_X}"}},
        "missing-param": {"name": "v", "vendor": "voiso", "credentials": {"api_key": "k"}},
    }.items():
        directory = tmp_path / name
        directory.mkdir()
        bad[name] = write_config(directory, [connection])
    directory = tmp_path / "broken-map"
    directory.mkdir()
    maps = copy_maps(directory)
    insert(maps / "hamsa.yaml", IN_FIRST_OPERATION, "    bogus_key: 1\n")
    bad["broken-map"] = config_with(directory, maps)
    syntax = tmp_path / "syntax.yaml"
    syntax.write_text("tenants: [\n")
    bad["syntax"] = syntax
    return bad


@pytest.mark.parametrize("case", ["missing-map", "missing-env", "missing-param", "broken-map", "syntax"])
def test_serve_refuses_a_config_check_rejects_with_the_same_messages(
    tmp_path: Path, capsys, monkeypatch, uvicorn_runs, case: str
) -> None:
    monkeypatch.delenv("NOT_SET_VAR_X", raising=False)
    config = _bad_configs(tmp_path)[case]
    assert main(["check", "--config", str(config)]) == 1
    checked = capsys.readouterr().err
    assert checked.strip()
    assert main(["serve", "--config", str(config)]) == 1
    served = capsys.readouterr().err
    assert served == checked
    assert uvicorn_runs == [], "serve started uvicorn on a config check rejects"


def test_serve_starts_on_a_config_check_accepts(uvicorn_runs, capsys, monkeypatch) -> None:
    """The control for the refusals above: with a good config, serve does reach uvicorn."""
    monkeypatch.setenv("GATEWAY_CONFIG", "restored-after-the-test")  # serve sets it; monkeypatch undoes that
    assert main(["serve", "--config", str(ROOT / "config.yaml"), "--port", "18099"]) == 0
    assert len(uvicorn_runs) == 1
    assert uvicorn_runs[0].port == 18099
    # one line, before anything else: the mode, the config, the address and where the docs are
    [line] = capsys.readouterr().err.splitlines()
    sandboxes = len(yaml.safe_load((ROOT / "config.yaml").read_text())["tenants"][0]["connections"])
    assert json.loads(line)["message"] == (
        f"gateway: sandbox mode ({sandboxes} sandbox and 0 live connections) from {ROOT / 'config.yaml'} "
        "on http://127.0.0.1:18099 with 1 worker; API docs at http://127.0.0.1:18099/docs"
    )
