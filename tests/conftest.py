"""Shared fixtures: real vmcores from ``kdx lab`` (built once, cached) and the crash oracle.

Every dump a test reads is a real one: a Debian cloud kernel crashed under QEMU and
captured by kdump or QEMU. The lab caches finished dumps, so only the first run pays.
Each lab dump is opened once per test run (``LabDump.opened``, a ``kdx.Dump``) and shared
by every test file, since opening one loads its whole vmlinux debug info.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import subprocess
import sys
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import pytest

from kdx.api import Dump, open_dump
from kdx.lab.cache import default_cache
from kdx.lab.run import RunRequest, dump_name, run
from kdx.target.debuginfo import DEBUG_DIRS_ENV

# Whoever knows where debug info lives names it: here, the lab's unpacked kernels, so
# tests (and the kdx processes they start) find a lab dump's vmlinux without naming it.
os.environ[DEBUG_DIRS_ENV] = os.pathsep.join(
    p for p in (str(default_cache() / "kernels"), os.environ.get(DEBUG_DIRS_ENV)) if p)

#: Opened dumps kept at once. One holds about 250 MB (its vmlinux's debug info), and test
#: files use their dumps together, so a few recent ones cover nearly every reuse.
_OPEN_LIMIT = 8
_opened: OrderedDict[Path, Dump] = OrderedDict()


def opened(vmcore: Path, vmlinux: Path, modules: Path) -> Dump:
    """The shared ``kdx.Dump`` of a lab dump: opened on first use, then reused by every
    test file (least recently used ones are dropped beyond ``_OPEN_LIMIT``)."""
    if vmcore in _opened:
        _opened.move_to_end(vmcore)
        return _opened[vmcore]
    dump = open_dump(vmcore, vmlinux, [modules])
    _opened[vmcore] = dump
    while len(_opened) > _OPEN_LIMIT:
        _opened.popitem(last=False)
    return dump


@dataclass(frozen=True)
class LabDump:
    """A finished lab run: the dump, its debug info and what really happened."""

    dir: Path
    truth: dict

    @property
    def vmcore(self) -> Path:
        return Path(self.truth["vmcore"])

    @property
    def vmlinux(self) -> Path:
        return Path(self.truth["vmlinux"])

    @property
    def modules(self) -> Path:
        return Path(self.truth["modules_dir"])

    @property
    def opened(self) -> Dump:
        """This dump opened with its vmlinux and modules, shared by all tests."""
        return opened(self.vmcore, self.vmlinux, self.modules)

    @property
    def target(self):  # noqa: ANN201 (kdx.target.open.Target)
        """The opened target (program, paths, warnings) of the shared ``opened`` dump."""
        return self.opened.target

    @property
    def verdict(self):  # noqa: ANN201 (kdx.diagnosis.verdict.Verdict)
        """``kdx analyze``'s verdict with the vmlinux, computed once per test run (kept
        after the opened dump is dropped: an analysis costs seconds, a verdict little)."""
        if self.vmcore not in _verdicts:
            _verdicts[self.vmcore] = self.opened.analyze()
        return _verdicts[self.vmcore]


#: Verdicts by dump, for the whole test run.
_verdicts: dict[Path, object] = {}


def lab_run(run: Path) -> LabDump:
    """The finished lab run in directory ``run`` (any kernel, even one ``lab`` cannot
    build here, such as a cached 7.x run)."""
    truth = json.loads((run / "truth.json").read_text())
    truth.setdefault("vmcore", str(run / "vmcore"))
    return LabDump(run, truth)


def _progress(msg: str) -> None:
    print(f"[lab] {msg}", file=sys.stderr, flush=True)


_made: dict[RunRequest, LabDump] = {}


def make_dump(scenario: str, capture: str = "kdump", fmt: str = "kdump-zlib",
              kernel: str | None = None, vmcoreinfo: bool = True,
              dump_level: int = 31) -> LabDump:
    """Build (or reuse from the lab cache) the dump of one scenario; ``dump_level`` is
    makedumpfile's -d for kdump captures (0: every page, unfiltered)."""
    req = RunRequest(scenario=scenario, kernel=kernel, capture=capture, format=fmt,
                     vmcoreinfo=vmcoreinfo, dump_level=dump_level)
    if req not in _made:
        out = run(default_cache(), req, _progress)
        truth = json.loads((out / "truth.json").read_text())
        truth.setdefault("vmcore", str(out / dump_name(req)))
        _made[req] = LabDump(out, truth)
    return _made[req]


@pytest.fixture(scope="session")
def lab() -> Callable[..., LabDump]:
    """``lab("null-deref-module", capture=..., fmt=...)`` returns a cached real dump."""
    return make_dump


@pytest.fixture(scope="session")
def null_deref() -> LabDump:
    return make_dump("null-deref-module")


@pytest.fixture(scope="session")
def sysrq() -> LabDump:
    return make_dump("sysrq")


@pytest.fixture(scope="session")
def null_deref_612() -> LabDump:
    return make_dump("null-deref-module", kernel="6.12")


def run_kdx(*args: str | Path, check: bool = False) -> subprocess.CompletedProcess[str]:
    """Run the kdx command line as a user would, capturing its output."""
    env = dict(os.environ, COLUMNS="200", NO_COLOR="1")
    proc = subprocess.run([sys.executable, "-m", "kdx", *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"kdx {args} failed ({proc.returncode}): {proc.stderr}")
    return proc


@pytest.fixture(scope="session")
def kdx() -> Callable[..., subprocess.CompletedProcess[str]]:
    return run_kdx


def crash_output(dump: LabDump, commands: list[str]) -> str:
    """crash 8.0.6's output for ``commands`` on ``dump``, cached beside the dump because
    crash takes several seconds to start."""
    from kdx.lab.oracle import run_crash

    key = hashlib.sha256("\n".join(commands).encode()).hexdigest()[:12]
    cached = dump.dir / f"crash-{key}.out"
    if cached.exists():
        return cached.read_text()
    text = run_crash(default_cache(), dump.vmlinux, dump.vmcore, commands)
    cached.write_text(text)
    return text


@pytest.fixture(scope="session")
def crash() -> Callable[[LabDump, list[str]], str]:
    """The oracle: ``crash(dump, ["sys"])`` is crash 8.0.6's output on that dump."""
    return crash_output


@pytest.fixture(scope="module", params=["6.1", "6.12"])
def null_deref_each(request, lab) -> LabDump:  # noqa: ANN001 (fixtures)
    """The null-deref-module dump of each lab kernel in turn: a test using it runs on both."""
    return lab("null-deref-module", kernel=None if request.param == "6.1" else "6.12")


# --- the fleet's external services ----------------------------------------------------
# PostgreSQL (and Redis) started by ``scripts/services start``, which writes their URLs to
# ``$KDX_SERVICES_ENV`` (default /tmp/kdx-services.env); the environment's own
# ``KDX_TEST_DATABASE``/``KDX_TEST_REDIS`` win. A test needing a service that is not running
# skips, saying how to start it. (Here, not in tests/fleet/conftest.py: a second module
# named conftest would shadow this one for the test files that import from it.)


def service_url(name: str) -> str | None:
    """``KDX_TEST_DATABASE`` or ``KDX_TEST_REDIS``: from the environment, else the file."""
    if os.environ.get(name):
        return os.environ[name]
    path = Path(os.environ.get("KDX_SERVICES_ENV", "/tmp/kdx-services.env"))
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        key, _, value = line.partition("=")
        if key.strip() == name and value.strip():
            return value.strip()
    return None


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The PostgreSQL server's URL (its ``kdx`` database is the admin connection)."""
    url = service_url("KDX_TEST_DATABASE")
    if url is None:
        pytest.skip("no PostgreSQL: run scripts/services start (or set KDX_TEST_DATABASE)")
    return url


def fresh_postgres_database(url: str) -> Iterator[str]:
    """A new empty database on the server, dropped afterwards."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = "kdx_t_" + secrets.token_hex(6)
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path) -> Iterator[str]:  # noqa: ANN001 (fixtures)
    """An empty database of each kind: a SQLite file, then a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fleet.sqlite3'}"
        return
    yield from fresh_postgres_database(request.getfixturevalue("postgres_url"))


@pytest.fixture
def postgres_database(postgres_url) -> Iterator[str]:  # noqa: ANN001 (fixtures)
    """A fresh empty PostgreSQL database, dropped afterwards."""
    yield from fresh_postgres_database(postgres_url)
