"""What a user meets before any measurement: --version, help for every option, one-line
errors for missing extras and missing databases, and a refusing control helper."""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import time
from importlib import metadata

import pytest

from probe.cli import build_parser
from probe.control.client import refusal_failure
from probe.extras import OPTIONAL_MODULES, find_missing_extra
from probe.failures import Failure
from probe.lab.loopback import LoopbackLab, Scenario
from probe.lab.netns import environment_problem
from tests.collector_support import free_port
from tests.conftest import REPO, kuzot


def _options_without_help(parser: argparse.ArgumentParser, path: str) -> list[str]:
    missing = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                missing += _options_without_help(child, f"{path} {name}")
        elif isinstance(action, argparse._HelpAction):
            continue
        elif not action.help or action.help == argparse.SUPPRESS:
            missing.append(f"{path} {'/'.join(action.option_strings) or action.dest}")
    return missing


def test_every_option_of_every_command_has_a_help_line() -> None:
    """If any option or argument of any kuzot command lacks help text, then this lists it."""
    assert _options_without_help(build_parser(), "kuzot") == []


def test_version_is_the_installed_distribution_version() -> None:
    """If kuzot --version is run, then it prints the version the package metadata carries."""
    result = kuzot("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"kuzot {metadata.version('kuzot')}"


@pytest.mark.parametrize("module", sorted(OPTIONAL_MODULES))
def test_missing_optional_module_names_its_extra(module: str) -> None:
    """If an optional module is missing, even deep in a cause or exception group, then the message names its extra."""
    extra = OPTIONAL_MODULES[module][0]
    error = ModuleNotFoundError(f"No module named '{module}'", name=module)
    try:
        try:
            raise error
        except ModuleNotFoundError as inner:
            raise RuntimeError("while opening") from inner
    except RuntimeError as outer:
        wrapped = ExceptionGroup("run", [outer])
    message = find_missing_extra(wrapped)
    assert message is not None and f"pip install 'kuzot[{extra}]'" in message
    assert "\n" not in message
    assert find_missing_extra(ModuleNotFoundError("x", name="yaml")) is None


def _without(tmp_path, *modules: str) -> dict[str, str]:
    """An environment whose Python cannot import ``modules``, as if their extra were not installed."""
    blocker = tmp_path / "blocker"
    blocker.mkdir(exist_ok=True)
    (blocker / "sitecustomize.py").write_text(
        "import sys\n"
        "class _Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        f"        if name.split('.')[0] in {modules!r}:\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, _Block())\n"
    )
    return {"PYTHONPATH": str(blocker)}


def test_lab_without_trustme_is_one_line_naming_the_extra(tmp_path) -> None:
    """If trustme is not installed, then kuzot lab up and kuzot demo end in one line (naming kuzot[lab] when nothing else is missing)."""
    env = _without(tmp_path, "trustme")
    for command in (["lab", "up", "--json"], ["demo", "--json"]):
        result = kuzot(*command, env=env)
        assert result.returncode == 2, (command, result.stderr)
        assert "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        if environment_problem() is None:  # root with the daemons: the extra is what is missing
            assert "pip install 'kuzot[lab]'" in result.stderr
    status = kuzot("lab", "status", "--json", env=env)
    assert status.returncode == 0, status.stderr


def test_reading_a_database_that_does_not_exist_is_an_error_and_creates_nothing(tmp_path) -> None:
    """If a reading command gets a SQLite URL whose file is missing, then it says so and creates no file or folder."""
    missing_dir = tmp_path / "no" / "such" / "dir"
    url = f"sqlite:///{missing_dir / 'x.db'}"
    for command in (
        ["show"],
        ["verdicts"],
        ["episodes"],
        ["orders"],
        ["export", str(tmp_path / "out.jsonl")],
        ["status"],
        ["upload", "--to", "http://127.0.0.1:9"],
    ):
        result = kuzot(*command, "--db", url)
        assert result.returncode != 0, command
        assert "no database at" in result.stderr, (command, result.stderr)
        assert "Traceback" not in result.stderr
        assert not (tmp_path / "no").exists(), command
    data_dir = tmp_path / "fresh-data"
    status = kuzot("status", "--json", env={"KUZOT_DATA_DIR": str(data_dir)})
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["runs"] == []
    assert not data_dir.exists(), "a status before the first run creates nothing"


def test_postgres_url_without_its_driver_is_one_line_naming_the_extra(tmp_path) -> None:
    """If a postgresql:// URL needs a driver that is not installed, then the error is one line naming kuzot[postgres]."""
    result = kuzot(
        "show", "--db", "postgresql+psycopg://kuzot@127.0.0.1:1/kuzot", env=_without(tmp_path, "psycopg")
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "pip install 'kuzot[postgres]'" in result.stderr


@pytest.mark.parametrize(
    ("status", "reason", "failure"),
    [
        (403, "field 'url': the name resolves to a private address; not measured",
         Failure.CONTROL_REFUSED_PRIVATE_ADDRESS),
        (503, "control helper is busy; retry later", Failure.CONTROL_OVERLOADED),
        (429, "slow down", Failure.CONTROL_OVERLOADED),
        (400, "field 'url' is required and must be a string", Failure.CONTROL_BAD_REQUEST),
        (413, "request body larger than 8192 bytes", Failure.CONTROL_BAD_REQUEST),
        (504, "measurement did not finish in time", Failure.GENERIC_TIMEOUT),
        (500, "HTTP 500 Internal Server Error", Failure.CONTROL_HTTP_ERROR),
    ],
)  # fmt: skip
def test_helper_answers_map_to_specific_failures(status: int, reason: str, failure: Failure) -> None:
    """If the control helper answers a non-200 status, then the failure says which kind of refusal it was."""
    assert refusal_failure(status, reason) is failure


@pytest.fixture(scope="module")
def honest_lab():
    with LoopbackLab() as lab:
        lab.add(Scenario("honest", "honest.kg"))
        yield lab


def test_a_refusing_control_helper_is_recorded_and_summarised(honest_lab: LoopbackLab, tmp_path) -> None:
    """If the control helper refuses a target that resolves to a private address, then the measurement records why and the summary says the control refused."""
    ip, port = honest_lab.honest_address
    listen = f"127.0.0.1:{free_port()}"
    helper = subprocess.Popen(
        [sys.executable, "-m", "probe", "control", "serve", "--listen", listen,
         "--resolver", f"{ip}:{port}", "--no-system-resolver", "--ca-bundle", str(honest_lab.ca.ca_pem_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=REPO,
    )  # fmt: skip
    try:
        host, _, port_text = listen.partition(":")
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection((host, int(port_text)), timeout=1).close()
                break
            except OSError:
                assert helper.poll() is None, helper.stderr.read() if helper.stderr else ""
                assert time.monotonic() < deadline, "the control helper did not start"
                time.sleep(0.2)
        db = f"sqlite:///{tmp_path / 'kuzot.db'}"
        url = honest_lab.targets["honest"].url
        args = honest_lab.probe_args(control=False)
        result = kuzot("run", "--db", db, "--url", url, *args, "--control", f"http://{listen}", "--json")
        assert result.returncode == 0, result.stderr
        summary = json.loads(result.stdout)
        assert summary["control_refused"]["count"] == 1
        assert summary["control_refused"]["reasons"][0]["failure"] == "control_refused_private_address"
        text = kuzot("run", "--db", db, "--url", url, *args, "--control", f"http://{listen}")
        assert "control helper refused 1 of 1 targets" in text.stderr, text.stderr
        shown = json.loads(kuzot("show", "--db", db, "--format", "json").stdout)
        controls = [m["control"] for m in shown if m["url"] == url]
        assert controls and all(c["failure"] == "control_refused_private_address" for c in controls)
        assert all("private address" in c["reason"] for c in controls)
    finally:
        helper.terminate()
        helper.wait(timeout=10)


@pytest.mark.parametrize(
    "command",
    [["serve", "--db", "sqlite:///{tmp}/collector.db"], ["control", "serve"]],
    ids=["serve", "control-serve"],
)
def test_a_server_on_a_taken_address_says_so_in_one_line(tmp_path, command):
    """If the collector's or the control helper's address is already taken, then the command exits 1 saying it cannot listen there, with no traceback."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        args = [part.format(tmp=tmp_path) for part in command]
        result = kuzot(*args, "--listen", address, timeout=60)
    assert result.returncode == 1, result.stderr
    assert f"cannot listen on {address}" in result.stderr
    assert "Traceback" not in result.stderr
