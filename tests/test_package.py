"""The hub works however it is installed: a wheel built from the source, installed with its
dependencies into a fresh virtual environment (no editable install, no source tree on the
path), serves the embedded default (SQLite, in-memory broker) with its migrations and the
demo page, both package data.

Slow (a minute or two: the venv gets every dependency, from pip's cache when it can)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support import ROOT, free_port

# What a wheel is built from: the project's metadata and its packages, nothing else of the
# checkout (a file the hub needs outside them would be missing from the wheel too).
SOURCES = (
    "pyproject.toml",
    "README.md",
    "hub",
    "console",
    "auth",
    "channels",
    "infra",
    "notifications",
)
JUNK = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")


def run(*args: str | Path, timeout: float = 600, **kwargs: object) -> str:
    done = subprocess.run(
        [str(a) for a in args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        **kwargs,  # type: ignore[arg-type]
    )
    assert done.returncode == 0, f"{args} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def clean_env() -> dict[str, str]:
    """The environment without the hub's settings or anything that points into the checkout."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("HUB_", "PYTHON", "VIRTUAL_ENV"))
        and k not in ("DATABASE_URL", "REDIS_URL", "SMTP_URL", "HOST", "PORT")
    }


def build_wheel(tmp_path: Path) -> Path:
    source = tmp_path / "source"
    source.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=JUNK)
        else:
            shutil.copy2(ROOT / name, source / name)
    dist = tmp_path / "dist"
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", dist, source)
    [wheel] = dist.glob("notification_hub-*.whl")
    return wheel


def installed_venv(tmp_path: Path, wheel: Path) -> Path:
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv)
    run(venv / "bin" / "python", "-m", "pip", "install", "-q", wheel, env=clean_env())
    return venv


def test_an_installed_wheel_serves_the_api_and_the_demo_page(tmp_path):
    venv = installed_venv(tmp_path, build_wheel(tmp_path))
    workdir = tmp_path / "work"
    workdir.mkdir()
    env = clean_env()
    # The hub runs from the venv's site-packages, not from this checkout.
    where = run(
        venv / "bin" / "python", "-c", "import hub; print(hub.__file__)", cwd=workdir, env=env
    )
    assert Path(where.strip()).is_relative_to(venv), where

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = (tmp_path / "hub.log").open("wb")
    process = subprocess.Popen(
        [venv / "bin" / "notification-hub", "serve", "--port", str(port)],
        cwd=workdir,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        ready = None
        while time.monotonic() < deadline and process.poll() is None:
            try:
                ready = httpx.get(f"{url}/readyz", timeout=2)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        logs = (tmp_path / "hub.log").read_text(errors="replace")
        assert ready is not None, f"the installed hub did not start:\n{logs}"
        assert ready.status_code == 200 and ready.json() == {"status": "ok"}, ready.text

        page = httpx.get(f"{url}/demo/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "<title>notification-hub demo</title>" in page.text
        script = httpx.get(f"{url}/demo/demo.js")
        assert script.status_code == 200
        assert "javascript" in script.headers["content-type"]
        assert "actioncable-v1-json" in script.text
        assert httpx.get(f"{url}/demo/demo.css").status_code == 200
        sign_in = httpx.get(f"{url}/console/sign-in")  # the console's templates and CSS
        assert sign_in.status_code == 200 and 'id="sign-in-form"' in sign_in.text
        assert httpx.get(f"{url}/console/static/console.css").status_code == 200
        assert (workdir / "hub.db").exists()  # migrated by the packaged migrations
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
