"""The fleet's database: tables, opening (with migrations) and record conversion.

SQLAlchemy keeps the SQL portable, so the embedded SQLite file and a PostgreSQL server run
the same schema, created and upgraded by the Alembic revisions in ``migrations/`` when the
database is opened. The embedded SQLite file is upgraded when it is opened; a database named
with ``--database`` is only created when empty, and one older than the code is refused with
a line asking for ``kdx serve --migrate`` (an operator upgrades a shared database when every
worker is stopped, not whenever one process starts). SQLite runs in WAL mode with a busy
timeout because the server, its watcher and every worker process write to it at once.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    text,
)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from kdx.errors import KdxError
from kdx.fleet.records import DumpRecord, JobRecord

__all__ = ["Base", "Database", "Dump", "Job", "Label", "Output", "Problem", "ProblemEventRow",
           "SignatureRow", "Watched", "dump_record", "head_revision", "iso", "job_record",
           "migrate_database", "open_database", "schema_revision", "utcnow"]

MIGRATIONS = Path(__file__).parent / "migrations"
_MIGRATION_LOCK = 0x6B6478  # "kdx": the advisory lock schema upgrades hold on PostgreSQL


def utcnow() -> dt.datetime:
    """Now in UTC, naive (how the columns hold time on every database)."""
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def iso(value: dt.datetime | None) -> str | None:
    """ISO 8601 with a ``Z``, the form every record carries."""
    return None if value is None else value.replace(microsecond=0).isoformat() + "Z"


class Base(DeclarativeBase):
    pass


class Dump(Base):
    __tablename__ = "dumps"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    filename: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16), index=True)
    received: Mapped[dt.datetime] = mapped_column(DateTime)
    companion: Mapped[str | None] = mapped_column(String(64))  # vmcore-dmesg.txt's sha256
    host: Mapped[str | None] = mapped_column(String(255))
    release: Mapped[str | None] = mapped_column(String(255))
    build_id: Mapped[str | None] = mapped_column(String(64), index=True)
    captured: Mapped[dt.datetime | None] = mapped_column(DateTime)
    problem_id: Mapped[int | None] = mapped_column(ForeignKey("problems.id"), index=True)
    pinned: Mapped[bool] = mapped_column(Boolean, default=False)  # placed by a person
    signature: Mapped[str | None] = mapped_column(String(64))
    signature_version: Mapped[int | None] = mapped_column(Integer)
    failure: Mapped[str | None] = mapped_column(Text)
    debug_source: Mapped[str | None] = mapped_column(String(16))
    fast: Mapped[dict | None] = mapped_column(JSON)
    verdict: Mapped[dict | None] = mapped_column(JSON)
    first_result: Mapped[dt.datetime | None] = mapped_column(DateTime)
    analysed: Mapped[dt.datetime | None] = mapped_column(DateTime)


class Label(Base):
    __tablename__ = "labels"

    dump_id: Mapped[int] = mapped_column(ForeignKey("dumps.id"), primary_key=True)
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(255))


class Output(Base):
    __tablename__ = "outputs"

    dump_id: Mapped[int] = mapped_column(ForeignKey("dumps.id"), primary_key=True)
    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    text: Mapped[str] = mapped_column(Text)


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dump_id: Mapped[int] = mapped_column(ForeignKey("dumps.id"), index=True)
    stage: Mapped[str] = mapped_column(String(8))
    state: Mapped[str] = mapped_column(String(8), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease: Mapped[str | None] = mapped_column(String(32))
    created: Mapped[dt.datetime] = mapped_column(DateTime)
    started: Mapped[dt.datetime | None] = mapped_column(DateTime)
    finished: Mapped[dt.datetime | None] = mapped_column(DateTime)
    failure: Mapped[str | None] = mapped_column(Text)
    seconds: Mapped[float | None] = mapped_column(Float)
    completions: Mapped[int] = mapped_column(Integer, default=0)  # results stored: 0 or 1
    peak_memory: Mapped[int | None] = mapped_column(BigInteger)  # the job process's, bytes


class Problem(Base):
    __tablename__ = "problems"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    signature: Mapped[str] = mapped_column(String(64))
    signature_version: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(Text)
    category: Mapped[str] = mapped_column(String(64))
    culprit: Mapped[str | None] = mapped_column(String(255))
    module: Mapped[str | None] = mapped_column(String(64))
    created: Mapped[dt.datetime] = mapped_column(DateTime)
    merged_into: Mapped[int | None] = mapped_column(ForeignKey("problems.id"))


class SignatureRow(Base):
    """Which problem a signature's dumps land in (a merge re-points it)."""

    __tablename__ = "signatures"
    __table_args__ = (UniqueConstraint("hash", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    hash: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    problem_id: Mapped[int] = mapped_column(ForeignKey("problems.id"))


class ProblemEventRow(Base):
    __tablename__ = "problem_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    problem_id: Mapped[int] = mapped_column(ForeignKey("problems.id"), index=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime)
    action: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    who: Mapped[str] = mapped_column(String(255))
    detail: Mapped[dict] = mapped_column(JSON, default=dict)


class Watched(Base):
    """A file ``--watch`` ingested, so a restart does not ingest it again."""

    __tablename__ = "watched"

    path: Mapped[str] = mapped_column(String(1024), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    mtime_ns: Mapped[int] = mapped_column(BigInteger)
    dump_id: Mapped[int | None] = mapped_column(ForeignKey("dumps.id"))
    at: Mapped[dt.datetime] = mapped_column(DateTime)


class Database:
    """An engine and its session factories: ``session`` for reading, ``write`` for a
    transaction that writes (on SQLite it takes the write lock when it begins, waiting
    for it up to the busy timeout, so a read-then-write transaction never fails because
    another process wrote in between)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.session = sessionmaker(engine, expire_on_commit=False)
        self.write = sessionmaker(engine.execution_options(immediate=True),
                                  expire_on_commit=False)

    def close(self) -> None:
        self.engine.dispose()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # transactions begin in _sqlite_begin
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_begin(connection: Any) -> None:
    immediate = connection.get_execution_options().get("immediate")
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _engine(url: str) -> Engine:
    try:
        engine = create_engine(url, future=True)
    except (ArgumentError, ImportError, ValueError) as err:
        raise KdxError(f"not a database URL kdx can open: {_safe(url)} ({err})") from None
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
    return engine


def _safe(url: str) -> str:
    """``url`` without its password (it is printed)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url[:200]


def open_database(url: str, *, migrate: bool = True, upgrade_old: bool = True) -> Database:
    """Connect to ``url``; with ``migrate``, create the schema in an empty database and
    bring an older one to the newest revision (only with ``upgrade_old``: else KdxError
    saying to run ``kdx serve --migrate``)."""
    engine = _engine(url)
    if migrate:
        try:
            current = schema_revision(engine)
            if current is not None and current != head_revision() and not upgrade_old:
                raise KdxError(_behind(url, current))
            upgrade(engine)
        except OperationalError as err:
            engine.dispose()
            raise KdxError(f"cannot open the database {_safe(url)}: "
                           f"{str(err.orig).strip().splitlines()[0]}") from None
        except BaseException:
            engine.dispose()
            raise
    return Database(engine)


def _behind(url: str, current: str) -> str:
    head = head_revision()
    if current not in _revisions():
        return (f"the database {_safe(url)} is at schema revision {current}, which this kdx "
                f"does not know (its newest is {head}): run a newer kdx")
    return (f"the database {_safe(url)} is at schema revision {current}, this kdx needs "
            f"{head}: stop every kdx process using it, then run "
            f"kdx serve --database URL --migrate")


def migrate_database(url: str) -> tuple[str | None, str]:
    """``kdx serve --migrate``: upgrade ``url`` to the newest revision; (from, to)."""
    engine = _engine(url)
    try:
        before = schema_revision(engine)
        if before is not None and before not in _revisions():
            raise KdxError(_behind(url, before))
        upgrade(engine)
        return before, schema_revision(engine) or head_revision()
    except OperationalError as err:
        raise KdxError(f"cannot open the database {_safe(url)}: "
                       f"{str(err.orig).strip().splitlines()[0]}") from None
    finally:
        engine.dispose()


def _config() -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def _revisions() -> set[str]:
    from alembic.script import ScriptDirectory

    return {r.revision for r in ScriptDirectory.from_config(_config()).walk_revisions()}


def head_revision() -> str:
    """The newest schema revision this code knows."""
    from alembic.script import ScriptDirectory

    return str(ScriptDirectory.from_config(_config()).get_current_head())


def schema_revision(engine: Engine) -> str | None:
    """The database's schema revision, None when it has no kdx schema yet."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine) -> None:
    """``alembic upgrade head`` on ``engine``, without a config file."""
    from alembic import command

    config = _config()
    # immediate: on SQLite the write lock is taken before alembic reads the revision
    with engine.execution_options(immediate=True).begin() as connection:
        if engine.dialect.name == "postgresql":
            # processes starting together on an empty database take turns (the lock ends
            # with the transaction); SQLite's write lock does the same there
            connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK})
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def dump_record(session: Session, row: Dump, *, outputs: bool = False) -> DumpRecord:
    """The record of ``row`` (its command outputs only when asked: they are large)."""
    from sqlalchemy import select

    labels = dict(session.execute(
        select(Label.key, Label.value).where(Label.dump_id == row.id)).all())
    texts: dict[str, str] = {}
    if outputs:
        texts = dict(session.execute(
            select(Output.name, Output.text).where(Output.dump_id == row.id)).all())
    return DumpRecord(
        id=row.id, sha256=row.sha256, filename=row.filename, size=row.size, kind=row.kind,
        state=row.state, received=iso(row.received) or "", labels=labels, host=row.host,
        release=row.release, build_id=row.build_id, captured=iso(row.captured),
        problem_id=row.problem_id, failure=row.failure, debug_source=row.debug_source,
        fast=row.fast, verdict=row.verdict, outputs=texts)


def job_record(row: Job) -> JobRecord:
    return JobRecord(id=row.id, dump_id=row.dump_id, stage=row.stage, state=row.state,
                     attempts=row.attempts, created=iso(row.created) or "",
                     started=iso(row.started), finished=iso(row.finished),
                     failure=row.failure, seconds=row.seconds)
