"""Debian chroots (trixie, sid) that give the lab tools bookworm's versions cannot replace.

Bookworm's crash 8.0.2 misreads the kernels the lab tests, so trixie's crash 8.0.6 is the
oracle; trixie's makedumpfile and gcc-14 are needed for 6.12 kernels. Debian sid's newest
kernel (7.x) needs sid's compiler (gcc-16) for its modules and sid's makedumpfile, since
trixie's filters it wrongly. Installing them on the bookworm host would drag half of a
newer suite with them, so each suite's tools live in a minimal chroot made once with
debootstrap and kept in the lab cache (``trixie-root``, ``sid-root``).

Two properties matter more than speed:

* A half-built root must never look finished, so the root is built in a temporary
  sibling directory and renamed into place only after debootstrap succeeded; a stamp
  inside it records what it was built from, so changing the package list rebuilds it.
* Nothing mounted for the chroot may outlive it on the host (a stray bind mount of /dev
  inside the cache would let a later ``rm -rf`` of the cache delete the host's /dev).
  Both debootstrap and every command run in the root therefore run in a private mount
  namespace, which the kernel tears down with its last process, even after SIGKILL.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

from kdx.errors import KdxError, MissingToolError

__all__ = ["ROOTS", "RootSpec", "ensure_root", "run_in_root"]

Progress = Optional[Callable[[str], None]]

MIRROR = "http://deb.debian.org/debian"


@dataclass(frozen=True)
class RootSpec:
    """One suite's root: what debootstrap installs and the file that proves it did."""

    suite: str
    packages: tuple[str, ...]
    #: A file inside the root that a finished build has (the tool the root exists for).
    marker: str

    @property
    def name(self) -> str:
        return f"{self.suite}-root"

    @property
    def stamp_name(self) -> str:
        """Inside the root, so the stamp appears in the same rename that publishes it."""
        return f".kdx-{self.suite}-stamp.json"


#: The build tools both roots carry (modules against the suite's kernel headers; pahole
#: gives them BTF, as CONFIG_DEBUG_INFO_BTF_MODULES asks).
_BUILD_TOOLS = ("makedumpfile", "gcc", "make", "libc6-dev", "libelf-dev", "bc", "kmod",
                "binutils", "pahole", "file", "ca-certificates")

ROOTS: dict[str, RootSpec] = {
    # crash is trixie's reason to exist. ``gcc-14`` is named although ``gcc`` pulls it in,
    # so the compiler 6.12 kernels were built with stays even if trixie's default moves.
    "trixie": RootSpec("trixie", ("crash", "gcc-14", *_BUILD_TOOLS), "usr/bin/crash"),
    # No crash: sid's crash 9.0.2 refuses 7.x dumps ("invalid structure member offset:
    # module_num_gpl_syms"), so there the lab's truth and drgn are the oracle.
    "sid": RootSpec("sid", _BUILD_TOOLS, "usr/bin/makedumpfile"),
}

#: Bumped when the way the roots are made changes in a way the package list does not show.
STAMP_FORMAT = 1

#: PATH and environment inside the root: the host's environment (PYTHONPATH, LD_PRELOAD,
#: a user's PAGER) has no business leaking into the tools we use as references.
_ROOT_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "LC_ALL": "C.UTF-8",
    "TERM": "dumb",
}

# Mounts /proc, /dev and /sys plus the binds, then replaces itself with chroot. It runs as
# the first process of a fresh private mount namespace, so every mount vanishes with it.
# Arguments: ROOT NBINDS BIND... CWD ARGV...
_RUN_SCRIPT = r"""
set -e
root=$1; n=$2; shift 2
mount -t proc proc "$root/proc"
mount --rbind /dev "$root/dev"
mount -t sysfs sysfs "$root/sys"
while [ "$n" -gt 0 ]; do
    mount --rbind "$1" "$root$1"
    shift; n=$((n - 1))
done
cwd=$1; shift
exec chroot "$root" /bin/sh -c 'cd "$1" || exit 125; shift; exec "$@"' kdx-run "$cwd" "$@"
"""


def _stamp(spec: RootSpec) -> dict[str, object]:
    """What a finished root records about how it was made."""
    return {
        "format": STAMP_FORMAT,
        "suite": spec.suite,
        "mirror": MIRROR,
        "variant": "minbase",
        "packages": sorted(spec.packages),
    }


def _is_current(root: Path, spec: RootSpec) -> bool:
    """True if ``root`` is a finished root built as ``spec`` says."""
    try:
        recorded = json.loads((root / spec.stamp_name).read_text())
    except (OSError, ValueError):
        return False
    return recorded == _stamp(spec) and (root / spec.marker).exists()


def _check_debootstrap(suite: str) -> None:
    """Fail early, with the fix, if this host cannot debootstrap ``suite``."""
    # A root shell without the sbin directories in PATH (``su`` without ``-``) is common.
    if shutil.which("debootstrap", path=_ROOT_ENV["PATH"]) is None:
        raise MissingToolError("debootstrap is not installed: run 'apt-get install debootstrap'")
    scripts = Path(os.environ.get("DEBOOTSTRAP_DIR") or "/usr/share/debootstrap") / "scripts"
    if not (scripts / suite).exists():
        raise MissingToolError(
            f"this debootstrap does not know {suite} (no {scripts / suite}): "
            "run 'apt-get install --only-upgrade debootstrap'"
        )
    if shutil.which("gpgv") is None:
        raise MissingToolError(
            f"gpgv is not installed, so debootstrap cannot check the {suite} archive: "
            "run 'apt-get install gpgv'"
        )


def _require_root(what: str) -> None:
    if os.geteuid() != 0:
        raise KdxError(f"{what} needs root (chroot and mounts), so run kdx with sudo")


def _mounts_under(path: Path) -> list[str]:
    """Mount points at or below ``path`` in this mount namespace."""
    prefix = str(path.resolve())
    found = []
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return found
    for line in lines:
        fields = line.split()
        if len(fields) < 5:
            continue
        # mountinfo escapes space, tab, newline and backslash as octal.
        point = fields[4].encode().decode("unicode_escape")
        if point == prefix or point.startswith(prefix + "/"):
            found.append(point)
    return found


def _remove_tree(path: Path) -> None:
    """Delete a (partial) root, refusing if anything is mounted inside it.

    rmtree would descend into a leftover bind mount of /dev or /proc and delete host
    files; that must stay impossible even if a namespace was somehow bypassed.
    """
    mounted = _mounts_under(path)
    if mounted:
        raise KdxError(
            f"{path} still has mounts inside it ({mounted[0]}): unmount them "
            f"(umount -R {shlex.quote(mounted[0])}) before kdx can remove it"
        )
    shutil.rmtree(path, ignore_errors=True)


def _is_phase_line(line: str, seen_verbs: set[str]) -> bool:
    """Whether a debootstrap output line is worth a progress line (see ``_debootstrap``)."""
    words = line.split()
    if len(words) < 2 or words[0] not in ("I:", "W:", "E:"):
        return False
    # Per-package lines are "I: Retrieving apt 3.0.4" or "I: Extracting apt..."; phase
    # lines such as "I: Unpacking the base system..." have more words.
    dots = line.endswith("...")
    per_package = words[0] == "I:" and len(words) == (3 if dots else 4)
    if not per_package:
        return True
    if words[1] in seen_verbs:
        return False
    seen_verbs.add(words[1])
    return True


def _debootstrap(target: Path, spec: RootSpec, log: Path, progress: Progress) -> None:
    """Run debootstrap into ``target``, logging everything and reporting each phase.

    debootstrap prints ``I: Retrieving pkg version`` and ``I: Unpacking pkg...`` lines for
    every package, hundreds in all; only the first of each such verb is passed on, so the
    caller sees about one line per phase. Warnings, errors and phase lines (``Unpacking
    the base system...``) all pass.
    """
    argv = [
        "unshare", "--mount", "--propagation", "private", "--",
        "debootstrap", "--variant=minbase", "--include=" + ",".join(spec.packages),
        spec.suite, str(target), MIRROR,
    ]  # fmt: skip
    seen_verbs: set[str] = set()
    with open(log, "w", encoding="utf-8", errors="replace") as out:
        out.write("$ " + shlex.join(argv) + "\n")
        out.flush()
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env={**_ROOT_ENV, "DEBIAN_FRONTEND": "noninteractive"},
            start_new_session=True,
        )
        assert proc.stdout is not None
        try:
            for raw in proc.stdout:
                line = raw.decode("utf-8", errors="replace").rstrip()
                out.write(line + "\n")
                out.flush()
                if progress and _is_phase_line(line, seen_verbs):
                    progress("debootstrap: " + line[3:])
            code = proc.wait()
        except BaseException:
            _kill_group(proc)
            raise
    if code != 0:
        tail = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()][-3:]
        raise KdxError(
            f"debootstrap of {spec.suite} failed (exit {code}): {' | '.join(tail)} "
            f"(full log: {log})"
        )


def ensure_root(cache: Path, suite: str = "trixie", progress: Progress = None) -> Path:
    """Return ``cache/SUITE-root``, building it with debootstrap if it is missing or stale.

    Cheap when the root is already there: one small JSON read. Building takes minutes and
    needs network access to deb.debian.org. A lock file serialises concurrent callers, so
    two kdx processes never debootstrap the same root at once.
    """
    spec = ROOTS.get(suite)
    if spec is None:
        raise KdxError(f"the lab has no {suite!r} root: use one of {', '.join(ROOTS)}")
    cache = Path(cache)
    root = cache / spec.name
    if _is_current(root, spec):
        return root
    _require_root(f"the lab's {suite} root")
    _check_debootstrap(suite)
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / (spec.name + ".lock"), "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if progress:
                progress(f"waiting for another kdx that is building the {suite} root")
            fcntl.flock(lock, fcntl.LOCK_EX)
        if not _is_current(root, spec):
            _build(cache, root, spec, progress)
    return root


def _build(cache: Path, root: Path, spec: RootSpec, progress: Progress) -> None:
    """Debootstrap ``spec`` beside ``root`` and rename it into place (under the lock)."""
    # Leftovers of interrupted builds: under the lock nobody else can be using them.
    for stale in cache.glob(spec.name + ".tmp-*"):
        if progress:
            progress(f"removing the unfinished root {stale.name}")
        _remove_tree(stale)
    for stale in cache.glob(spec.name + ".old-*"):
        _remove_tree(stale)
    if progress:
        why = "changed package list" if root.exists() else "not built yet"
        progress(f"building the {spec.suite} root in {root} ({why}; takes a few minutes)")
    tmp = Path(tempfile.mkdtemp(prefix=spec.name + ".tmp-", dir=cache))
    os.chmod(tmp, 0o755)  # mkdtemp's 0700 would become the chroot's / permissions
    started = time.monotonic()
    try:
        _debootstrap(tmp, spec, cache / (spec.name + ".log"), progress)
        if not (tmp / spec.marker).exists():
            raise KdxError(f"debootstrap finished but {tmp / spec.marker} is missing")
        (tmp / spec.stamp_name).write_text(json.dumps(_stamp(spec), indent=1) + "\n")
    except BaseException:
        _remove_tree(tmp)
        raise
    if root.exists():
        old = Path(tempfile.mkdtemp(prefix=spec.name + ".old-", dir=cache))
        root.rename(old / "root")
        tmp.rename(root)
        _remove_tree(old)
    else:
        tmp.rename(root)
    if progress:
        progress(f"{spec.suite} root ready after {time.monotonic() - started:.0f} s")


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """Kill ``proc`` and everything it started (it leads its own session)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _only_mount_points(directory: Path) -> bool:
    """True if ``directory`` holds nothing but empty directories.

    Those are mount points earlier runs created (binding /a/b leaves an empty /a/b in the
    root), so hiding them under a bind of /a loses nothing; a file would be lost.
    """
    for dirpath, dirnames, filenames in os.walk(directory):
        if filenames or any(os.path.islink(os.path.join(dirpath, d)) for d in dirnames):
            return False
    return True


def _prepare_binds(root: Path, binds: Sequence[Path]) -> list[str]:
    """Check the host paths to bind and create their mount points inside ``root``.

    Paths inside another bound path are dropped (already visible). A mount point is refused
    if reaching it inside the root crosses a symlink (an absolute link would lead the
    mkdir out to the host) or if it would hide files of the root itself.
    """
    where = f"into the lab's {root.name}"
    paths: list[Path] = []
    for bind in binds:
        path = Path(os.path.abspath(bind))
        if not path.exists():
            raise KdxError(f"cannot bind {path} {where}: it does not exist")
        if path == Path("/"):
            raise KdxError(f"cannot bind / {where}: it would hide the root")
        paths.append(path)
    paths.sort(key=lambda p: len(p.parts))
    kept: list[Path] = []
    for path in paths:
        if not any(path == k or k in path.parents for k in kept):
            kept.append(path)
    for path in kept:
        inside = root
        for part in path.parts[1:]:
            inside = inside / part
            if inside.is_symlink():
                raise KdxError(
                    f"cannot bind {path} {where}: {inside} is a symlink there"
                )
        if path.is_dir():
            if inside.is_dir() and not _only_mount_points(inside):
                raise KdxError(
                    f"cannot bind {path} {where}: it would hide the root's own {path}"
                )
            inside.mkdir(parents=True, exist_ok=True)
        else:
            if inside.exists() and inside.stat().st_size:
                raise KdxError(
                    f"cannot bind {path} {where}: it would hide the root's own {path}"
                )
            inside.parent.mkdir(parents=True, exist_ok=True)
            inside.touch()
    return [str(p) for p in kept]


def run_in_root(
    root: Path,
    argv: Sequence[str],
    binds: Sequence[Path] = (),
    *,
    input: bytes | None = None,
    timeout: float = 600,
    cwd: str = "/",
) -> subprocess.CompletedProcess[bytes]:
    """Run ``argv`` chrooted in ``root`` and return its exit code, stdout and stderr.

    Each path in ``binds`` appears at the same path inside the root, so file names in the
    tool's output match the host's. /proc, /dev and /sys are mounted too. All mounts live
    in a private mount namespace, so none is visible on the host and all disappear when
    the command ends, however it ends. The environment inside is a fixed minimal one.
    A non-zero exit is returned, not raised: callers judge what a failure means.
    """
    _require_root(f"running tools in the lab's {root.name}")
    root = Path(os.path.abspath(root))
    if not (root / "bin/sh").exists():
        raise KdxError(f"{root} is not a usable root (no /bin/sh): rebuild it")
    if not argv:
        raise KdxError("run_in_root needs a command to run")
    mounts = _prepare_binds(root, binds)
    command = [
        "unshare", "--mount", "--propagation", "private", "--",
        "/bin/sh", "-c", _RUN_SCRIPT, "kdx-root",
        str(root), str(len(mounts)), *mounts, cwd, *argv,
    ]  # fmt: skip
    proc = subprocess.Popen(
        command,
        stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_ROOT_ENV,
        start_new_session=True,  # so a timeout can kill the whole process group
    )
    try:
        stdout, stderr = proc.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        raise KdxError(
            f"{argv[0]} in the lab's {root.name} did not finish within {timeout:g} seconds"
        ) from None
    except BaseException:
        _kill_group(proc)
        raise
    return subprocess.CompletedProcess(list(argv), proc.returncode, stdout, stderr)
