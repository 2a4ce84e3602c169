"""The package as a user installs it: the wheel alone, in an empty virtualenv, serving from an empty directory.

``pip install .`` reads only ``pyproject.toml``: a dependency named only in
``requirements.txt``, or a file left out of the package data, shows here and
nowhere else (every other test imports the source tree).  The dependencies
come from the package index through pip's cache, so a run after the first
downloads nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
import urllib.request
import zipfile
from pathlib import Path

import pytest
import websockets.sync.client
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.workers import free_port

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "tornado_petitions"
UPLOT = "static/vendor/uplot/uPlot.iife.min.js"


def declared_dependencies() -> dict[str, Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = [Requirement(line) for line in project["dependencies"]]
    return {canonicalize_name(requirement.name): requirement for requirement in requirements}


def pinned_versions() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            pins[canonicalize_name(name)] = version
    return pins


def test_every_pinned_runtime_dependency_is_declared_and_its_pin_lies_in_the_range():
    declared, pinned = declared_dependencies(), pinned_versions()
    assert sorted(declared) == sorted(pinned)
    outside = {name: (pinned[name], str(declared[name].specifier)) for name in declared}
    assert {name: pair for name, pair in outside.items() if pair[0] not in declared[name].specifier} == {}


def package_files(folder: str) -> set[str]:
    """Every file under the package's ``folder``, as paths inside the wheel."""
    return {
        str(path.relative_to(ROOT))
        for path in (PACKAGE / folder).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }


def build_wheel(directory: Path) -> Path:
    """``pip wheel --no-deps`` of a copy of the sources (an in-place build would leave build/ behind)."""
    source = directory / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(PACKAGE, source / PACKAGE.name, ignore=shutil.ignore_patterns("__pycache__"))
    wheels = directory / "wheels"
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check", "-q"]
    subprocess.run(
        [*command, "--wheel-dir", str(wheels), str(source)],
        check=True,
        capture_output=True,
        env=user_environment(),
    )
    (wheel,) = wheels.glob("tornado_petitions-*.whl")
    return wheel


def install_alone(wheel: Path, venv: Path) -> None:
    """A virtualenv with the wheel and what it declares, nothing else; this pip installs into it."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    command = [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install"]
    # The user's environment: with PYTHONPATH on the source tree, pip would take the package as installed.
    # The pins constrain the ranges, so a new release elsewhere cannot break the suite (or slow it).
    constraints = ["-c", str(ROOT / "requirements.txt")]
    done = subprocess.run(
        [*command, "--disable-pip-version-check", "-q", *constraints, str(wheel)],
        capture_output=True,
        text=True,
        env=user_environment(),
    )
    assert done.returncode == 0, done.stderr


def user_environment() -> dict[str, str]:
    """The environment of a user's shell: no settings of ours and no path to the source tree."""
    return {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("PETITIONS_") and name not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")
    }


def get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.read()


def wait_healthy(process: subprocess.Popen, url: str, log: Path, timeout: float = 20.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"serve exited {process.returncode}:\n{log.read_text()}"
        try:
            status, body = get(url + "/healthz")
            if status == 200:
                return json.loads(body)
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"serve did not answer within {timeout} s:\n{log.read_text()}")


# pip builds the wheel and installs it and its dependencies in a new virtualenv: over two
# minutes on 2 cores shared with the other test workers, near the suite's 300 s.
@pytest.mark.timeout(360)
def test_the_wheel_installed_alone_serves_from_an_empty_directory(tmp_path):
    wheel = build_wheel(tmp_path)
    with zipfile.ZipFile(wheel) as archive:
        carried = set(archive.namelist())
        (entry_points,) = (name for name in carried if name.endswith(".dist-info/entry_points.txt"))
        scripts = archive.read(entry_points).decode()
    missing = (package_files("static") | package_files("templates")) - carried
    assert missing == set() and f"tornado_petitions/{UPLOT}" in carried
    assert "tornado-petitions = tornado_petitions.cli:main" in scripts

    venv = tmp_path / "venv"
    install_alone(wheel, venv)
    command = venv / "bin" / "tornado-petitions"
    environment = user_environment()
    version = subprocess.run([command, "--version"], capture_output=True, text=True, env=environment)
    assert version.stdout.strip() == "tornado-petitions " + wheel.name.split("-")[1], version.stderr
    imported = subprocess.run(
        [venv / "bin" / "python", "-c", "import tornado_petitions; print(tornado_petitions.__file__)"],
        capture_output=True,
        text=True,
        env=environment,
        cwd=tmp_path,
        check=True,
    )
    assert imported.stdout.startswith(str(venv)), imported.stdout

    empty = tmp_path / "empty"
    empty.mkdir()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    with open(log, "wb") as log_file:
        process = subprocess.Popen(
            [command, "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=empty,
            env=environment,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        health = wait_healthy(process, url, log)
        assert health["database"] == "ok"
        status, page = get(url + "/")
        assert status == 200 and b"<html" in page.lower()
        status, script = get(f"{url}/{UPLOT}")
        assert status == 200 and script == (PACKAGE / UPLOT).read_bytes()
        with websockets.sync.client.connect(f"ws://127.0.0.1:{port}/ws/petitions", open_timeout=10) as feed:
            hello = json.loads(feed.recv(timeout=10))
        assert hello["type"] == "hello" and hello["seq"] == health["seq"]
    finally:
        process.terminate()
        code = process.wait(15)
    assert code == 0, log.read_text()
    # The default database, petitions.db, is made in the directory it was started from.
    assert (empty / "petitions.db").exists()
