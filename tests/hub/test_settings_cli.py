"""Settings from the environment, and the `cohort` command line end to end."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from hub.cli import main
from hub.settings import SettingsError, load_settings

COHORT = [sys.executable, "-m", "hub.cli"]


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    for key in list(os.environ):
        if key.startswith("COHORT_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("COHORT_DATA_DIR", str(tmp_path))
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield tmp_path
    # The CLI configures logging for the whole process; give pytest its own back.
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("COHORT_PORT", "eighty"),
        ("COHORT_PORT", "70000"),
        ("COHORT_DATABASE_URL", "mysql://localhost/cohort"),
        ("COHORT_REDIS_URL", "localhost:6379"),
        ("COHORT_SECRET_KEY", "too-short"),
        ("COHORT_PUBLIC_BASE_URL", "cohort.example"),
        ("COHORT_LOG_LEVEL", "LOUD"),
        ("COHORT_REFRESH_GRACE_SECONDS", "60"),
    ],
)
def test_bad_setting_names_the_variable(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError, match=variable):
        load_settings()


def test_bad_setting_stops_the_cli_with_exit_2(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COHORT_PORT", "eighty")
    assert main(["serve"]) == 2
    assert "COHORT_PORT" in capsys.readouterr().err


def test_defaults_are_the_embedded_setup(clean_env: Path) -> None:
    settings = load_settings()
    assert settings.db_url == f"sqlite+aiosqlite:///{(clean_env / 'cohort.db').resolve()}"
    assert settings.redis_url is None
    assert settings.base_url == "http://127.0.0.1:8080"
    assert settings.cookie_secure is False


def test_https_base_url_means_secure_cookies(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COHORT_PUBLIC_BASE_URL", "https://cohort.example/")
    monkeypatch.setenv("COHORT_DATABASE_URL", "postgresql://u@db/cohort")
    settings = load_settings()
    assert settings.cookie_secure is True
    assert settings.base_url == "https://cohort.example"
    assert settings.db_url == "postgresql+asyncpg://u@db/cohort"


def test_secret_key_is_generated_once_and_private(clean_env: Path) -> None:
    first = load_settings().signing_key()
    assert len(first) >= 48
    assert load_settings().signing_key() == first
    assert (clean_env / "secret").stat().st_mode & 0o777 == 0o600


def test_migrate_and_admin_create(clean_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["migrate"]) == 0
    assert main(["admin", "create", "--email", "Boss@Example.com", "--password", "too short"]) == 1
    assert "at least 10 characters" in capsys.readouterr().err
    assert (
        main(["admin", "create", "--email", "boss@example.com", "--password", "long enough pw"])
        == 0
    )
    assert "boss@example.com is an admin" in capsys.readouterr().out

    async def check() -> None:
        from hub.services import build_hub

        hub = build_hub(load_settings())
        try:
            grant = await hub.identity.login(
                "boss@example.com", "long enough pw", user_agent="t", ip=None
            )
            assert grant.user.is_admin
        finally:
            await hub.db.dispose()

    asyncio.run(check())


def test_admin_create_usage_errors_exit_2(clean_env: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["admin", "create", "--email", "x@example.com"])
    assert exc.value.code == 2


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_migrates_seeds_and_answers(clean_env: Path) -> None:
    """What `make run` does: a real process on the embedded default with demo accounts."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("COHORT_")}
    env.update(COHORT_DATA_DIR=str(clean_env), COHORT_LOG_FORMAT="text")
    proc = subprocess.Popen(
        [*COHORT, "serve", "--port", str(port), "--migrate", "--demo"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:

        async def probe() -> dict[str, object]:
            deadline = time.monotonic() + 30
            async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as http:
                while True:
                    try:
                        async with http.get("/readyz") as resp:
                            if resp.status == 200:
                                break
                    except aiohttp.ClientConnectionError:
                        pass
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise AssertionError("cohort serve did not become ready")
                    await asyncio.sleep(0.1)
                login = {"email": "teacher@example.com", "password": "chalk-board-2026"}
                async with http.post("/api/auth/login", json=login) as resp:
                    assert resp.status == 200
                    return await resp.json()  # type: ignore[no-any-return]

        body = asyncio.run(probe())
        assert body["user"]["is_teacher"] is True
        assert (clean_env / "cohort.db").exists()
    finally:
        proc.terminate()
        try:
            # A transcode of the demo videos is under way: it stops at its next frame.
            output, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            output, _ = proc.communicate()
            raise AssertionError(f"cohort serve did not stop on SIGTERM:\n{output}") from None
    assert "admin@example.com" in output
    assert "hub-keeper-2026" in output
    base = f"http://127.0.0.1:{port}"
    assert f"Demo community: {base}/communities/python-learners" in output
    assert f"Demo project: {base}/projects/1" in output
    assert proc.returncode in (0, -15)


def test_readme_documents_every_setting() -> None:
    from hub.settings import REPO_ROOT, Settings

    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    missing = [
        f"COHORT_{name.upper()}"
        for name in Settings.model_fields
        if f"`COHORT_{name.upper()}`" not in readme
    ]
    assert missing == []
