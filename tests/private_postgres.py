"""A PostgreSQL server of a test's own, from the Debian binaries, to stop and start for real.

The shared server (PUENTE_TEST_POSTGRES_URL) serves other suites at the same time and is never
stopped; a test that needs a real restart gets one of these instead: a fresh cluster in a
temporary directory, trust authentication, listening on 127.0.0.1 only on a free port, its
Unix socket inside that directory, fsync off. Every wait is bounded.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from tests.processes import free_port

PG_CTL_TIMEOUT = 30  # seconds pg_ctl waits for a start or a stop (-t)
COMMAND_TIMEOUT = PG_CTL_TIMEOUT + 15  # and we wait for pg_ctl (or initdb) itself


class PostgresBinariesMissing(RuntimeError):
    pass


def find_bindir() -> Path:
    """The newest installed server's bin directory (initdb, pg_ctl, postgres).

    PUENTE_TEST_PG_BINDIR overrides it; otherwise /usr/lib/postgresql/<version>/bin (Debian's
    `postgresql` package), then `pg_config --bindir`.
    """
    candidates: list[Path] = []
    if os.environ.get("PUENTE_TEST_PG_BINDIR"):
        candidates.append(Path(os.environ["PUENTE_TEST_PG_BINDIR"]))
    versions = Path("/usr/lib/postgresql")
    if versions.is_dir():
        found = [p for p in versions.iterdir() if re.fullmatch(r"\d+(\.\d+)?", p.name)]
        found.sort(key=lambda p: [int(x) for x in p.name.split(".")], reverse=True)
        candidates += [p / "bin" for p in found]
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(
            ["pg_config", "--bindir"], capture_output=True, text=True, timeout=10, check=True
        )
        candidates.append(Path(out.stdout.strip()))
    for bindir in candidates:
        if all((bindir / tool).is_file() for tool in ("initdb", "pg_ctl", "postgres")):
            return bindir
    raise PostgresBinariesMissing(
        "no PostgreSQL server binaries (initdb, pg_ctl, postgres) in "
        f"{[str(c) for c in candidates] or '/usr/lib/postgresql/*/bin'}: install the "
        "`postgresql` package (.ci/run does) or point PUENTE_TEST_PG_BINDIR at them"
    )


class PrivatePostgres:
    """One cluster in its own temporary directory; `start`, `stop` and `restart` it at will."""

    def __init__(self, bindir: Path, root: Path) -> None:
        self.bindir = bindir
        self.root = root
        self.data = root / "data"
        self.socket_dir = root / "socket"
        self.log = root / "server.log"
        self.port = 0

    # -- the cluster's life ----------------------------------------------------------------

    @classmethod
    @contextlib.contextmanager
    def running(cls) -> Iterator[PrivatePostgres]:
        """A new cluster, started; stopped and removed on the way out, whatever happened."""
        bindir = find_bindir()
        # Not under pytest's tmp_path: its directories are private to the user running the
        # tests, and the server may have to run as another (initdb refuses to run as root).
        root = Path(tempfile.mkdtemp(prefix="puente-pg-"))
        server = cls(bindir, root)
        try:
            server._init()
            server._start_on_a_free_port()
            yield server
        finally:
            with contextlib.suppress(Exception):
                server.stop("immediate")
            shutil.rmtree(root, ignore_errors=True)

    def _init(self) -> None:
        self.socket_dir.mkdir()
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                raise PostgresBinariesMissing(
                    "initdb refuses to run as root and there is no `postgres` user to run it "
                    "as: install the `postgresql` package (it creates one)"
                ) from None
            shutil.chown(self.root, "postgres", "postgres")
            shutil.chown(self.socket_dir, "postgres", "postgres")
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--no-locale",
            "--no-sync",
        )

    def _configure(self, port: int) -> None:
        # An include file of our own, rewritten for each port tried; postgresql.conf includes it.
        conf = self.data / "puente_test.conf"
        conf.write_text(
            "listen_addresses = '127.0.0.1'\n"
            f"port = {port}\n"
            f"unix_socket_directories = '{self.socket_dir}'\n"
            "fsync = off\n"
            "synchronous_commit = off\n"
            "full_page_writes = off\n"
            "max_connections = 40\n"
            "shared_buffers = 16MB\n"
        )
        if os.geteuid() == 0:
            shutil.chown(conf, "postgres", "postgres")
        main = self.data / "postgresql.conf"
        if "puente_test.conf" not in main.read_text():
            with main.open("a") as f:
                f.write("\ninclude = 'puente_test.conf'\n")
        self.port = port

    def _start_on_a_free_port(self, tries: int = 3) -> None:
        for attempt in range(1, tries + 1):
            self._configure(free_port())
            try:
                self.start()
                return
            except RuntimeError:
                if attempt == tries:  # another process took the port each time?
                    raise

    def start(self) -> None:
        self._pg_ctl("start", "-l", str(self.log))

    def stop(self, mode: str = "fast") -> None:
        """Stop the server; `fast` terminates every session (what a restart does to them)."""
        self._pg_ctl("stop", "-m", mode)

    def restart(self, mode: str = "fast") -> None:
        self._pg_ctl("restart", "-m", mode, "-l", str(self.log))

    def is_running(self) -> bool:
        status = subprocess.run(
            self._as_owner(str(self.bindir / "pg_ctl"), "status", "-D", str(self.data)),
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
        )
        return status.returncode == 0

    # -- databases ------------------------------------------------------------------------

    def url(self, database: str = "postgres") -> str:
        # connect_timeout bounds every connection attempt while the server is down.
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}?connect_timeout=5"

    def create_database(self, template: str | None = None) -> str:
        """A new empty database (or a copy of `template`); returns its name."""
        name = f"puente_{uuid.uuid4().hex[:12]}"
        admin = sa.create_engine(self.url(), poolclass=NullPool, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                copy = f' TEMPLATE "{template}"' if template else ""
                conn.exec_driver_sql(f'CREATE DATABASE "{name}"{copy}')
        finally:
            admin.dispose()
        return name

    # -- commands -------------------------------------------------------------------------

    def _as_owner(self, *argv: str) -> list[str]:
        if os.geteuid() == 0:
            return ["runuser", "-u", "postgres", "--", *argv]
        return list(argv)

    def _pg_ctl(self, action: str, *args: str) -> None:
        self._run("pg_ctl", action, "-D", str(self.data), "-w", "-t", str(PG_CTL_TIMEOUT), *args)

    def _run(self, tool: str, *args: str) -> None:
        argv = self._as_owner(str(self.bindir / tool), *args)
        try:
            done = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                timeout=COMMAND_TIMEOUT,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired as exc:
            raise RuntimeError(f"{' '.join(argv)} did not finish in {COMMAND_TIMEOUT} s") from exc
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(
                f"{' '.join(argv)} failed ({done.returncode}):\n{done.stdout}{done.stderr}"
                f"\n--- server log ---\n{log}"
            )
