"""Problems: dumps with one signature are one bug, whatever host or boot they came from.

A signature (hash and version) maps to a problem through the ``signatures`` table, so a
person's merge re-points the merged problem's signatures and later dumps of them land in
the problem they were merged into. A split moves chosen dumps into a new problem and pins
them there (a re-analysis does not move them back). Both keep the reason. When the
signature rules change version, dumps bucketed by an older version are analysed again.

A problem's numbers (count, hosts, kernels, first and last seen, per-day counts, "new")
are computed from its dumps when read, so they never drift from the dumps themselves.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from kdx.errors import KdxError
from kdx.fleet.db import Dump, Label, Problem, ProblemEventRow, SignatureRow, iso, utcnow
from kdx.fleet.records import ProblemEvent, ProblemRecord
from kdx.fleet.service import ProblemFilter

__all__ = ["NEW_BUILD_DAYS", "NEW_DAYS", "BucketKey", "NotFound", "assign", "current_version",
           "merge", "problem_records", "query_problems", "split", "stale_dumps"]

#: A problem first seen this recently is new.
NEW_DAYS = 1
#: A problem that arrived with a kernel build the fleet had not seen is new this long.
NEW_BUILD_DAYS = 7
_SORTS = ("last_seen", "count", "hosts", "first_seen", "title")


class NotFound(KdxError):
    """No dump or problem with that id."""


def current_version() -> int:
    """The version of the signature rules ``kdx analyze`` applies now."""
    from kdx.diagnosis import signature

    return int(getattr(signature, "SIGNATURE_VERSION", 1))


@dataclass(frozen=True)
class BucketKey:
    """What bucketing needs from an analysis: the signature and how to name its problem."""

    signature: str
    version: int
    title: str
    category: str
    culprit: str | None = None
    module: str | None = None


def _resolve(session: Session, problem_id: int) -> int:
    """Follow merges to the problem that holds the dumps now."""
    seen = set()
    while problem_id not in seen:
        seen.add(problem_id)
        into = session.scalar(select(Problem.merged_into).where(Problem.id == problem_id))
        if into is None:
            return problem_id
        problem_id = into
    return problem_id


def assign(session: Session, dump: Dump, key: BucketKey, *, final: bool) -> int:
    """Put ``dump`` in the problem of ``key`` (made when new) and return its id.

    ``final`` marks the full analysis: its title and culprit then name the problem. A dump a
    person placed (split) keeps its problem; only its signature is updated.
    """
    dump.signature, dump.signature_version = key.signature, key.version
    row = session.scalar(select(SignatureRow).where(SignatureRow.hash == key.signature,
                                                    SignatureRow.version == key.version))
    if row is None:
        problem = Problem(signature=key.signature, signature_version=key.version,
                          title=key.title, category=key.category, culprit=key.culprit,
                          module=key.module, created=utcnow())
        session.add(problem)
        session.flush()
        session.add(SignatureRow(hash=key.signature, version=key.version,
                                 problem_id=problem.id))
        problem_id = problem.id
    else:
        problem_id = _resolve(session, row.problem_id)
        problem = session.get(Problem, problem_id)
        if final and problem is not None and problem.signature == key.signature:
            problem.title, problem.category = key.title, key.category
            problem.culprit, problem.module = key.culprit, key.module
    if not dump.pinned:
        dump.problem_id = problem_id
    return dump.problem_id or problem_id


def stale_dumps(session: Session) -> list[tuple[int, str]]:
    """Analysed dumps bucketed by older signature rules than the current ones, with the
    stage that buckets them again (the full analysis; the fast pass for a log alone)."""
    rows = session.execute(select(Dump.id, Dump.kind).where(
        Dump.state == "analysed", Dump.signature_version < current_version()))
    return [(dump_id, "full" if kind == "vmcore" else "fast") for dump_id, kind in rows]


@dataclass
class _Stats:
    count: int = 0
    hosts: set[str] = field(default_factory=set)
    kernels: set[str] = field(default_factory=set)
    builds: set[str] = field(default_factory=set)
    first: dt.datetime | None = None
    last: dt.datetime | None = None
    first_build: str | None = None
    days: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    dump_ids: list[int] = field(default_factory=list)


def _seen():  # noqa: ANN202 (an SQL expression)
    return func.coalesce(Dump.captured, Dump.received)


def _stats(session: Session, problem_ids: list[int] | None) -> tuple[dict[int, _Stats],
                                                                     dict[str, dt.datetime]]:
    """Per-problem numbers from their dumps, and when the fleet first saw each build."""
    rows = session.execute(select(Dump.id, Dump.problem_id, Dump.host, Dump.release,
                                  Dump.build_id, _seen()).order_by(_seen(), Dump.id)).all()
    stats: dict[int, _Stats] = defaultdict(_Stats)
    build_first: dict[str, dt.datetime] = {}
    for dump_id, problem_id, host, release, build_id, seen in rows:
        if build_id and build_id not in build_first:
            build_first[build_id] = seen
        if problem_id is None or (problem_ids is not None and problem_id not in problem_ids):
            continue
        s = stats[problem_id]
        s.count += 1
        s.dump_ids.append(dump_id)
        if host:
            s.hosts.add(host)
        if release:
            s.kernels.add(release)
        if build_id:
            s.builds.add(build_id)
        if s.first is None:
            s.first, s.first_build = seen, build_id
        s.last = seen
        s.days[seen.date().isoformat()] += 1
    return stats, build_first


def _is_new(s: _Stats, build_first: dict[str, dt.datetime], now: dt.datetime) -> bool:
    """First seen in the last day, or first seen on a kernel build the fleet met in the
    last week after running others (the build brought it: a regression to look at)."""
    if s.first is None:
        return False
    if now - s.first <= dt.timedelta(days=NEW_DAYS):
        return True
    born = build_first.get(s.first_build or "")
    if born is None or now - born > dt.timedelta(days=NEW_BUILD_DAYS):
        return False
    return any(t < born for b, t in build_first.items() if b != s.first_build)


def _events(session: Session, problem_id: int) -> list[ProblemEvent]:
    rows = session.scalars(select(ProblemEventRow).where(
        ProblemEventRow.problem_id == problem_id).order_by(ProblemEventRow.id))
    return [ProblemEvent(at=iso(r.at) or "", action=r.action, reason=r.reason, who=r.who,
                         detail=dict(r.detail or {})) for r in rows]


def problem_records(session: Session, problem_ids: list[int] | None = None,
                    *, events: bool = True) -> list[ProblemRecord]:
    """The records of ``problem_ids`` (every problem when None), in id order."""
    query = select(Problem).order_by(Problem.id)
    if problem_ids is not None:
        query = query.where(Problem.id.in_(problem_ids))
    problems = list(session.scalars(query))
    stats, build_first = _stats(session, None if problem_ids is None else set(problem_ids))
    now = utcnow()
    out = []
    for p in problems:
        s = stats.get(p.id, _Stats())
        out.append(ProblemRecord(
            id=p.id, signature=p.signature, signature_version=p.signature_version,
            title=p.title, category=p.category, culprit=p.culprit, module=p.module,
            count=s.count, hosts=len(s.hosts), kernels=sorted(s.kernels),
            first_seen=iso(s.first) or iso(p.created) or "",
            last_seen=iso(s.last) or iso(p.created) or "",
            new=_is_new(s, build_first, now), dump_ids=s.dump_ids,
            per_day=sorted(s.days.items()),
            events=_events(session, p.id) if events else [], merged_into=p.merged_into))
    return out


def _matching_dump_problems(session: Session, where: ProblemFilter) -> set[int] | None:
    """Problems with at least one dump matching the dump-level filters (None: no such
    filter was given)."""
    query = select(Dump.problem_id).where(Dump.problem_id.is_not(None))
    filtered = False
    if where.kernel:
        query, filtered = query.where(Dump.release == where.kernel), True
    if where.host:
        query, filtered = query.where(Dump.host == where.host), True
    labels = dict(where.labels)
    if where.label and "=" in where.label:
        key, _, value = where.label.partition("=")
        labels[key.strip()] = value.strip()
    for key, value in labels.items():
        query = query.where(select(Label.dump_id).where(
            Label.dump_id == Dump.id, Label.key == key, Label.value == value).exists())
        filtered = True
    return set(session.scalars(query.distinct())) if filtered else None


def query_problems(session: Session, where: ProblemFilter | None, limit: int,
                   offset: int) -> list[ProblemRecord]:
    """The problems page: filtered, sorted, one page of them (merged and empty ones out)."""
    where = where or ProblemFilter()
    if where.sort not in _SORTS:
        raise KdxError(f"cannot sort problems by {where.sort!r}: use one of "
                       f"{', '.join(_SORTS)}")
    ids = _matching_dump_problems(session, where)
    records = [r for r in problem_records(session, None if ids is None else sorted(ids),
                                          events=False)
               if r.merged_into is None and r.count > 0]
    if where.module:
        records = [r for r in records if r.module == where.module]
    if where.category:
        records = [r for r in records if r.category == where.category]
    if where.since:
        records = [r for r in records if r.last_seen >= where.since]
    records.sort(key=lambda r: (getattr(r, where.sort), r.id), reverse=where.descending)
    return records[offset:offset + limit]


def _event(session: Session, problem_id: int, action: str, reason: str, who: str,
           detail: dict) -> None:
    session.add(ProblemEventRow(problem_id=problem_id, at=utcnow(), action=action,
                                reason=reason, who=who, detail=detail))


def _live_problem(session: Session, problem_id: int) -> Problem:
    problem = session.get(Problem, problem_id)
    if problem is None:
        raise NotFound(f"there is no problem {problem_id}")
    if problem.merged_into is not None:
        raise KdxError(f"problem {problem_id} was merged into problem {problem.merged_into}")
    return problem


def _need_reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise KdxError("say why (a reason is kept with every merge and split)")
    return reason


def merge(session: Session, into: int, other: int, *, reason: str, who: str) -> None:
    """Fold problem ``other`` into ``into``: its dumps, its signatures, problems merged into
    it. The reason is recorded on both."""
    reason = _need_reason(reason)
    if into == other:
        raise KdxError("a problem cannot be merged into itself")
    target, source = _live_problem(session, into), _live_problem(session, other)
    moved = list(session.scalars(select(Dump.id).where(Dump.problem_id == source.id)))
    session.execute(update(Dump).where(Dump.problem_id == source.id)
                    .values(problem_id=target.id))
    session.execute(update(SignatureRow).where(SignatureRow.problem_id == source.id)
                    .values(problem_id=target.id))
    session.execute(update(Problem).where(Problem.merged_into == source.id)
                    .values(merged_into=target.id))
    source.merged_into = target.id
    detail = {"into": target.id, "other": source.id, "dumps": moved}
    _event(session, target.id, "merge", reason, who, detail)
    _event(session, source.id, "merge", reason, who, detail)


def _described(dump: Dump | None) -> tuple[str, str, str | None, str | None] | None:
    """A split-off problem is named after its own first dump (its full verdict, else its
    fast pass), not after the problem it left."""
    if dump is None:
        return None
    verdict, fast = dump.verdict or {}, dump.fast or {}
    if verdict.get("category"):
        culprit = verdict.get("culprit") or {}
        function, module = culprit.get("function"), culprit.get("module")
        title = (verdict.get("signature") or {}).get("title") or verdict["category"]
        return (title, verdict["category"],
                f"{function} [{module}]" if function and module else function, module)
    if fast.get("category"):
        function, module = fast.get("culprit"), fast.get("module")
        return (fast.get("title") or fast["category"], fast["category"],
                f"{function} [{module}]" if function and module else function, module)
    return None


def split(session: Session, problem_id: int, dump_ids: list[int], *, reason: str,
          who: str) -> int:
    """Move ``dump_ids`` out of ``problem_id`` into a new problem (they stay there); returns
    the new problem's id."""
    reason = _need_reason(reason)
    source = _live_problem(session, problem_id)
    ids = sorted(set(dump_ids))
    members = set(session.scalars(select(Dump.id).where(Dump.problem_id == source.id)))
    if not ids:
        raise KdxError("name the dumps to split off")
    strays = [i for i in ids if i not in members]
    if strays:
        raise KdxError(f"dump(s) {', '.join(map(str, strays))} are not in problem {problem_id}")
    if len(ids) == len(members):
        raise KdxError("splitting off every dump of a problem leaves it empty: rename it "
                       "instead, or keep some dumps")
    first = session.get(Dump, ids[0])
    title, category, culprit, module = _described(first) or (
        source.title, source.category, source.culprit, source.module)
    new = Problem(signature=source.signature, signature_version=source.signature_version,
                  title=title, category=category, culprit=culprit, module=module,
                  created=utcnow())
    session.add(new)
    session.flush()
    new.signature = f"{source.signature[:40]}/split{new.id}"
    session.execute(update(Dump).where(Dump.id.in_(ids))
                    .values(problem_id=new.id, pinned=True))
    detail = {"from": source.id, "to": new.id, "dumps": ids}
    _event(session, source.id, "split", reason, who, detail)
    _event(session, new.id, "split", reason, who, detail)
    return new.id
