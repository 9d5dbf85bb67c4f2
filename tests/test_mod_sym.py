"""``mod`` and ``sym`` on real lab dumps, against crash 8.0.6 and the lab's ground truth.

crash runs each dump's commands once (separated by ``eval`` markers); kdx runs the same
commands in one in-process session. Where kdx knows more than crash (it loads module
debug info at start-up, reads module type letters from the kernel's own table, and sees
the init symbols of a module still initialising), the comparison keeps to what both
print and the extra is checked against the truth; docs/crash-differences.md lists why.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from crash_script import crash_parts
from drgn.helpers.linux.panic import panic_task

from kdx.model.modules import module_list
from kdx.session.session import Session
from kdx.target.open import Target, open_dump

#: ``ADDRESS (T) NAME[+OFF] [MODULE] [FILE: LINE]`` as crash's sym prints a symbol.
_SYM = re.compile(r"^(?P<head>[0-9a-f]+ \((?P<type>.)\) (?P<name>\S+?)(?:\+(?P<off>\d+))?"
                  r"(?: \[(?P<module>\w+)\])?)(?: (?P<file>\S+): (?P<line>\d+))?$")
_DUMPS = ["null_deref", "sysrq", "null_deref_612"]


@pytest.fixture(scope="module")
def dumps(request) -> dict:  # noqa: ANN001 (fixture)
    def load(name: str):  # noqa: ANN202
        dump = request.getfixturevalue(name)
        return dump, dump.target
    return {name: load(name) for name in _DUMPS}


@pytest.fixture(scope="module")
def bare(null_deref, tmp_path_factory) -> Target:  # noqa: ANN001 (fixtures)
    """null_deref opened without hello_crash's .ko: the dump is linked from a directory
    with no modules/ beside it (the distro modules still come from the lab cache)."""
    link = tmp_path_factory.mktemp("bare") / "vmcore"
    link.symlink_to(null_deref.vmcore)
    target = open_dump(link, null_deref.vmlinux)
    assert target.missing_modules == ["hello_crash"]
    return target


def run(target: Target, *lines: str, json_mode: bool = False) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    session = Session(target, json=json_mode, out=out, err=err)
    for line in lines:
        session.execute(line)
    return out.getvalue(), err.getvalue()


def crash_sections(crash, dump, commands: list[str]) -> list[list[str]]:  # noqa: ANN001
    """crash's lines for each command; ``(loaded)`` in a command is a note for kdx's
    side (the module's .ko is loaded), not part of what crash runs."""
    parts = crash_parts(crash, dump, [c.replace(" (loaded)", "") for c in commands])
    return [part.split("\n") if part else [] for part in parts]


def panic_pc(target: Target) -> int:
    """Where the panic task stopped: the faulting PC for an oops, or inside the kdump
    entry for a panic() call."""
    return next(iter(target.prog.stack_trace(panic_task(target.prog)))).pc


def culprit_pc(target: Target, function: str) -> int:
    """The PC in the frame of the function the lab's truth blames."""
    return next(f.pc for f in target.prog.stack_trace(panic_task(target.prog))
                if f.name == function)


def init_symbol_lines(target: Target, lines: list[str]) -> list[str]:
    """``lines`` without the symbols in module init regions, which crash 8.0.6 never
    loads (region markers stay)."""
    regions = [r for m in module_list(target.prog) for r in m.regions if r.init and r.size]

    def in_init(line: str) -> bool:
        address = int(line.split()[0], 16)
        return " (" in line and any(r.contains(address) for r in regions)
    return [line for line in lines if not in_init(line)]


def probes(target: Target) -> list[str]:
    """Addresses and names to ask both tools about, read from the dump so that each
    dump gets its own (KASLR moves everything)."""
    prog = target.prog
    schedule = prog.symbol("schedule").address
    return ["schedule", f"{schedule + 16:x}", "jiffies", "init_task", "runqueues",
            "_stext", f"{prog.symbol('_stext').address:x}", "linux_banner",
            f"{prog.symbol('do_one_initcall').address + 89:x}", "loop_queue_rq",
            f"{prog.symbol('loop_queue_rq').address + 5:x}", "__this_module", "nosuchsym",
            "31990", f"{panic_pc(target):x}", "hello_init"]


def commands(dump, target: Target) -> list[str]:  # noqa: ANN001
    """What crash runs; crash loads hello_crash's .ko itself at the end, where it has
    the module (an unknown module name makes crash print its whole usage text)."""
    loading = [f"mod -s hello_crash {dump.modules}/hello_crash.ko", "sym -m hello_crash",
               "sym hello_init (loaded)"]
    return ["mod", "mod -t", *(f"sym {p}" for p in probes(target)), "sym -q loop_queue",
            "sym -m loop", "sym -m dummy",
            *(loading if dump.truth["module"] == "hello_crash" else [])]


def _sym_fields(line: str) -> dict[str, str | None]:
    found = _SYM.match(line)
    assert found, line
    return found.groupdict()


# --- mod ------------------------------------------------------------------------------------


@pytest.mark.oracle
@pytest.mark.parametrize("name", _DUMPS)
def test_mod_matches_crash(name: str, dumps, crash) -> None:  # noqa: ANN001
    """Header, MODULE, NAME, BASE/TEXT_BASE, SIZE and order as crash prints them; the
    OBJECT FILE is the .ko kdx loaded where crash loads none until ``mod -s``."""
    dump, target = dumps[name]
    wanted = commands(dump, target)
    theirs = crash_sections(crash, dump, wanted)
    ours = run(target, "mod")[0].rstrip("\n").split("\n")
    assert ours[0] == theirs[0][0]
    assert len(ours) == len(theirs[0]) > 3
    for mine, crash_line in zip(ours[1:], theirs[0][1:]):
        assert crash_line.endswith("(not loaded)  [CONFIG_KALLSYMS]")
        width = len(crash_line) - len("(not loaded)  [CONFIG_KALLSYMS]")
        assert mine[:width] == crash_line[:width]
        assert Path(mine[width:]).name.split(".ko")[0] == mine.split()[1].replace("-", "_")
    # After crash's own mod -s, the line for hello_crash is kdx's to the character.
    loading = [c for c in wanted if c.startswith("mod -s")]
    if loading:
        assert theirs[wanted.index(loading[0])][1] in ours


@pytest.mark.oracle
@pytest.mark.parametrize("name", _DUMPS)
def test_mod_t_matches_crash(name: str, dumps, crash) -> None:  # noqa: ANN001
    dump, target = dumps[name]
    theirs = crash_sections(crash, dump, commands(dump, target))[1]
    ours = run(target, "mod -t")[0].rstrip("\n").split("\n")
    assert ours == theirs
    if dump.truth["module"]:
        assert ours == ["NAME         TAINTS", f"{dump.truth['module']}  OE"]
    else:
        assert ours == ["no tainted modules"]


def test_mod_s_loads_debug_info_and_sym_gains_the_source_line(bare, null_deref) -> None:  # noqa: ANN001
    """Without hello_crash.ko, sym still names the crashing function (from the module's
    kallsyms in memory); ``mod -s`` with the .ko adds its source line, the lab's truth."""
    truth, pc = null_deref.truth, panic_pc(bare)
    before, _ = run(bare, f"sym {pc:x}", "mod")
    sym_before, *listing = before.rstrip("\n").split("\n")
    fields = _sym_fields(sym_before)
    assert (fields["name"], fields["module"], fields["file"]) == (
        truth["function"], truth["module"], None)
    row = next(line for line in listing if " hello_crash " in line)
    assert row.endswith("(not loaded)  [CONFIG_KALLSYMS]")

    ko = null_deref.modules / "hello_crash.ko"
    out, err = run(bare, f"mod -s hello_crash {ko}", f"sym {pc:x}", "sym hello_init")
    header, loaded, sym_after, sym_name = out.rstrip("\n").split("\n")
    assert err == ""
    assert header.split() == ["MODULE", "NAME", "BASE", "SIZE", "OBJECT", "FILE"]
    assert loaded.split()[1:] == row.split()[1:4] + [str(ko)]
    after = _sym_fields(sym_after)
    assert after["head"] == fields["head"]
    assert Path(after["file"]).name == truth["source_file"]
    assert int(after["line"]) == truth["source_line"]
    assert _sym_fields(sym_name)["name"] == "hello_init"
    assert _sym_fields(sym_name)["off"] is None


def test_mod_errors_are_one_line(bare, null_deref) -> None:  # noqa: ANN001
    out, err = run(bare, "mod -s nosuch", "mod -s loop /nonexistent.ko", "mod -d loop",
                   f"mod -s dummy {null_deref.modules / 'hello_crash.ko'}")
    assert out == ""
    lines = err.rstrip("\n").split("\n")
    assert len(lines) == 4 and all(line.startswith("mod: error: ") for line in lines)
    assert "nosuch" in lines[0] and "cannot unload" in lines[2]


def test_mod_S_loads_from_a_directory(null_deref, tmp_path) -> None:  # noqa: ANN001
    link = tmp_path / "vmcore"
    link.symlink_to(null_deref.vmcore)
    target = open_dump(link, null_deref.vmlinux)
    out, err = run(target, f"mod -S {null_deref.modules}")
    assert err == ""
    rows = out.rstrip("\n").split("\n")[1:]
    assert any(r.split()[1] == "hello_crash" and r.endswith("hello_crash.ko") for r in rows)
    assert target.prog.module("hello_crash").wants_debug_file() is False


def test_mod_json(dumps) -> None:  # noqa: ANN001
    dump, target = dumps["null_deref_612"]
    doc = json.loads(run(target, "mod", json_mode=True)[0])
    assert doc["kind"] == "mod"
    mods = {m["name"]: m for m in doc["data"]}
    hello = mods["hello_crash"]
    assert hello["state"] == "coming" and hello["taints"] == "OE"
    assert hello["base"] == "0x0" and hello["init_size"] > 0  # all its text is init text
    assert {r["kind"] for r in hello["regions"]} >= {"TEXT", "INIT_TEXT"}
    assert all(m["state"] == "live" for n, m in mods.items() if n != "hello_crash")


# --- sym ------------------------------------------------------------------------------------


@pytest.mark.oracle
@pytest.mark.parametrize("name", _DUMPS)
def test_sym_matches_crash(name: str, dumps, crash) -> None:  # noqa: ANN001
    """Every probe: same address, type, name, offset and module. crash's file names
    carry gdb's compilation directory (kdx's are the line table's), and crash prints
    no line for modules until ``mod -s``; the panic PC and module init symbols are
    compared with the truth instead (crash 8.0.6 does not see init symbols)."""
    dump, target = dumps[name]
    wanted = commands(dump, target)
    theirs = crash_sections(crash, dump, wanted)
    pc = f"sym {panic_pc(target):x}"
    compared = 0
    for command, crash_lines in zip(wanted, theirs):
        if not command.startswith("sym ") or command.startswith("sym -") or \
                (command == pc and dump.truth["module"]):
            continue
        ours = run(target, command.replace(" (loaded)", ""))[0].rstrip("\n").split("\n")
        if crash_lines[0].startswith(("symbol not found", "sym: invalid")) or \
                "(m) _MODULE_" in crash_lines[0]:
            if "hello_init" in "".join(ours) or "init_module" in "".join(ours):
                continue  # crash misses module init symbols
            assert ours == crash_lines
            compared += 1
            continue
        if len(ours) == len(crash_lines) + 1 and "[hello_crash]" not in "".join(crash_lines):
            # crash 8.0.6 finds no symbol by name in a module without core text (6.4+:
            # all of hello_crash's code is init code, so its TEXT_BASE is 0)
            ours = [line for line in ours if not line.endswith("[hello_crash]")]
        assert len(ours) == len(crash_lines)
        for mine, crash_line in zip(ours, crash_lines):
            a, b = _sym_fields(mine), _sym_fields(crash_line)
            if b["type"] == "?":  # crash's letter for module data without debug info
                assert a["head"].replace(f"({a['type']})", "(?)", 1) == b["head"]
            else:
                assert a["head"] == b["head"]
            if b["file"]:
                assert b["file"].endswith(a["file"]) and a["line"] == b["line"]
            elif not a["module"]:
                assert a["file"] is None
            compared += 1
    assert compared >= 12


@pytest.mark.oracle
@pytest.mark.parametrize("name", ["null_deref", "null_deref_612"])
def test_sym_hello_init_where_crash_finds_none(name: str, dumps, crash) -> None:  # noqa: ANN001
    """crash 8.0.6 loads no init symbols: hello_init is "not found", before and after
    its own ``mod -s``. kdx finds it in the module's kallsyms, with its source line."""
    dump, target = dumps[name]
    wanted = commands(dump, target)
    theirs = crash_sections(crash, dump, wanted)
    for command in ("sym hello_init", "sym hello_init (loaded)"):
        assert theirs[wanted.index(command)][0] == "symbol not found: hello_init"
    fields = _sym_fields(run(target, "sym hello_init")[0].strip())
    assert (fields["type"], fields["name"], fields["module"]) == ("t", "hello_init",
                                                                 "hello_crash")
    assert int(fields["head"].split()[0], 16) == target.prog.symbol("hello_init").address
    assert Path(fields["file"]).name == dump.truth["source_file"]
    assert abs(int(fields["line"]) - dump.truth["source_line"]) < 6  # the function's start


@pytest.mark.parametrize("name", _DUMPS)
def test_sym_of_the_panic_pc_is_the_truth(name: str, dumps) -> None:  # noqa: ANN001
    dump, target = dumps[name]
    truth = dump.truth
    pc = culprit_pc(target, truth["function"])
    fields = _sym_fields(run(target, f"sym {pc:x}")[0].strip())
    assert fields["name"] == truth["function"]
    assert fields["module"] == truth["module"]
    if truth["source_line"]:
        assert Path(fields["file"]).name == truth["source_file"]
        assert int(fields["line"]) == truth["source_line"]


@pytest.mark.oracle
@pytest.mark.parametrize("name", _DUMPS)
def test_sym_m_matches_crash(name: str, dumps, crash) -> None:  # noqa: ANN001
    """Region markers and symbols in crash's order. crash's type for a module data
    symbol without debug info is '?', kdx's the kernel's own letter; hello_crash's init
    symbols are kdx's only."""
    dump, target = dumps[name]
    wanted = commands(dump, target)
    theirs = crash_sections(crash, dump, wanted)
    for module in ("loop", "dummy", "hello_crash"):
        if f"sym -m {module}" not in wanted:
            continue
        crash_lines = theirs[wanted.index(f"sym -m {module}")]
        ours = run(target, f"sym -m {module}")[0].rstrip("\n").split("\n")
        ours = init_symbol_lines(target, ours)
        if module == "hello_crash":
            # crash listed it after its mod -s, from the .ko: symbols at one address
            # come in name order there, in kallsyms order in kdx
            ours, crash_lines = sorted(ours), sorted(crash_lines)
        assert len(ours) == len(crash_lines) > 2
        for mine, crash_line in zip(ours, crash_lines):
            if "(?)" in crash_line:  # a module data symbol, crash without debug info
                mine = re.sub(r"\((.)\)", "(?)", mine)
            assert mine == crash_line


@pytest.mark.oracle
@pytest.mark.parametrize("name", ["null_deref", "null_deref_612"])
def test_sym_l_matches_crash(name: str, dumps, crash) -> None:  # noqa: ANN001
    """All of crash's symbol list: the kernel's ~120,000 to the character; module
    symbols with crash's '?' letters matched to any letter but t/T."""
    dump, target = dumps[name]
    theirs = crash(dump, ["sym -l"]).rstrip("\n").split("\n")
    theirs = [line.rstrip() for line in theirs]
    ours = init_symbol_lines(target, run(target, "sym -l")[0].rstrip("\n").split("\n"))
    assert len(ours) == len(theirs) > 100_000

    def letters(line: str) -> str:
        return re.sub(r"\(([^tT])\)", "(?)", line)
    first_module = next(i for i, line in enumerate(theirs) if "MODULE" in line)
    assert ours[:first_module] == theirs[:first_module]
    assert [letters(x) for x in ours[first_module:]] == \
        [letters(x) for x in theirs[first_module:]]


def test_sym_q_and_not_found(dumps) -> None:  # noqa: ANN001
    _, target = dumps["null_deref"]
    out, _ = run(target, "sym -q loop_queue_r", "sym hello_nonesuch", "sym ffff888000000000")
    assert out.rstrip("\n").split("\n") == [
        f"{target.prog.symbol('loop_queue_rq').address:x} (t) loop_queue_rq [loop]",
        "symbol not found: hello_nonesuch", "possible alternatives:", "  (none found)",
        "sym: invalid address: ffff888000000000"]


def test_sym_json(dumps) -> None:  # noqa: ANN001
    dump, target = dumps["null_deref"]
    out, _ = run(target, "sym hello_init nosuch", json_mode=True)
    doc = json.loads(out)
    assert doc["kind"] == "sym"
    hello, missing = doc["data"]
    hit = hello["hits"][0]
    assert (hit["name"], hit["module"], hit["offset"], hit["type"]) == (
        "hello_init", "hello_crash", 0, "t")
    assert hit["address"] == hex(target.prog.symbol("hello_init").address)
    assert missing["hits"] == [] and missing["alternatives"] == []
    listing = json.loads(run(target, "sym -m hello_crash", json_mode=True)[0])
    markers = [e["marker"] for e in listing["data"] if e["marker"]]
    assert markers == ["MODULE START", "MODULE END", "MODULE INIT START", "MODULE INIT END"]


# --- mod -g (section symbols), -r, -o, -R ------------------------------------------------------


def _section_commands(dump) -> list[str]:  # noqa: ANN001
    return [f"mod -s hello_crash {dump.modules}/hello_crash.ko -g", "sym -m hello_crash",
            "mod -o", "mod -r", "mod -R"]


def _sections(text: str, count: int) -> list[list[str]]:
    parts: dict[int, list[str]] = {}
    current = None
    for line in text.splitlines():
        found = re.fullmatch(r"==mod-section (\d+)==", line)
        if found:
            current = int(found.group(1))
            parts[current] = []
        elif current is not None and line.strip():
            parts[current].append(line.rstrip())
    return [parts.get(i, []) for i in range(count)]


def _region_of(lines: list[str], index: int) -> str:
    """The region marker (``MODULE INIT START``...) a listing line falls under."""
    for line in reversed(lines[:index + 1]):
        if "MODULE" in line and "START:" in line:
            return line.split(" ", 1)[1].split(":")[0]
    return ""


@pytest.mark.oracle
@pytest.mark.parametrize("kernel", ["6.1", "6.12"])
def test_mod_g_section_symbols_match_crash(kernel, lab, crash) -> None:  # noqa: ANN001
    """``mod -s MOD FILE -g`` then ``sym -m MOD``: crash's ``[SECTION]: section start``
    and ``section end`` lines at the same addresses and in the same places. kdx also
    knows the init region's symbols (crash 8.0.6 does not on 6.1), so it may list more
    there."""
    dump = lab("null-deref-module", kernel=None if kernel == "6.1" else kernel)
    wanted = _section_commands(dump)
    script = [line for i, c in enumerate(wanted) for line in (f"echo ==mod-section {i}==", c)]
    theirs = _sections(crash(dump, script), len(wanted))
    target = dump.target
    out = io.StringIO()
    session = Session(target, out=out, err=io.StringIO())
    ours = []
    for command in wanted:
        start = out.tell()
        assert session.execute(command), command
        ours.append([line.rstrip() for line in out.getvalue()[start:].splitlines()
                     if line.strip()])
    # the loaded module's row (crash 8.0.6 lists every module after it on 6.12)
    assert [r for r in ours[0] if " hello_crash " in r] == \
        [r for r in theirs[0] if " hello_crash " in r]
    listing, oracle = ours[1], theirs[1]
    assert any(line.endswith("]: section start") for line in oracle)
    for line in oracle:  # crash's lines, in crash's order, are all in kdx's
        assert line in listing, f"{line!r} missing from:\n" + "\n".join(listing)
    def skeleton(lines: list[str]) -> list[str]:
        # sections and region markers in order (kdx orders aliases at one address by
        # kallsyms, which may differ from crash's)
        return [line for line in lines if "]: section " in line or "MODULE" in line]

    mine = skeleton(listing)
    assert [line for line in mine if line in oracle] == skeleton(oracle)
    for i, line in enumerate(listing):
        if line not in oracle:
            assert "INIT" in _region_of(listing, i), line
    starts = [line for line in listing if line.endswith("section start")]
    ends = [line for line in listing if line.endswith("section end")]
    assert len(starts) == len(ends) >= 2
    assert ours[2] == theirs[2] == []  # mod -o: nothing to say
    # mod -r and -R list the modules (kdx keeps the debug info it loaded: OBJECT FILE)
    for mine, oracle_rows in ((ours[3], theirs[3]), (ours[4], theirs[4])):
        assert sorted(r.split()[:4] for r in mine) == sorted(r.split()[:4] for r in oracle_rows)
    # -R forgets -g's section symbols, as crash forgets them
    start = out.tell()
    assert session.execute("sym -m hello_crash")
    assert "section start" not in out.getvalue()[start:]
