"""Damaged and hostile dumps: kdx never crashes, hangs, lies or writes next to the dump.

Each variant is a copy of a real lab dump damaged by ``kdx.lab.damage`` (truncated, bits
flipped in its headers, bitmaps or page descriptors, VMCOREINFO broken, pages zeroed or
excluded, kernel lists corrupted in place). One child process per variant opens it once
and runs the crash commands and ``analyze`` under a capped address space and a time
limit, with the dump's directory made read-only (and its listing compared after, since
root ignores the mode) and a HOME under which no cache can be made. The default
sweep has ~60 variants; ``KDX_DAMAGE_VARIANTS=N`` runs N seeds of each kind instead of
the default few.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import struct
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest

from kdx.lab.damage import KINDS, damage
from kdx.model.log import DAMAGED

COMMANDS = ["sys", "ps", "bt -a", "log", "mod", "kmem -i", "files", "foreach bt"]
CHILD = Path(__file__).with_name("damage_child.py")
MEMORY = 6 << 30  # address space for the child: a vmlinux's debug info plus the dump
TIME_LIMIT = 90  # seconds; a sound dump takes about one

#: base dump -> (lab arguments, seeds per kind by default)
BASES = {
    "6.1-elf": dict(scenario="sysrq", fmt="elf"),
    "6.1-kdump": dict(scenario="sysrq"),
    "6.1-flattened": dict(scenario="sysrq", fmt="flattened"),
    "6.12-kdump": dict(scenario="null-deref-module", kernel="6.12"),
}
FORMAT = {"6.1-elf": "elf", "6.1-kdump": "kdump", "6.1-flattened": "flattened",
          "6.12-kdump": "kdump"}
#: seeds per kind in the default sweep (kinds with more randomness get more)
DEFAULT_SEEDS = {"truncate": 2, "header-flip": 3, "bitmap-flip": 3, "desc-flip": 2,
                 "vmcoreinfo-corrupt": 2, "zero-pages": 2, "exclude-pages": 2,
                 "log-broken": 2, "pagetable-zero": 2}


def _variants() -> list[tuple[str, str, int]]:
    many = int(os.environ.get("KDX_DAMAGE_VARIANTS", "0"))
    out = []
    for base, fmt in FORMAT.items():
        for kind in KINDS.values():
            if fmt not in kind.formats:
                continue
            seeds = many or DEFAULT_SEEDS.get(kind.name, 1)
            if fmt == "flattened" and not many:
                seeds = min(seeds, 2)
            out += [(base, kind.name, seed) for seed in range(seeds)]
    return out


VARIANTS = _variants()


@pytest.fixture(scope="module")
def bases(lab):  # noqa: ANN001, ANN201 (fixtures)
    return {name: lab(**spec) for name, spec in BASES.items()}


@pytest.fixture
def readonly_home(tmp_path):  # noqa: ANN001, ANN201 (fixtures)
    """A HOME no cache can be made under (a file: even root cannot write below it)."""
    home = tmp_path / "home"
    home.write_text("not a directory\n")
    return home


def run_damaged(base, kind: str, seed: int, tmp_path: Path, home: Path,  # noqa: ANN001
                measure: Callable[[Path], object] | None = None) -> tuple[dict, str]:
    """Damage a copy of ``base``, run the child on it; (its summary, what was damaged).
    ``measure`` is called with the damaged copy before it is deleted."""
    folder = tmp_path / "dump"
    folder.mkdir()
    copy = folder / "vmcore"
    what = damage(base.vmcore, copy, kind, seed, base.vmlinux)
    before = sorted(p.name for p in folder.iterdir())
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
    env = dict(os.environ, HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"),
               XDG_STATE_HOME=str(home / ".state"), COLUMNS="200", NO_COLOR="1")
    try:
        proc = subprocess.run(
            [sys.executable, str(CHILD), str(copy), str(base.vmlinux), str(base.modules),
             str(MEMORY), *COMMANDS], capture_output=True, text=True, env=env,
            timeout=TIME_LIMIT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{kind} seed {seed} ({what}): no answer in {TIME_LIMIT} s (a hang?)")
    finally:
        folder.chmod(0o755)
    after = sorted(p.name for p in folder.iterdir())
    if measure is not None:
        measure(copy)
    copy.unlink()
    assert after == before, f"{kind} ({what}): kdx wrote next to the dump: {after}"
    last = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    assert not last.startswith("TRACEBACK"), f"{kind} seed {seed} ({what}): {last}"
    assert proc.returncode in (0, 1), (f"{kind} seed {seed} ({what}): exit "
                                       f"{proc.returncode}: {proc.stderr[-2000:]}")
    return json.loads(last), what


def check_summary(summary: dict, what: str) -> None:
    """The guarantees: one clear error line, or commands that print or fail cleanly."""
    if summary["open_error"] is not None:
        assert "\n" not in summary["open_error"] and summary["open_error"], what
        assert "unexpected" not in summary["open_error"], what
        return
    for result in summary["commands"]:
        name = result["command"].split()[0]
        assert "unexpected" not in result["error"], f"{what}: {result['command']}: " \
            f"{result['error'][:500]}"
        if not result["ok"]:
            errors = [ln for ln in result["error"].splitlines() if ": error:" in ln]
            assert len(errors) == 1 and errors[0].startswith(f"{name}: error:"), \
                f"{what}: {result['command']}: {result['error'][:500]}"
        for text in (result["text"], result["error"]):
            assert "\x1b" not in text and "\x07" not in text, \
                f"{what}: {result['command']} printed a raw control character"
    analysis = summary["analyze"]
    assert analysis["text"] or analysis["error"], what
    assert "unexpected" not in (analysis["error"] or ""), what


@pytest.mark.parametrize(("base", "kind", "seed"), VARIANTS,
                         ids=[f"{b}-{k}-{s}" for b, k, s in VARIANTS])
def test_damaged_variant(bases, base, kind, seed, tmp_path, readonly_home):  # noqa: ANN001
    expected: list[str | None] = []
    measure = None
    if kind in ("truncate", "desc-flip"):
        def measure(copy: Path) -> None:
            expected.append(lost_line(bases[base], FORMAT[base], copy, copy))
    summary, what = run_damaged(bases[base], kind, seed, tmp_path, readonly_home, measure)
    check_summary(summary, what)
    if expected:
        check_partial(summary, what, expected[0])


# -- what a truncated file or damaged page descriptors cost, computed from the file ----------


def kdump_descriptors(path: Path) -> tuple[int, int, list[tuple[int, int]]]:
    """(page size, offset of the descriptors, (data offset, size) of every descriptor the
    file holds) of a kdump file, read the plain way for checking kdx's numbers."""
    with open(path, "rb") as f:
        f.seek(428)
        block, sub_blocks, bitmap_blocks = struct.unpack("<iiI", f.read(12))
        half = bitmap_blocks * block // 2
        f.seek((1 + sub_blocks) * block + half)
        pages = int.from_bytes(f.read(half), "little").bit_count()
        descs = (1 + sub_blocks) * block + 2 * half
        f.seek(descs)
        table = f.read(pages * 24)
    held = [struct.unpack_from("<qi", table, i) for i in range(0, len(table) - 23, 24)]
    return block, descs, held + [(-1, 0)] * (pages - len(held))


def kdump_lost(path: Path, cut: int | None = None) -> tuple[int, int]:
    """(pages whose data is past byte ``cut`` or whose descriptors are impossible, pages
    saved) of the (sound or damaged, whole) kdump file ``path``."""
    block, descs, table = kdump_descriptors(path)
    size = path.stat().st_size if cut is None else cut
    lost = sum(1 for i, (offset, length) in enumerate(table)
               if descs + 24 * (i + 1) > size or offset < descs or not 0 < length <= block
               or offset + length > size)
    return lost, len(table)


def lost_line(base, fmt: str, damaged: Path, shown: Path) -> str | None:  # noqa: ANN001
    """The warning kdx must give first for ``damaged`` (a copy of ``base`` named ``shown``
    when opened), as a regular expression; None when it must give none."""
    cut = damaged.stat().st_size
    whole = base.vmcore.stat().st_size
    name = re.escape(str(shown))
    if fmt == "elf":
        from kdx.lab.damage import _elf_loads

        lost = sum((off + size - max(off, cut) + 4095) // 4096
                   for off, _pa, size in _elf_loads(base.vmcore) if off + size > cut)
        return (rf"{name} is truncated at byte {cut:,} of {whole:,}: {lost:,} pages of "
                "memory are missing") if cut < whole else None
    if fmt == "flattened":
        pages = kdump_lost(base.target.read_path)[1]
        return (rf"{name} is truncated at byte {cut:,} of its flattened stream \(its end "
                rf"marker is missing\): [1-9][\d,]* of {pages:,} saved pages are missing"
                r"( and [\d,]+ more have damaged page descriptors)?")
    if cut < whole:
        lost, pages = kdump_lost(base.vmcore, cut)
        _block, descs, table = kdump_descriptors(base.vmcore)
        of = f"{whole:,}"
        if descs + 24 * pages > cut:  # cut inside the table: the real end is unknown,
            # its lower bound is the furthest end the descriptors left show
            held = (cut - descs) // 24
            of = "at least " + f"{max([descs + 24 * pages] + [o + n for o, n in table[:held]]):,}"
        return (rf"{name} is truncated at byte {cut:,} of {of}: {lost:,} of "
                f"{pages:,} saved pages are missing")
    bad, pages = kdump_lost(damaged)
    return (rf"{name} has {bad:,} damaged page descriptors of {pages:,} \(the first is "
            r"number [\d,]+\): those pages are missing") if bad else None


def check_partial(summary: dict, what: str, expected: str | None) -> None:
    """A dump that lost pages opens, says so first in one line, and sys and log print."""
    assert summary["open_error"] is None, f"{what}: {summary['open_error']}"
    said = [w for w in summary["warnings"] if "truncated" in w or "page descriptors" in w]
    if expected is None:
        assert said == [], what
        return
    assert len(said) == 1 and summary["warnings"][0] == said[0], (what, said)
    assert re.fullmatch(expected, said[0]), (what, said[0], expected)
    result = {r["command"]: r for r in summary["commands"]}
    assert result["sys"]["ok"] and "RELEASE:" in result["sys"]["text"], what
    assert result["log"]["ok"], (what, result["log"]["error"])


# -- regression tests: each failure the sweep or the field found, on its own ------------


@pytest.fixture(scope="module")
def damaged(bases, tmp_path_factory):  # noqa: ANN001, ANN201 (fixtures)
    """``damaged(base, kind, seed)``: a damaged copy, made once per module."""
    folder = tmp_path_factory.mktemp("damaged")
    made: dict[tuple[str, str, int], Path] = {}

    def make(base: str, kind: str, seed: int = 0) -> Path:
        key = (base, kind, seed)
        if key not in made:
            out = folder / f"{base}-{kind}-{seed}.vmcore"
            damage(bases[base].vmcore, out, kind, seed, bases[base].vmlinux)
            made[key] = out
        return made[key]

    return make


def _open(bases, base: str, path: Path):  # noqa: ANN001, ANN202
    from kdx.api import open_dump

    return open_dump(path, bases[base].vmlinux, [bases[base].modules])


def _names(dump) -> list[str]:  # noqa: ANN001
    return sorted(m.name for m in dump.modules())


def test_corrupt_build_id_is_ignored(bases, damaged, tmp_path):  # noqa: ANN001
    """Was: exit 70, 'unexpected BadDataError: couldn't parse BUILD-ID'."""
    for base in ("6.1-elf", "6.1-kdump"):
        src = bases[base].vmcore
        data = bytearray(src.read_bytes()[:1 << 20])
        at = data.find(b"BUILD-ID=") + 9
        copy = tmp_path / f"{base}.vmcore"
        shutil.copyfile(src, copy)
        with open(copy, "r+b") as f:
            f.seek(at + 3)
            f.write(b"z")
        dump = _open(bases, base, copy)
        assert any("damaged field(s) BUILD-ID: ignored" in w for w in dump.warnings)
        assert dump.target.debug_source == "dwarf"  # the vmlinux still matched, by release
        assert dump.sys().panic == bases[base].truth["panic_message"]
        assert "BUILD-ID" not in dump.target.vmcoreinfo


def test_module_list_loop_is_bounded(bases, damaged):  # noqa: ANN001
    """Was: a hang at open (drgn's kallsyms helper walked the loop forever)."""
    sound = bases["6.1-elf"].opened
    dump = _open(bases, "6.1-elf", damaged("6.1-elf", "module-loop"))
    assert any("module list loops" in w for w in dump.warnings)
    assert _names(dump) == _names(sound)
    result = dump.run("mod")
    assert "the module list at 0x" in result.error and "loops" in result.error
    assert len(result.text.splitlines()) == len(sound.modules()) + 1


def test_excluded_task_structs(bases, damaged):  # noqa: ANN001
    """A makedumpfile that does not know the kernel excludes live task_structs: ps lists
    the readable tasks and says in one line how many it lost and why; sys counts all."""
    sound = bases["6.1-kdump"].opened
    dump = _open(bases, "6.1-kdump", damaged("6.1-kdump", "exclude-tasks"))
    result = dump.run("ps")
    assert result.ok
    lost = [ln for ln in result.error.splitlines() if "could not be read" in ln]
    assert len(lost) == 1 and lost[0].endswith("(page excluded from the dump)")
    count = int(lost[0].split("warning: ")[1].split()[0])
    assert count > 0
    assert len(result.record) + count == len(sound.tasks())
    assert dump.sys().tasks == sound.sys().tasks
    assert dump.run("foreach bt").ok


def test_analyze_with_the_log_ring_excluded(bases, damaged):  # noqa: ANN001
    """Was: 'unexpected FaultError' from analyze when log pages were excluded. With no log
    text there is no report line to match; the panic task still comes from the CPUs."""
    dump = _open(bases, "6.1-kdump", damaged("6.1-kdump", "exclude-log", 0))
    verdict = dump.analyze()
    assert verdict.category == "unknown"
    assert verdict.context.pid == bases["6.1-kdump"].truth["pid"]
    assert verdict.warnings
    # the session's sys says which field it could not read, rather than print it empty
    sys = dump.run("sys")
    assert sys.ok and "TASKS: " in sys.text
    assert "kdx: warning: sys: cannot read the whole kernel log: " in sys.error


def test_page_descriptors_outside_the_file(bases, damaged):  # noqa: ANN001
    """Was: the process died of SIGBUS inside libkdumpfile; then: the dump was refused.
    Now the other pages are read and the damaged ones are missing, said in one line."""
    copy = damaged("6.1-kdump", "desc-flip", 2)
    bad, pages = kdump_lost(copy)
    assert 0 < bad <= 16
    dump = _open(bases, "6.1-kdump", copy)
    assert re.fullmatch(rf"\S+ has {bad} damaged page descriptors of {pages:,} \(the first "
                        r"is number [\d,]+\): those pages are missing", dump.warnings[0])
    truth = bases["6.1-kdump"].truth
    assert dump.sys().panic == truth["panic_message"]
    for command in ("sys", "ps", "log"):
        result = dump.run(command)
        assert result.ok and result.text, command
    assert dump.log().records == bases["6.1-kdump"].opened.log().records


def test_truncated_kdump_reads_what_is_there(bases, tmp_path):  # noqa: ANN001
    """A kdump file cut at 95%: one warning line with the cut and the pages lost; the log
    reads whole (it lies below the cut); ps lists the readable tasks and counts the rest."""
    from kdx.lab.damage import damage as make

    base = bases["6.1-kdump"]
    cut = tmp_path / "cut.vmcore"
    make(base.vmcore, cut, "truncate", at=0.95)
    size = cut.stat().st_size
    lost, pages = kdump_lost(base.vmcore, size)
    dump = _open(bases, "6.1-kdump", cut)
    assert dump.warnings[0] == (f"{cut} is truncated at byte {size:,} of "
                                f"{base.vmcore.stat().st_size:,}: {lost:,} of {pages:,} "
                                "saved pages are missing")
    assert 0 < lost < pages
    results = {command: dump.run(command) for command in ("sys", "ps", "log")}
    assert all(result.ok and result.text for result in results.values())
    assert dump.log().records == base.opened.log().records
    ps = results["ps"]
    counted = [ln for ln in ps.error.splitlines() if "could not be read" in ln]
    assert len(counted) == 1 and counted[0].endswith("(page missing from the dump)")
    count = int(counted[0].split("warning: ")[1].split()[0])
    everyone = len(base.opened.tasks())
    if "the PID table cannot be read" in ps.error:
        # the cut took the PID table too (where it lies differs from build to build):
        # tasks past a lost task-list link are not even found, and ps says where it ended
        assert "the task list ends after" in ps.error
        assert ps.record and len(ps.record) + count < everyone
    else:
        assert ps.record and len(ps.record) + count == everyone


def test_kdump_cut_inside_its_descriptor_table(bases, tmp_path):  # noqa: ANN001
    """Cut inside the page descriptor table, every saved page is lost to the cut (their
    data follows the table), none to damage; where the file ended is unknown (the last
    descriptor, which says so, is gone), so the warning gives the furthest end the
    descriptors left show, as a lower bound."""
    from kdx.lab.damage import damage as make

    base = bases["6.1-kdump"]
    _block, descs, table = kdump_descriptors(base.vmcore)
    at = descs + 24 * (len(table) // 2) + 7
    cut = tmp_path / "cut.vmcore"
    make(base.vmcore, cut, "truncate", at=at)
    furthest = max(o + n for o, n in table[:len(table) // 2])
    dump = _open(bases, "6.1-kdump", cut)
    assert dump.warnings[0] == (f"{cut} is truncated at byte {at:,} of at least "
                                f"{furthest:,}: {len(table):,} of {len(table):,} saved "
                                "pages are missing")
    assert dump.sys().release == base.truth["release"]


def test_truncated_elf_and_flattened(bases, tmp_path):  # noqa: ANN001
    """An ELF core cut in half keeps its log (low memory comes first); a flattened stream
    cut short is reassembled up to the cut, and again from the cache the same way."""
    from kdx.lab.damage import damage as make

    elf = bases["6.1-elf"]
    cut = tmp_path / "cut.elf"
    make(elf.vmcore, cut, "truncate", at=0.5)
    expected = lost_line(elf, "elf", cut, cut)
    dump = _open(bases, "6.1-elf", cut)
    assert re.fullmatch(expected, dump.warnings[0]), (dump.warnings[0], expected)
    assert dump.run("sys").ok and dump.run("ps").ok
    assert dump.log().records == elf.opened.log().records
    flat = bases["6.1-flattened"]
    short = tmp_path / "cut.flat"
    make(flat.vmcore, short, "truncate", at=0.95)
    first = _open(bases, "6.1-flattened", short)
    assert re.fullmatch(lost_line(flat, "flattened", short, short), first.warnings[0])
    again = _open(bases, "6.1-flattened", short)
    assert again.target.read_path == first.target.read_path
    assert again.warnings[0] == first.warnings[0]
    assert first.run("log").ok and first.run("sys").ok


def test_cut_inside_the_headers_is_one_error_line(bases, tmp_path):  # noqa: ANN001
    from kdx.errors import KdxError

    for base, size, message in (
            ("6.1-kdump", 20000, r"is truncated: it has 20,000 bytes but its headers "
                                 r"describe at least [\d,]+ before the first page \(cut "
                                 r"inside its headers\)$"),
            ("6.1-elf", 3000, r"is truncated: it has 3,000 bytes but its headers describe "
                              r"[\d,]+ \(cut before its first page\)$")):
        head = tmp_path / f"{base}.head"
        with open(bases[base].vmcore, "rb") as f:
            head.write_bytes(f.read(size))
        with pytest.raises(KdxError, match=message) as err:
            _open(bases, base, head)
        assert "\n" not in str(err.value)


def test_page_reader_reads_what_libkdumpfile_reads(bases, lab):  # noqa: ANN001
    """kdx's own reader of damaged kdump files, on sound ones (zlib, LZO, zstd): every
    saved page has the bytes libkdumpfile gives, and an excluded page is a FaultError
    saying so."""
    import drgn

    from kdx.target.partial import KdumpPages

    dumps = [bases["6.1-kdump"], bases["6.12-kdump"],
             lab("sysrq", fmt="kdump-lzo"), lab("sysrq", fmt="kdump-zstd")]
    for dump in dumps:
        target = dump.opened.target
        pages = KdumpPages(target.read_path)
        second = pages._second
        saved = [pfn for pfn in range(len(second) * 8) if second[pfn >> 3] >> (pfn & 7) & 1]
        assert len(saved) == kdump_lost(target.read_path)[1]
        for pfn in saved:
            address = pfn * 4096
            assert pages.read(address, 4096, 0, True) == target.prog.read(address, 4096,
                                                                           True), pfn
        hole = next(pfn for pfn in range(len(second) * 8) if pfn not in set(saved[:4096]))
        with pytest.raises(drgn.FaultError, match="page excluded from the dump"):
            pages.read(hole * 4096, 8, 0, True)


def test_pid_table_lost_falls_back_on_the_task_list(bases, tmp_path):  # noqa: ANN001
    """With the PID table pointing into unmapped memory, tasks are found on the task list,
    the runqueues and as the panic task, said in one line; when the task list loops as
    well, it is read up to the loop, said in a second line."""
    from kdx.lab.damage import damage as make
    from kdx.model.tasks import active_tasks, idle_tasks, panic_task_address

    base = bases["6.1-elf"]
    sound = base.opened
    prog = sound.target.prog
    order = [t.value_() for t in _task_list(prog)]
    others = {t.value_() for t in idle_tasks(prog)} | set(active_tasks(prog).values()) | {
        panic_task_address(prog)}
    lost_table = tmp_path / "pid-table"
    make(base.vmcore, lost_table, "pid-table", 0, base.vmlinux)
    dump = _open(bases, "6.1-elf", lost_table)
    ps = dump.run("ps")
    assert ps.ok and ps.error.splitlines() == [
        "kdx: warning: the PID table cannot be read (page missing from the dump): tasks "
        "were looked for on the task list, the runqueues and as the panic task (threads "
        "other than a process's first are not on the task list)"]
    assert {r.task for r in ps.record} == set(order) | others
    looped = tmp_path / "looped"
    what = make(lost_table, looped, "task-loop", 0, base.vmlinux)
    last = int(what.split("pid ")[1].split("'")[0])
    upto = next(i for i, a in enumerate(order) if sound.task(last).task == a) + 1
    dump = _open(bases, "6.1-elf", looped)
    ps = dump.run("ps")
    lines = ps.error.splitlines()
    assert ps.ok and len(lines) == 2 and "the PID table cannot be read" in lines[0]
    assert re.fullmatch(rf"kdx: warning: the task list was read up to its loop \({upto} "
                        r"tasks\): the task list at 0x[0-9a-f]+ loops: entry 0x[0-9a-f]+ "
                        rf"comes back after {upto} entries", lines[1]), lines[1]
    assert {r.task for r in ps.record} == set(order[:upto]) | others
    assert dump.sys().tasks == len(ps.record)


def _task_list(prog):  # noqa: ANN001, ANN202 (drgn objects)
    from kdx.model.bounded import list_for_each_entry

    return list(list_for_each_entry("struct task_struct",
                                    prog["init_task"].tasks.address_of_(), "tasks"))


def test_garbage_comm_is_escaped(bases, damaged):  # noqa: ANN001
    dump = _open(bases, "6.1-elf", damaged("6.1-elf", "task-garbage"))
    text = dump.run("ps").text
    line = next(ln for ln in text.splitlines() if "[2J" in ln)
    assert "\x1b" not in line and "\x07" not in line and "\\x1b" in line
    assert line.endswith('[\\x1b[2J\\x07\\x0a\\xff<b>\\x0dx\\x08"&]')
    as_json = json.dumps(dump.run("ps").to_dict())
    assert "\\u001b" not in as_json and "\\n" not in as_json
    assert '\\\\x1b[2J\\\\x07\\\\x0a' in as_json


def test_flattened_with_unwritable_cache(bases, tmp_path, monkeypatch):  # noqa: ANN001
    """A flattened dump is reassembled in a temporary directory when the cache cannot be
    written, and nothing is written next to the dump."""
    folder = tmp_path / "ro"
    folder.mkdir()
    copy = folder / "vmcore"
    shutil.copyfile(bases["6.1-flattened"].vmcore, copy)
    cache = tmp_path / "cache"
    cache.write_text("a file where the cache directory should be\n")
    folder.chmod(0o555)
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    try:
        dump = _open(bases, "6.1-flattened", copy)
        assert dump.sys().panic == bases["6.1-flattened"].truth["panic_message"]
        assert os.listdir(folder) == ["vmcore"]
        assert dump.target.read_path.parent.name == f"kdx-{os.getuid()}"
    finally:
        folder.chmod(0o755)


def test_broken_log_descriptors_are_said(bases, damaged):  # noqa: ANN001
    """Was: records shown with text read from wherever a flipped position pointed."""
    sound = bases["6.1-elf"].opened.log()
    dump = _open(bases, "6.1-elf", damaged("6.1-elf", "log-broken"))
    log = dump.log()
    marked = [r for r in log.records if r.lines == [DAMAGED.decode()]]
    assert 0 < len(marked) <= 16
    assert any(f"{len(marked)} log records have damaged descriptors" in w
               for w in log.warnings)
    shown = {r.seq: r.lines for r in sound.records}
    assert all(shown[r.seq] == r.lines for r in log.records if r not in marked)


def test_zeroed_page_tables_sum_up_stack_warnings(bases, damaged):  # noqa: ANN001
    """Stacks behind zeroed page tables cost a few warnings and one line for the rest,
    and analyze still names the panic task."""
    dump = _open(bases, "6.1-elf", damaged("6.1-elf", "pagetable-zero", 0))
    result = dump.run("foreach bt")
    assert result.ok
    warnings = result.error.splitlines()
    assert len(warnings) == 4 and "more stack problems like these" in warnings[-1]
    assert all("cannot unwind" in w for w in warnings[:3])
    assert dump.analyze().context.pid == bases["6.1-elf"].truth["pid"]


def test_sound_notes_have_no_damaged_fields(bases):  # noqa: ANN001
    """Every field of a sound note passes the checks that drop damaged ones (6.x kernels
    write NUMBER(VMALLOC_START) in hex: once taken for damage, on every 6.12 dump)."""
    from kdx.target import vmcoreinfo
    from kdx.target.formats import identify

    for name in ("6.1-elf", "6.1-kdump", "6.12-kdump"):
        path = bases[name].vmcore
        note = vmcoreinfo.note_text(path, identify(path))
        clean, bad = vmcoreinfo.sanitize(note)
        assert bad == [] and vmcoreinfo.complete(clean)
        assert len(clean.splitlines()) == len(note.split(b"\0")[0].strip().splitlines())
    assert vmcoreinfo.sanitize(b"OSRELEASE=6.1\nBUILD-ID=zz01\nNUMBER(X)=0x1f\n") == \
        (b"OSRELEASE=6.1\nNUMBER(X)=0x1f\n", ["BUILD-ID"])


def test_bitmap_that_miscounts_pages_is_refused(bases, damaged):  # noqa: ANN001
    """Found by the sweep (6.12 kdump, bitmap bits flipped, seed 10): once 'mod: error:
    unexpected BadDataError', then a module list read from other pages' data. The second
    bitmap counts 5 pages fewer than the descriptor table holds, so every page after the
    first flip would be read with another's data: the dump is refused in one line."""
    from kdx.errors import KdxError

    copy = damaged("6.12-kdump", "bitmap-flip", 10)
    _block, descs, table = kdump_descriptors(copy)
    held = (table[0][0] - descs) // 24
    assert held != len(table)
    with pytest.raises(KdxError) as err:
        _open(bases, "6.12-kdump", copy)
    assert str(err.value) == (f"{copy} has a damaged page bitmap: it counts {len(table):,} "
                              f"saved pages but holds {held:,} page descriptors, so no page "
                              "can be matched with its data; the dump is corrupt")


def test_lab_damage_cli_is_reproducible(bases, kdx, tmp_path):  # noqa: ANN001
    listing = kdx("lab", "damage", "--kind", "list", check=True).stdout
    assert set(KINDS) == {line.split()[0] for line in listing.splitlines()}
    src = bases["6.1-kdump"].vmcore
    outs = []
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        out = tmp_path / name
        proc = kdx("lab", "damage", src, "-o", out, "--kind", "desc-flip", "--seed", str(seed),
                   check=True)
        pages = kdump_lost(src)[1]
        assert proc.stdout.startswith(f"flipped 16 bits in {pages} page descriptors")
        outs.append(out.read_bytes())
    assert outs[0] == outs[1] != outs[2] and len(outs[0]) == src.stat().st_size
    assert outs[0] != src.read_bytes()
    wrong = kdx("lab", "damage", src, "-o", tmp_path / "d", "--kind", "task-loop")
    assert wrong.returncode == 1 and wrong.stderr.startswith(
        "kdx: error: damage kind task-loop applies to elf dumps")
