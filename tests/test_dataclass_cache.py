"""The kdx command keeps the code dataclasses compile between runs: a class defined from
the stored code behaves exactly as one compiled afresh, a damaged store is compiled
again, and importing kdx as a library leaves dataclasses alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# Defines a record the way kdx's model does, then prints how it behaves and how many
# method sources had to be compiled in this process.
_PROBE = r"""
import dataclasses, json, sys
from dataclasses import dataclass, field
from kdx import dataclass_cache

cache = dataclass_cache.install()

@dataclass(frozen=True)
class Frame:
    level: int
    name: str
    offset: int = 0
    words: list = field(default_factory=list, hash=False)

a, b = Frame(1, "schedule", 17), Frame(1, "schedule", 17)
try:
    a.level = 2
    frozen = False
except dataclasses.FrozenInstanceError:
    frozen = True
print(json.dumps({"repr": repr(a), "equal": a == b, "hash": hash(a) == hash(b),
                  "other": a == Frame(2, "schedule"), "frozen": frozen,
                  "fresh_list": Frame(0, "x").words is not Frame(0, "x").words,
                  "compiled": cache.compiled}))
"""


def _probe(cache_home: Path) -> dict[str, object]:
    env = {**os.environ, "XDG_CACHE_HOME": str(cache_home)}
    out = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout)


def _behaviour(result: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in result.items() if k != "compiled"}


EXPECTED = {"repr": "Frame(level=1, name='schedule', offset=17, words=[])", "equal": True,
            "hash": True, "other": False, "frozen": True, "fresh_list": True}


def test_second_run_compiles_nothing_and_behaves_the_same(tmp_path: Path) -> None:
    first = _probe(tmp_path)
    assert _behaviour(first) == EXPECTED
    assert first["compiled"] >= 5  # __init__, __repr__, __eq__, __hash__, __setattr__...
    [stored] = (tmp_path / "kdx").glob("dataclasses-*/__main__.marshal")
    assert stored.stat().st_size > 1000
    second = _probe(tmp_path)
    assert _behaviour(second) == EXPECTED
    assert second["compiled"] == 0


@pytest.mark.parametrize("damage", [b"", b"not marshal data", None])
def test_a_damaged_store_is_compiled_again(tmp_path: Path, damage: bytes | None) -> None:
    _probe(tmp_path)
    [stored] = (tmp_path / "kdx").glob("dataclasses-*/__main__.marshal")
    good = stored.read_bytes()
    stored.write_bytes(good[: len(good) // 2] if damage is None else damage)
    again = _probe(tmp_path)
    assert _behaviour(again) == EXPECTED
    assert again["compiled"] >= 5
    assert stored.read_bytes() == good  # written whole again


def test_an_unwritable_cache_still_runs(tmp_path: Path) -> None:
    (tmp_path / "kdx").write_text("a file where the directory would be")
    assert _behaviour(_probe(tmp_path)) == EXPECTED
    assert (tmp_path / "kdx").read_text() == "a file where the directory would be"


def test_the_library_leaves_dataclasses_alone(tmp_path: Path) -> None:
    code = ("import dataclasses, kdx.api, kdx.model.tasks, kdx.cli;"
            "print(hasattr(dataclasses, 'exec'))")
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "False"
    assert not (tmp_path / "kdx").exists()


def test_the_kdx_command_stores_its_records(tmp_path: Path) -> None:
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}
    subprocess.run([sys.executable, "-m", "kdx", "--help"], env=env, capture_output=True,
                   check=True)
    stored = list((tmp_path / "kdx").glob("dataclasses-*/kdx.*.marshal"))
    assert len(stored) > 5  # one file per module that defines records
    assert any(p.name.startswith("kdx.model.") for p in stored)
