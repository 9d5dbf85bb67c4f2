"""Damaged and hostile dumps: kdx never crashes, hangs, lies or writes next to the dump.

Each variant is a copy of a real lab dump damaged by ``kdx.lab.damage`` (truncated, bits
flipped in its headers, bitmaps or page descriptors, VMCOREINFO broken, pages zeroed or
excluded, kernel lists corrupted in place). One child process per variant opens it once
and runs the crash commands and ``analyze`` under a capped address space and a time
limit, with the dump's directory read-only and HOME's cache unwritable. The default
sweep has ~60 variants; ``KDX_DAMAGE_VARIANTS=N`` runs N seeds of each kind instead of
the default few.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from kdx.lab.damage import KINDS, damage

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
    home = tmp_path / "home"
    (home / ".cache").mkdir(parents=True)
    home.chmod(0o555)
    (home / ".cache").chmod(0o555)
    yield home
    home.chmod(0o755)
    (home / ".cache").chmod(0o755)


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
