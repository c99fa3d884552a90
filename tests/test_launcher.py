"""`make run` on embedded defaults: it serves, processes a deal, and Ctrl-C stops everything."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from connector.settings import PROJECT_ROOT
from tests.processes import alive, free_port, wait_for


def processes() -> dict[int, tuple[int, str]]:
    """pid → (parent pid, command name) for every process, read from /proc."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            name = stat[stat.index("(") + 1 : stat.rindex(")")]
            ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
            found[int(entry.name)] = (ppid, name)
    return found


@pytest.mark.timeout(90)
def test_make_run_serves_the_demo_flow_and_ctrl_c_stops_every_process(tmp_path):
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "REDIS_URL", "PUENTE_SECRET_KEY", "PUENTE_PUBLIC_URL")
    }
    env.update(
        PUENTE_INSTANCE_DIR=str(tmp_path),
        PUENTE_BIND=f"127.0.0.1:{port}",
        PUENTE_LOG_LEVEL="WARNING",
    )
    redis_before = {pid for pid, (_, name) in processes().items() if name == "redis-server"}
    log = (tmp_path / "launcher.log").open("w")
    launcher = subprocess.Popen(
        [sys.executable, "-m", "web.launcher"],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:

        def healthy():
            try:
                return requests.get(f"{base}/healthz", timeout=2).json()
            except requests.RequestException:
                return None

        health = wait_for(healthy, 45, "the web server", interval=0.2)
        assert health == {"status": "ok"}  # the details need an API key

        sent = subprocess.run(
            [sys.executable, "-m", "web.cli", "send-sample", "--deal-id", "D-launcher"],
            cwd=PROJECT_ROOT,
            env={**env, "PUENTE_PUBLIC_URL": base},
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert sent.returncode == 0, sent.stdout + sent.stderr
        assert "→ 202" in sent.stdout

        key = (tmp_path / "dev_api_key").read_text().strip()
        auth = {"Authorization": f"Bearer {key}"}

        def invoiced():
            items = requests.get(f"{base}/api/v1/invoices", headers=auth, timeout=5).json()
            return items["items"] if items["total"] else None

        [invoice] = wait_for(invoiced, 20, "the draft invoice", interval=0.2)
        assert invoice["external_ref"] == "D-launcher"
        assert invoice["totals"]["total"] == "3001.41"
        runs = requests.get(f"{base}/api/v1/runs", headers=auth, timeout=5).json()["items"]
        assert [r["status"] for r in runs] == ["succeeded"]
        front = requests.get(f"{base}/", timeout=5)  # / leads to the app: its sign-in page

        children = [pid for pid, (ppid, _) in processes().items() if ppid == launcher.pid]
        embedded = {
            pid for pid, (_, name) in processes().items() if name == "redis-server"
        } - redis_before
        assert len(children) >= 3  # web, worker, sweeper
        assert len(embedded) == 1
    finally:
        launcher.send_signal(signal.SIGINT)
        code = launcher.wait(timeout=30)
        log.close()

    output = (tmp_path / "launcher.log").read_text()
    assert code == 0, output
    assert "Webhook URL:" in output and "whsec_" in output
    # The invoicing mode is said plainly: by default records are kept, not sent.
    assert "Facturación:    no VERI*FACTU" in output
    # the first admin, made on first start, signs in with the password printed once
    assert front.url == f"{base}/ui/login?next=/ui/runs" and front.status_code == 200
    assert re.search(r"Sign in: admin@puente\.local  contraseña / password: \S{16}\n", output)
    wait_for(
        lambda: not any(alive(p) for p in [*children, *embedded]),
        10,
        "every started process to exit",
        interval=0.2,
    )


def test_the_banner_prints_service_urls_without_their_passwords():
    from web.launcher import _no_secret

    assert _no_secret("redis://:s3cret@127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    assert (
        _no_secret("postgresql+psycopg://u:p@db:5432/puente")
        == "postgresql+psycopg://db:5432/puente"
    )
    assert _no_secret("sqlite:////srv/puente.db") == "sqlite:////srv/puente.db"


def test_a_verifactu_mode_without_an_endpoint_stops_the_start_saying_how_to_fix_it(
    monkeypatch, capsys
):
    from web import launcher

    monkeypatch.setenv("PUENTE_VERIFACTU_MODE", "verifactu")
    monkeypatch.delenv("PUENTE_VERIFACTU_URL", raising=False)

    assert launcher.main() == 2
    err = capsys.readouterr().err
    assert "El modo VERI*FACTU necesita PUENTE_VERIFACTU_URL" in err
    assert "Traceback" not in err


def test_the_api_key_and_webhook_secret_are_printed_on_the_first_start_only(
    monkeypatch, capsys, database_url, redis_url, tmp_path
):
    """Start output ends up in logs: a secret is shown when it is made, never again."""
    from web import launcher

    for name in ("PUENTE_BOOTSTRAP_API_KEY", "PUENTE_PUBLIC_URL", "PUENTE_BIND"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PUENTE_INSTANCE_DIR", str(tmp_path))
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("PUENTE_SECRET_KEY", "test-secret-key")
    # The processes are not started: only what a start prints is looked at here.
    monkeypatch.setattr(launcher.subprocess, "Popen", lambda *args, **kwargs: None)
    monkeypatch.setattr(launcher, "_wait", lambda children: 0)
    monkeypatch.setattr(launcher, "_stop", lambda children: None)

    assert launcher.main() == 0
    first = capsys.readouterr().out
    key = (tmp_path / "dev_api_key").read_text().strip()
    [secret] = re.findall(r"whsec_\S+", first)
    assert f"API key:        {key}" in first
    assert f"Webhook secret: {secret}" in first

    assert launcher.main() == 0
    again = capsys.readouterr().out
    assert key not in again and "whsec_" not in again
    assert "Webhook URL:" in again  # not a secret: the address stays
    # where to get one instead, in both languages
    assert "/ui/api-keys" in again and "python -m web.cli api-key" in again
    assert "python -m web.cli demo" in again
    assert "se mostró" in again and "shown" in again


def test_a_bootstrap_api_key_from_the_environment_is_never_printed(
    monkeypatch, capsys, database_url, redis_url, tmp_path
):
    from web import launcher

    chosen = "bootstrap-key-" + "k" * 30
    monkeypatch.delenv("PUENTE_PUBLIC_URL", raising=False)
    monkeypatch.setenv("PUENTE_BOOTSTRAP_API_KEY", chosen)
    monkeypatch.setenv("PUENTE_INSTANCE_DIR", str(tmp_path))
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("PUENTE_SECRET_KEY", "test-secret-key")
    monkeypatch.setattr(launcher.subprocess, "Popen", lambda *args, **kwargs: None)
    monkeypatch.setattr(launcher, "_wait", lambda children: 0)
    monkeypatch.setattr(launcher, "_stop", lambda children: None)

    assert launcher.main() == 0
    out = capsys.readouterr().out
    assert chosen not in out and "PUENTE_BOOTSTRAP_API_KEY" in out
