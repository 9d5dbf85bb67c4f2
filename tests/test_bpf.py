"""``bpf`` on real lab dumps (6.1 and 6.12) against crash.

The ``bpf`` scenario's guest runs bpfload (src/kdx/lab/guest/programs/bpfload.c) before
the sysrq panic: three maps and three programs, hand-assembled, whose IDs, types, names
and sizes are known. crash runs once per dump on every command below; kdx runs them in
one session. ``LOAD_TIME`` is left out of the comparisons: crash adds the load time to
the boot date of the machine crash runs on, kdx to the dump's.
"""

from __future__ import annotations

import io
import json

import pytest
from crash_script import crash_sections, kdx_sections
from json_schemas import schema_problems

from kdx.model.bpf import map_memlock
from kdx.model.system import system_info
from kdx.session.session import Session

pytestmark = pytest.mark.oracle

#: What bpfload creates, in creation (and so ID) order.
MAPS = {1: ("ARRAY", None, 4, 8, 4, 0), 2: ("HASH", "kdx_hash", 4, 16, 32, 1),
        3: ("PERCPU_ARRAY", "kdx_percpu", 4, 8, 2, 0)}
PROGRAMS = {1: ("SOCKET_FILTER", "kdx_sockfilt", True, (1,)),
            2: ("XDP", "kdx_xdp_pass", False, ()),
            3: ("TRACEPOINT", None, True, (2, 1))}

COMMANDS = ["bpf", "bpf -P", "bpf -M", "bpf -p 2", "bpf -m 2", "bpf -p 1 -m 3",
            "bpf -P -M", "bpf -p 1 -j", "bpf -p 3 -j", "bpf -p 1 -t", "bpf -p 3 -T",
            "bpf -m 1 -s", "bpf -p 2 -s -x", "bpf -P -M -j -T -s"]


def _lines(text: str) -> list[str]:
    return [line for line in text.split("\n") if not line.startswith("     LOAD_TIME: ")]


@pytest.fixture(scope="module", params=["6.1", "6.12"])
def both(request, lab, crash):  # noqa: ANN001, ANN201 (fixtures)
    """(dump, crash's sections, kdx's run) on the bpf dump of one kernel."""
    dump = lab("bpf", kernel=None if request.param == "6.1" else "6.12")
    theirs = crash_sections(crash, dump, COMMANDS)
    return dump, theirs, kdx_sections(dump.target, COMMANDS)


def _c_bytes(line: str) -> bytes:
    """The bytes a gdb string literal line stands for: octal escapes, ``\\``, ``\"``
    and any other character as UTF-8."""
    out, i = bytearray(), 0
    while i < len(line):
        if line[i] == "\\" and line[i + 1:i + 2].isdigit():
            out.append(int(line[i + 1:i + 4], 8))
            i += 4
        elif line[i] == "\\":
            out += line[i + 1].encode()
            i += 2
        else:
            out += line[i].encode()
            i += 1
    return bytes(out)


def _same_line(ours: str, theirs: str) -> bool:
    """Equal, or one of two ways kdx's ``struct`` writes a char array that crash's gdb
    writes otherwise: cut after 256 bytes (``"...``) where gdb counts a run of one byte
    as one element (all 512 bytes of ``ksym.name``), and bytes above 127 in octal where
    gdb in a UTF-8 locale prints a valid sequence as its character (a ``tag``)."""
    if ours == theirs:
        return True
    if ours.endswith('"...,'):
        return theirs.startswith(ours[:-len('"...,')])
    return _c_bytes(ours) == _c_bytes(theirs)


def _same(ours: list[str], theirs: list[str]) -> bool:
    return len(ours) == len(theirs) and all(map(_same_line, ours, theirs))


def test_listing_matches_crash(both) -> None:  # noqa: ANN001
    _dump, theirs, ours = both
    for command in COMMANDS:
        assert _same(_lines(ours.sections[command]), _lines(theirs[command])), command
    assert not ours.failed and not ours.stderr


def test_listing_is_what_bpfload_created(both) -> None:  # noqa: ANN001
    _dump, _theirs, ours = both
    rows = ours.sections["bpf"].split("\n")
    programs = {int(r.split()[0]): r.split()[3:] for r in rows[1:4]}
    assert {i: row[0] for i, row in programs.items()} == {
        i: p[0] for i, p in PROGRAMS.items()}
    assert programs[3][2] == "2,1" and programs[1][2] == "1" and len(programs[2]) == 2
    assert rows[4] == "" and rows[5].split() == ["ID", "BPF_MAP", "BPF_MAP_TYPE", "MAP_FLAGS"]
    maps = {int(r.split()[0]): r.split()[2:] for r in rows[6:]}
    assert maps == {i: [m[0], f"{m[5]:08x}"] for i, m in MAPS.items()}


def test_details_are_what_bpfload_created(both) -> None:  # noqa: ANN001
    _dump, _theirs, ours = both
    text = ours.sections["bpf -P -M"]
    for pid, (_kind, name, gpl, _used) in PROGRAMS.items():
        shown = f'"{name}"' if name else "(unused)"
        assert f"GPL_COMPATIBLE: {'yes' if gpl else 'no'}  NAME: {shown}  UID: 0" in text, pid
    for mid, (_kind, name, key, value, entries, _flags) in MAPS.items():
        assert (f"KEY_SIZE: {key}  VALUE_SIZE: {value}  MAX_ENTRIES: {entries}  "
                "MEMLOCK: 4096") in text, mid
        shown = f'"{name}"' if name else "(unused)"
        assert f"NAME: {shown}  UID: (unused)" in text, mid
    assert "XLATED: 16  JITED:" in ours.sections["bpf -p 2"]  # two instructions
    assert "LOAD_TIME: (unknown)" not in text


def test_bytecode_is_bpfload_s(both) -> None:  # noqa: ANN001
    _dump, _theirs, ours = both
    xlated = ours.sections["bpf -p 1 -t"].split("\n")
    start = xlated.index("") + 1
    assert xlated[start:start + 4] == ["   0: (62) *(u32 *)(r10 -4) = 0", "   1: (bf) r2 = r10",
                                       "   2: (07) r2 += -4", "   3: (18) r1 = map[id:1]"]
    assert xlated[-1].endswith("(95) exit")
    assert "call __htab_map_lookup_elem#" in ours.sections["bpf -p 3 -T"]
    jited = ours.sections["bpf -p 1 -j"].split("\n")
    assert jited[jited.index("") + 1].startswith("   0xffffffff")


def test_options_and_bad_input_are_one_line(both) -> None:  # noqa: ANN001
    dump, _theirs, _ours = both
    bad = ["bpf -p 9", "bpf -m 77", "bpf -j", "bpf -t", "bpf -s", "bpf -x", "bpf -p 1 -x -d",
           "bpf -p zz", "bpf extra"]
    run = kdx_sections(dump.target, bad)
    assert run.failed == bad
    errors = run.stderr.strip().split("\n")
    assert len(errors) == len(bad)
    assert errors[:6] == ["bpf: error: invalid program ID: 9", "bpf: error: invalid map ID: 77",
                          "bpf: error: -j option only applicable with -p or -P",
                          "bpf: error: -t option only applicable with -p or -P",
                          "bpf: error: -s option requires either -p, -P, -m or -M",
                          "bpf: error: -x option requires -s"]


def test_json_matches_the_text(both) -> None:  # noqa: ANN001
    dump, _theirs, _ours = both
    out = io.StringIO()
    assert Session(dump.target, out=out, err=io.StringIO(), json=True).execute(
        "bpf -P -M -t -j")
    assert schema_problems(out.getvalue()) == []
    data = json.loads(out.getvalue())["data"]
    assert [(p["id"], p["type_name"], p["name"] or None, p["gpl_compatible"],
             tuple(p["used_maps"])) for p in data["programs"]] == [
        (i, *p) for i, p in PROGRAMS.items()]
    assert [(m["id"], m["type_name"], m["name"] or None, m["key_size"], m["value_size"],
             m["max_entries"], m["flags"]) for m in data["maps"]] == [
        (i, *m) for i, m in MAPS.items()]
    assert [c["id"] for c in data["code"]] == [1, 2, 3]
    assert all(c["jited"]["instructions"] and c["xlated"] for c in data["code"])
    assert data["programs"][0]["address"].startswith("0xff")
    # loaded in the guest's last seconds before the panic, in boot-time nanoseconds (the
    # boot-time clock runs about a second ahead of the jiffies the uptime counts on 6.1)
    uptime_ns = system_info(dump.target).uptime_seconds * 1e9
    assert all(uptime_ns - 60e9 < p["load_time_ns"] < uptime_ns + 5e9
               for p in data["programs"])


def test_no_bpf_is_crash_s_empty_answer(lab, crash) -> None:  # noqa: ANN001
    for kernel in (None, "6.12"):
        dump = lab("sysrq", kernel=kernel)
        theirs = crash_sections(crash, dump, ["bpf", "bpf -P", "bpf -M"])
        ours = kdx_sections(dump.target, ["bpf", "bpf -P", "bpf -M"])
        assert ours.sections == theirs == {"bpf": "", "bpf -P": "", "bpf -M": ""}
        assert not ours.failed and not ours.stderr
        out = io.StringIO()
        assert Session(dump.target, out=out, err=io.StringIO(), json=True).execute("bpf")
        assert schema_problems(out.getvalue()) == []
        assert json.loads(out.getvalue())["data"] == {
            "programs": [], "maps": [], "code": [], "warnings": []}


def test_unreadable_entries_are_warnings(lab, tmp_path) -> None:  # noqa: ANN001
    """A program and a map whose pages the dump lacks: one warning line each, the rest
    listed, and the lost map missing from USED_MAPS, as crash leaves out a map it
    cannot find."""
    from kdx.api import open_dump
    from kdx.lab.damage import damage

    sound = lab("bpf", kernel="6.12")
    copy = tmp_path / "vmcore"
    what = damage(sound.vmcore, copy, "exclude-bpf", vmlinux=sound.vmlinux)
    assert "prog 2 at" in what and "map 2 at" in what
    result = open_dump(copy, sound.vmlinux, [sound.modules]).run("bpf")
    assert result.ok and "Traceback" not in result.error
    warnings = result.error.strip().split("\n")
    assert len(warnings) == 2
    assert warnings[0].startswith("kdx: warning: map 2 at 0xff")
    assert warnings[1].startswith("kdx: warning: program 2 at 0xff")
    assert all("cannot be read" in w for w in warnings)
    assert [p.id for p in result.record.programs] == [1, 3]
    assert [m.id for m in result.record.maps] == [1, 3]
    assert result.record.programs[1].used_maps == (1,)


def test_memlock_estimate() -> None:
    # crash's rule for kernels without page counts: (key + value) rounded to 8 bytes,
    # per CPU for per-CPU maps, times the entries, rounded up to pages
    assert map_memlock(2, 4, 16, 32, 4096, 2) == 4096
    assert map_memlock(1, 4, 8, 1000, 4096, 2) == 16384
    assert map_memlock(6, 4, 8, 1000, 4096, 2) == 24576
    assert map_memlock(3, 4, 8, 10, 4096, 2) == 4096
    assert map_memlock(6, 4, 8, 10, 4096, 0) == 0
