"""JSON schema 2: ``Hex`` fields as "0x..." strings, one shipped schema per kind, and
control characters kept in JSON but stripped from text.

The schemas are generated from the records; these tests check that the shipped files are
what the generator makes, that every kind the source emits is in the table, that the
renderer follows the ``Hex`` marks, and, on a real dump, that a task address in JSON is
exactly the one crash prints.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from json_schemas import documents, schema_problems, validator

from kdx.model.answers import EvalResult, PageFrame
from kdx.model.records import Hex
from kdx.model.tasks import TaskInfo
from kdx.render.json_out import SCHEMA_VERSION, hex_text, plain, to_json
from kdx.render.json_schema import SCHEMA_DIR, generate, kind_schema
from kdx.render.kinds import KINDS
from kdx.session.session import Session
from kdx.textsafe import decode

SRC = Path(__file__).resolve().parent.parent / "src" / "kdx"


@dataclass(frozen=True)
class _Inner:
    where: Hex
    size: int


@dataclass(frozen=True)
class _Outer:
    task: Hex
    parent: Hex | None
    words: list[Hex]
    registers: dict[str, Hex | None]
    pair: tuple[Hex, int]
    inner: _Inner | None
    count: int


def test_hex_fields_become_exact_strings() -> None:
    record = _Outer(0xffff888003a1c000, None, [0, 2**64 - 1], {"rip": 0xffffffff81000000,
                                                              "rax": None},
                    (0xffffffffc0000000, 7), _Inner(0xffffea0000000040, 4096), 18)
    assert plain(record) == {
        "task": "0xffff888003a1c000", "parent": None,
        "words": ["0x0", "0xffffffffffffffff"],
        "registers": {"rip": "0xffffffff81000000", "rax": None},
        "pair": ["0xffffffffc0000000", 7],
        "inner": {"where": "0xffffea0000000040", "size": 4096}, "count": 18}
    # jq and JavaScript read 18446744072071785024 as ...784000: the string keeps it
    where = json.loads(json.dumps(plain(_Inner(18446744072071785024, 1))))["where"]
    assert where == "0xffffffff9e61aa40" and int(where, 16) == 18446744072071785024
    assert hex_text(-1) == "0xffffffffffffffff"


def test_envelope_and_answer_records() -> None:
    doc = json.loads(to_json("eval", EvalResult(2**64 - 2, -2)))
    assert doc == {"kind": "eval", "schema": 2, "data": {"value": "0xfffffffffffffffe",
                                                          "signed": -2}}
    assert SCHEMA_VERSION == 2
    doc = json.loads(to_json("btop", [PageFrame(0x1000, 1)]))
    assert doc["data"] == [{"address": "0x1000", "pfn": 1}]
    assert schema_problems(to_json("btop", [PageFrame(0x1000, 1)])) == []
    # an integer where the schema wants "0x..." is caught
    bad = json.dumps({"kind": "btop", "schema": 2, "data": [{"address": 4096, "pfn": 1}]})
    assert len(schema_problems(bad)) == 1


def test_dict_answers_follow_their_typed_shape() -> None:
    """vm -P's answer is still a dict; its task's address is written as hex all the
    same."""
    from kdx.model.files import TaskId

    task = TaskId(pid=1, task=2**64 - 64, cpu=0, command="init")
    doc = json.loads(to_json("vm", [{"task": task, "vma": None}]))
    assert doc["data"][0]["task"]["task"] == "0xffffffffffffffc0"
    assert schema_problems(json.dumps(doc)) == []


def test_value_trees_follow_their_schema() -> None:
    """struct's value tree: addresses and pointers as hex, bytes as text, valid."""
    from kdx.model.values import ObjectView, StructView, Value

    name = Value("array", "char [4]", "name", 2**64 - 64, 4, data=b"ab\0\x1b", length=4)
    next_ = Value("pointer", "struct page *", "next", 2**64 - 56, 8, pointer=2**64 - 4096)
    tree = Value("struct", "struct page", None, 2**64 - 64, 12, members=(name, next_))
    view = StructView("struct", "struct page", 12, 2**64 - 64,
                      objects=(ObjectView(2**64 - 64, value=tree),))
    doc = json.loads(to_json("struct", view))
    members = doc["data"]["objects"][0]["value"]["members"]
    assert members[0]["data"] == "ab\u0000\u001b" and members[0]["address"] == \
        "0xffffffffffffffc0"
    assert members[1]["pointer"] == "0xfffffffffffff000"
    assert schema_problems(json.dumps(doc)) == []


def test_shipped_schemas_are_generated() -> None:
    shipped = {p.name: p.read_text() for p in SCHEMA_DIR.glob("*.json")}
    assert shipped == generate(), "run: python -m kdx.render.json_schema"


def test_schema_of_a_record() -> None:
    schema = kind_schema("ps")
    task = schema["$defs"]["TaskInfo"]["properties"]
    assert task["task"] == {"type": "string", "pattern": "^0x[0-9a-f]+$"}
    assert task["pid"] == {"type": "integer"}
    assert task["policy"] == {"anyOf": [{"type": "integer"}, {"type": "null"}]}
    assert schema["properties"]["schema"] == {"const": 2}
    assert set(schema["$defs"]["TaskInfo"]["required"]) == set(task)


def _emitted_kinds() -> set[str]:
    """Kind names written literally at the emit sites of the source."""
    pattern = re.compile(r"""(?:emit|to_json|_finish|_list)\(\s*(?:session,\s*)?"([\w.-]+)\"""")
    found = set()
    for path in SRC.rglob("*.py"):
        found |= set(pattern.findall(path.read_text()))
    return found


def test_every_emitted_kind_has_a_schema() -> None:
    kinds = _emitted_kinds() | {"struct", "union"}  # the data commands' kind is a variable
    assert len(kinds) > 80
    assert kinds - set(KINDS) == set()
    assert {k for k in KINDS if validator(k) is None} == set()


def test_cli_prints_a_schema(kdx) -> None:  # noqa: ANN001 (fixture)
    listed = kdx("--json-schema", check=True).stdout.split()
    assert listed == sorted(KINDS)
    schema = json.loads(kdx("--json-schema", "bt", check=True).stdout)
    assert schema["$id"] == "urn:kdx:schema:2:bt"
    assert schema["$defs"]["Frame"]["properties"]["pc"]["pattern"] == "^0x[0-9a-f]+$"
    missing = kdx("--json-schema", "no-such-kind")
    assert missing.returncode != 0 and "no such JSON kind" in missing.stderr


def test_control_characters_survive_in_json_and_not_in_text() -> None:
    """Models keep a comm as read; JSON escapes it, the text output strips it."""
    comm = "evil\x1b]0;owned\x07\x1b[31mred"
    task = TaskInfo(pid=7, ppid=1, cpu=0, task=0xffff888003a1c000, state="RU",
                    state_value=0, mem_percent=0.0, vsz_kib=0, rss_kib=0, comm=comm,
                    kernel_thread=False, active=False, tgid=7, group_leader=True,
                    parent=0xffff888003a18000, mm=0, policy=None, prio=None,
                    start_time=None, last_run=None, utime=None, stime=None)
    text = to_json("ps", [task])
    assert "\x1b" not in text and "\\u001b" in text
    assert json.loads(text)["data"][0]["comm"] == comm
    assert decode(b"evil\x1b[31m\xff") == "evil\x1b[31m\\xff"  # what models keep
    session = Session.__new__(Session)  # writing needs no dump
    session.out, session.json = io.StringIO(), False
    session.emit("ps", [task], f"   7  {comm}\n")
    assert session.out.getvalue() == "   7  evilred\n"


@pytest.fixture(scope="module")
def null_deref_target(null_deref):  # noqa: ANN001, ANN201 (fixtures)
    return null_deref.target


def test_ps_task_address_is_the_one_crash_prints(null_deref, null_deref_target,
                                                 crash) -> None:  # noqa: ANN001
    out = io.StringIO()
    Session(null_deref_target, json=True, out=out).execute("ps")
    (doc,) = documents(out.getvalue())
    assert schema_problems(out.getvalue()) == []
    ours = {t["pid"]: t["task"] for t in doc["data"] if t["pid"]}
    theirs = {}
    for line in crash(null_deref, ["ps"]).splitlines():
        fields = line.lstrip(">").split()
        if len(fields) > 4 and fields[0].isdigit() and re.fullmatch(r"[0-9a-f]{16}", fields[3]):
            theirs.setdefault(int(fields[0]), "0x" + fields[3])
    pid = null_deref.truth["pid"]
    assert ours[pid] == theirs[pid] and int(ours[pid], 16) > 2**53
    assert {p: ours[p] for p in theirs if p} == {p: a for p, a in theirs.items() if p}
