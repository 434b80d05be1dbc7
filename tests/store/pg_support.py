"""A real PostgreSQL for the tests: one server per test session (per xdist worker), one fresh database per test.

The server binaries come from Debian's `postgresql` package (`/usr/lib/postgresql/<version>/bin`, or the folder in
FLORA_TEST_PG_BIN). `initdb` makes a cluster in a temporary folder, which PostgreSQL refuses to do as root: as root,
the cluster belongs to `nobody` and every server command runs through `runuser`. It listens on 127.0.0.1 on a free
port, trusts local connections, and is stopped (immediately, the cluster removed) when the session ends. Missing
binaries fail the test with the command that installs them: a PostgreSQL test never passes without PostgreSQL.

The fixtures (`postgres_server`, `postgres_url`, `store_location`) are made available to every test folder by
tests/conftest.py.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

INSTALL = "apt-get install -y postgresql"
SUPERUSER = "flora"
ENGINES = [pytest.param("sqlite"), pytest.param("postgres", marks=pytest.mark.postgres)]
"""The store engines a parametrized storage test runs on (the PostgreSQL one marked `postgres`)."""


def pg_bin() -> Path:
    """The folder of the PostgreSQL server binaries; fails the test with what to install when there is none."""
    wanted = os.environ.get("FLORA_TEST_PG_BIN")
    found = [wanted] if wanted else sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                                            key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit()
                                            else 0)
    for folder in reversed(found):
        if (Path(folder) / "initdb").exists() and (Path(folder) / "pg_ctl").exists():
            return Path(folder)
    pytest.fail(f"PostgreSQL server binaries (initdb, pg_ctl) not found in {wanted or '/usr/lib/postgresql/*/bin'}: "
                f"install them with `{INSTALL}` (Debian/Ubuntu), or set FLORA_TEST_PG_BIN to their folder",
                pytrace=False)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class PostgresServer:
    """One running cluster: `url(database)` reaches a database on it."""

    bin: Path
    folder: Path
    port: int
    as_user: list[str]

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def run(self, tool: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.as_user, str(self.bin / tool), *args], capture_output=True, text=True,
                              timeout=120, check=False, cwd=self.folder)

    def create_database(self) -> str:
        """A new empty database; its URL."""
        name = f"t_{uuid.uuid4().hex[:12]}"
        done = self.run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", SUPERUSER, name)
        assert done.returncode == 0, done.stderr
        return self.url(name)

    def stop(self) -> None:
        self.run("pg_ctl", "-D", str(self.folder / "data"), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.folder, ignore_errors=True)


def start_postgres() -> PostgresServer:
    """initdb and start a cluster in a new temporary folder (owned by `nobody` when we are root)."""
    binaries = pg_bin()
    folder = Path(tempfile.mkdtemp(prefix="flora-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        os.chown(folder, 65534, 65534)  # nobody: PostgreSQL will not run as root
        as_user = ["runuser", "-u", "nobody", "--"]
    server = PostgresServer(binaries, folder, free_port(), as_user)
    data = folder / "data"
    done = server.run("initdb", "-D", str(data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8", "--no-sync")
    if done.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        pytest.fail(f"initdb failed: {done.stderr.strip()}", pytrace=False)
    options = f"-h 127.0.0.1 -p {server.port} -k {folder} -c fsync=off -c max_connections=200"
    done = server.run("pg_ctl", "-D", str(data), "-l", str(folder / "log"), "-o", options, "-w", "-t", "60", "start")
    if done.returncode != 0:
        log = (folder / "log").read_text(errors="replace") if (folder / "log").exists() else ""
        shutil.rmtree(folder, ignore_errors=True)
        pytest.fail(f"PostgreSQL did not start: {done.stderr.strip()} {log[-2000:]}", pytrace=False)
    return server


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    server = start_postgres()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """The URL of a fresh, empty database of its own for this test."""
    return postgres_server.create_database()


@pytest.fixture(params=ENGINES)
def store_location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a storage test's store lives: a SQLite file, then a PostgreSQL database (marked `postgres`)."""
    if request.param == "postgres":
        url: str = request.getfixturevalue("postgres_url")
        return url
    return str(tmp_path / "store" / "runs.sqlite3")
