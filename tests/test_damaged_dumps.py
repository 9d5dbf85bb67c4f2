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
import shutil
import stat
import subprocess
import sys
from pathlib import Path

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
DEFAULT_SEEDS = {"truncate": 3, "header-flip": 3, "bitmap-flip": 3, "desc-flip": 3,
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


def run_damaged(base, kind: str, seed: int, tmp_path: Path, home: Path) -> tuple[dict, str]:  # noqa: ANN001
    """Damage a copy of ``base``, run the child on it; (its summary, what was damaged)."""
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
    summary, what = run_damaged(bases[base], kind, seed, tmp_path, readonly_home)
    check_summary(summary, what)


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
    """Was: 'unexpected FaultError' from analyze when log pages were excluded."""
    dump = _open(bases, "6.1-kdump", damaged("6.1-kdump", "exclude-pages", 0))
    verdict = dump.analyze()
    assert verdict.context.pid == bases["6.1-kdump"].truth["pid"]
    assert verdict.warnings


def test_page_descriptors_outside_the_file(bases, damaged):  # noqa: ANN001
    """Was: the process died of SIGBUS inside libkdumpfile."""
    from kdx.errors import KdxError

    with pytest.raises(KdxError, match=r"has \d+ damaged page descriptors of 17,\d{3}"):
        _open(bases, "6.1-kdump", damaged("6.1-kdump", "desc-flip", 2))


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


def test_module_with_unreadable_name(bases, damaged):  # noqa: ANN001
    """Was: 'mod: error: unexpected BadDataError: couldn't read module name' (found by the
    sweep: 6.12 kdump, bitmap bits flipped, seed 10); now one clear line, as no module
    could be read, and never 'no modules installed'."""
    dump = _open(bases, "6.12-kdump", damaged("6.12-kdump", "bitmap-flip", 10))
    result = dump.run("mod")
    assert not result.ok and "no modules installed" not in result.text
    assert result.error.startswith("mod: error: no module could be read: the module list "
                                   "is damaged, 0 modules read")
    assert len(result.error.splitlines()) == 1


def test_lab_damage_cli_is_reproducible(bases, kdx, tmp_path):  # noqa: ANN001
    listing = kdx("lab", "damage", "--kind", "list", check=True).stdout
    assert set(KINDS) == {line.split()[0] for line in listing.splitlines()}
    src = bases["6.1-kdump"].vmcore
    outs = []
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        out = tmp_path / name
        proc = kdx("lab", "damage", src, "-o", out, "--kind", "desc-flip", "--seed", str(seed),
                   check=True)
        assert proc.stdout.startswith("flipped 16 bits in 17863 page descriptors")
        outs.append(out.read_bytes())
    assert outs[0] == outs[1] != outs[2] and len(outs[0]) == src.stat().st_size
    assert outs[0] != src.read_bytes()
    wrong = kdx("lab", "damage", src, "-o", tmp_path / "d", "--kind", "task-loop")
    assert wrong.returncode == 1 and wrong.stderr.startswith(
        "kdx: error: damage kind task-loop applies to elf dumps")
