"""Assemble the lab guest's initramfs images (newc cpio, gzip) from host files.

Two images: the capture image (busybox, makedumpfile, virtio block modules) that kdump's
capture kernel boots, and the first image, which holds everything the scenario needs plus
the capture kernel and its image for ``kexec -p``. Both are built from a staging directory
so the same code serves 6.1, 6.12 and 7.x kernels and tools taken from a trixie or sid root.
"""

from __future__ import annotations

import gzip
import re
import shutil
import subprocess
from pathlib import Path
from typing import Callable, Iterable, Sequence

from kdx.errors import KdxError, MissingToolError
from kdx.lab.kernels import Kernel

GUEST_DIR = Path(__file__).parent / "guest"
#: Modules the capture kernel needs to write the dump to a virtio disk.
CAPTURE_MODULES = ("virtio_pci", "virtio_blk")
#: Real modules of the kernel package the first kernel loads to look lived in.
LIVED_IN_MODULES = ("qemu_fw_cfg", "dummy", "loop", "virtio_pci", "virtio_blk")

#: Debian package of each guest tool, for the message when one is missing.
TOOL_PACKAGES = {"kexec": "kexec-tools", "makedumpfile": "makedumpfile"}

LibResolver = Callable[[Path], list[Path]]


def host_libraries(binary: Path) -> list[Path]:
    """Shared libraries (and the loader) ``binary`` needs on this host, from ``ldd``."""
    out = subprocess.run(["ldd", str(binary)], capture_output=True, text=True).stdout
    found = re.findall(r"(/\S+\.so[\w.\-]*)", out)
    return [Path(p) for p in dict.fromkeys(found)]


def module_closure(kernel: Kernel, names: Iterable[str]) -> list[str]:
    """Paths (relative to the modules dir) of ``names`` and all they depend on.

    Built-in modules have no file and are skipped, so the list fits either kernel config.
    """
    deps: dict[str, list[str]] = {}
    by_name: dict[str, str] = {}
    for line in (kernel.modules_dir / "modules.dep").read_text().splitlines():
        path, _, rest = line.partition(":")
        deps[path] = rest.split()
        stem = Path(path).name.split(".ko")[0].replace("-", "_")
        by_name[stem] = path
    out: list[str] = []

    def visit(path: str) -> None:
        if path not in out:
            for dep in deps.get(path, []):
                visit(dep)
            out.append(path)

    for name in names:
        if name.replace("-", "_") in by_name:
            visit(by_name[name.replace("-", "_")])
    return out


def _install(src: Path, stage: Path, dest: str | None = None) -> None:
    target = stage / (dest or str(src).lstrip("/"))
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src, target, follow_symlinks=True)


def _install_module(src: Path, dest: Path) -> None:
    """Copy a module, decompressing ``.ko.xz``/``.ko.zst`` (trixie ships them compressed)
    so busybox's insmod, which may lack the decompressors, can load it."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tool = {".xz": ["xz", "-dc"], ".zst": ["zstd", "-dcq"], ".gz": ["gzip", "-dc"]}.get(src.suffix)
    if tool is None:
        shutil.copy2(src, dest)
        return
    with open(dest.with_suffix(""), "wb") as out:
        subprocess.run([*tool, str(src)], stdout=out, check=True)


def stage_base(stage: Path, kernel: Kernel, modules: Sequence[str],
               binaries: Sequence[Path], libs: LibResolver, tools_root: Path) -> None:
    """Busybox, /init, kernel modules with their index, and ``binaries`` with libraries.

    ``tools_root`` is where ``binaries`` live ("/" or a lab root); their libraries are
    looked up there too and installed at their path inside it.
    """
    busybox = shutil.which("busybox")
    if busybox is None:
        raise MissingToolError("busybox is not installed: run 'apt-get install busybox-static'")
    _install(Path(busybox), stage, "bin/busybox")
    for sub in ("proc", "sys", "dev", "tmp", "lab"):
        (stage / sub).mkdir(parents=True, exist_ok=True)
    init = stage / "init"
    shutil.copy(GUEST_DIR / "init.sh", init)
    init.chmod(0o755)
    for binary in binaries:
        host_path = tools_root / str(binary).lstrip("/")
        if not host_path.exists():
            package = TOOL_PACKAGES.get(binary.name, binary.name)
            raise MissingToolError(f"{binary} is not installed: run 'apt-get install {package}'")
        _install(host_path, stage, f"usr/sbin/{binary.name}")
        for lib in libs(binary):
            _install(tools_root / str(lib).lstrip("/"), stage, str(lib).lstrip("/"))
    moddir = f"lib/modules/{kernel.release}"
    for rel in module_closure(kernel, modules):
        _install_module(kernel.modules_dir / rel, stage / moddir / rel)
    for meta in ("modules.builtin", "modules.builtin.modinfo", "modules.order"):
        if (kernel.modules_dir / meta).exists():
            _install(kernel.modules_dir / meta, stage, f"{moddir}/{meta}")
    subprocess.run(["depmod", "-b", str(stage), kernel.release], check=True)


def write_cpio(stage: Path, out: Path) -> None:
    """Pack ``stage`` as a gzip-compressed newc cpio archive, the format the kernel unpacks."""
    if shutil.which("cpio") is None:
        raise MissingToolError("cpio is not installed: run 'apt-get install cpio'")
    names = subprocess.run(["find", "."], cwd=stage, capture_output=True, check=True).stdout
    proc = subprocess.run(["cpio", "-o", "-H", "newc", "--quiet", "-R", "0:0"], cwd=stage,
                          input=names, capture_output=True)
    if proc.returncode != 0:
        raise KdxError(f"could not pack the initramfs: {proc.stderr.decode().strip()}")
    with gzip.open(out, "wb", compresslevel=1) as f:
        f.write(proc.stdout)
