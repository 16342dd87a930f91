"""Build the relocatable envd bundle mounted read-only at ``/mnt/agentsandbox`` in every sandbox.

"Any image, no rebuild": the sandbox image may have no Python, or a different
libc, so the bundle carries everything envd needs:

* ``python/`` — this interpreter's install tree (stdlib trimmed of tests, GUI and
  build files) with envd and its runtime dependencies in its ``site-packages``;
  CPython finds its prefix relative to its executable, so the tree can live anywhere;
* ``lib/`` — every shared library the interpreter and the bundled extension
  modules link against, including the C library and its dynamic loader;
* ``envd`` — a launcher that starts the interpreter through the bundled loader
  (``ld.so --library-path lib``), so no library of the image is used and nothing
  leaks into the environment of the processes envd starts;
* ``agent-sandbox-entrypoint.sh`` (behaviour.md §17) and ``tini`` when Debian's
  ``tini`` package provides a static one.

Building is incremental: a fingerprint of every input file (path, size, mtime) is
stored in the bundle, and an unchanged bundle is left alone, because the local
node rebuilds it at every start. A changed bundle is built next to the target
and swapped in, so a half-built tree is never visible.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from importlib import metadata
from importlib.resources import files
from pathlib import Path

FINGERPRINT_FILE = ".bundle-fingerprint"
ENTRYPOINT = "agent-sandbox-entrypoint.sh"

# Distributions envd imports at run time (checked by running the bundled envd in the tests).
RUNTIME_DISTRIBUTIONS = (
    "asyncinotify", "click", "connectrpc", "h11", "protobuf-py", "protobuf-py-ext", "pyqwest",
    "python-multipart", "structlog", "typing-extensions", "uvicorn",
)
# Our own packages (editable installs in the workspace, so copied from their source trees).
OWN_PACKAGES = ("agent_sandbox.common", "agent_sandbox.envd")

_STDLIB_SKIP_DIRS = {
    "test", "tests", "idlelib", "tkinter", "turtledemo", "lib2to3", "ensurepip", "pydoc_data",
    "site-packages", "dist-packages", "distutils", "venv", "sqlite3", "dbm", "curses", "__phello__",
}
_DYNLOAD_SKIP = re.compile(r"^(_tkinter|_test|xx|_ctypes_test|_sqlite3|_dbm|_gdbm|readline|_curses|audioop|nis|"
                           r"_xxtestfuzz|_xxsubinterpreters)")
_TINI_CANDIDATES = ("/usr/bin/tini-static", "/usr/bin/tini")


class BundleError(RuntimeError):
    """The bundle cannot be built on this machine; the message says what is missing."""


def _skip_file(name: str) -> bool:
    return name.endswith((".opt-1.pyc", ".opt-2.pyc", ".a", ".exe")) or name.startswith("config-")


def _stdlib_files(stdlib: Path) -> Iterator[tuple[Path, Path]]:
    for dirpath, dirnames, filenames in os.walk(stdlib):
        rel_dir = Path(dirpath).relative_to(stdlib)
        dirnames[:] = [d for d in dirnames if d not in _STDLIB_SKIP_DIRS and not d.startswith("config-")]
        for name in filenames:
            if _skip_file(name):
                continue
            if rel_dir.parts[:1] == ("lib-dynload",) and _DYNLOAD_SKIP.match(name):
                continue
            yield Path(dirpath) / name, Path(rel_dir) / name


def _distribution_files(name: str) -> Iterator[tuple[Path, Path]]:
    dist = metadata.distribution(name)
    for entry in dist.files or ():
        source = Path(str(dist.locate_file(entry)))
        rel = Path(str(entry))
        if rel.parts[0] == ".." or rel.suffix == ".pth" or "__pycache__" in rel.parts or not source.is_file():
            continue
        if rel.parts[0].endswith(".dist-info") and rel.name not in ("METADATA", "entry_points.txt"):
            continue
        yield source, rel


def _own_package_files(module: str) -> Iterator[tuple[Path, Path]]:
    package = files(module)
    root = Path(str(package))
    rel_root = Path(*module.split("."))
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        for name in filenames:
            if name.endswith((".py", ".sh")):
                source = Path(dirpath) / name
                yield source, rel_root / source.relative_to(root)


def _interpreter() -> tuple[Path, Path, str]:
    """(base prefix, real interpreter binary, ``pythonX.Y``)."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    prefix = Path(sys.base_prefix)
    binary = prefix / "bin" / version
    if not binary.exists():
        binary = Path(os.path.realpath(getattr(sys, "_base_executable", sys.executable)))
    return prefix, binary, version


def _elf_interpreter(binary: Path) -> Path:
    data = binary.read_bytes()[:4096]
    match = re.search(rb"/lib[^\x00]*/ld-[^\x00]+\.so[.\d]*", data)
    if not match:
        raise BundleError(f"{binary} has no ELF program interpreter (statically linked builds are not supported)")
    return Path(match.group().decode())


_LDD_LINE = re.compile(r"^\s*(\S+)\s+=>\s+(/\S+)\s+\(")


def _shared_libraries(objects: list[Path]) -> dict[str, Path]:
    """soname → real path for every library the given ELF objects need (per ``ldd``)."""
    if not shutil.which("ldd"):
        raise BundleError("ldd is required to build the envd bundle")
    found: dict[str, Path] = {}
    for start in range(0, len(objects), 64):
        batch = [str(p) for p in objects[start:start + 64]]
        result = subprocess.run(["ldd", *batch], capture_output=True, text=True, check=False)
        for line in result.stdout.splitlines():
            match = _LDD_LINE.match(line)
            if match and match.group(1) not in found:
                found[match.group(1)] = Path(os.path.realpath(match.group(2)))
    return found


def _plan(prefix: Path, binary: Path, version: str) -> list[tuple[Path, Path]]:
    """(source, destination relative to the bundle) for every file of the bundle except launchers."""
    stdlib = Path(sysconfig.get_paths(vars={"installed_base": str(prefix), "base": str(prefix)})["stdlib"])
    py_lib = Path("python") / "lib" / version
    site = py_lib / "site-packages"
    plan: list[tuple[Path, Path]] = [(binary, Path("python") / "bin" / version)]
    plan += [(src, py_lib / rel) for src, rel in _stdlib_files(stdlib)]
    for name in RUNTIME_DISTRIBUTIONS:
        plan += [(src, site / rel) for src, rel in _distribution_files(name)]
    for module in OWN_PACKAGES:
        plan += [(src, site / rel) for src, rel in _own_package_files(module)]
    elf_objects = [binary] + [src for src, _ in plan if src.name.endswith(".so")]
    libpython = sysconfig.get_config_var("LDLIBRARY")
    libdir = sysconfig.get_config_var("LIBDIR")
    if libpython and libdir and (Path(libdir) / libpython).exists() and libpython.endswith(".so"):
        elf_objects.append(Path(libdir) / libpython)
    for soname, path in sorted(_shared_libraries(elf_objects).items()):
        plan.append((path, Path("lib") / soname))
    loader = _elf_interpreter(binary)
    plan.append((Path(os.path.realpath(loader)), Path("lib") / loader.name))
    return plan


def _fingerprint(plan: list[tuple[Path, Path]], extra: list[Path]) -> str:
    digest = hashlib.sha256(sys.version.encode())
    for source, dest in sorted(plan, key=lambda item: str(item[1])):
        st = source.stat()
        digest.update(f"{dest}\0{source}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    for path in extra:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _launcher(loader_name: str, version: str) -> str:
    return f"""#!/bin/sh
# Start envd with the bundled interpreter, C library and loader (no library of the image is used).
D="$(cd "$(dirname "$0")" && pwd -P)"
exec "$D/lib/{loader_name}" --library-path "$D/lib" "$D/python/bin/{version}" -I -m agent_sandbox.envd "$@"
"""


def _write_tree(target: Path, plan: list[tuple[Path, Path]], binary: Path, version: str, fingerprint: str) -> None:
    for source, rel in plan:
        dest = target / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, dest)
    entrypoint = Path(str(files("agent_sandbox.envd") / ENTRYPOINT))
    shutil.copy2(entrypoint, target / ENTRYPOINT)
    (target / ENTRYPOINT).chmod(0o755)
    launcher = target / "envd"
    launcher.write_text(_launcher(_elf_interpreter(binary).name, version))
    launcher.chmod(0o755)
    for candidate in _TINI_CANDIDATES:
        if Path(candidate).exists() and _is_static(Path(candidate)):
            shutil.copy2(candidate, target / "tini")
            break
    site = target / "python" / "lib" / version / "site-packages"
    # Precompile: the bundle is mounted read-only, so the interpreter could never cache bytecode itself.
    subprocess.run([sys.executable, "-m", "compileall", "-q", "-j", "0", str(site)], check=True,
                   stdout=subprocess.DEVNULL)
    (target / FINGERPRINT_FILE).write_text(fingerprint + "\n")


def _is_static(path: Path) -> bool:
    """True when an ELF binary requests no program interpreter (runs in any image)."""
    try:
        _elf_interpreter(path)
    except BundleError:
        return True
    return False


def build_bundle(dest: Path) -> None:
    """Fill ``dest`` with the envd bundle, or leave it alone when it is already up to date."""
    dest = Path(dest)
    prefix, binary, version = _interpreter()
    plan = _plan(prefix, binary, version)
    entrypoint = Path(str(files("agent_sandbox.envd") / ENTRYPOINT))
    fingerprint = _fingerprint(plan, [entrypoint])
    stamp = dest / FINGERPRINT_FILE
    if stamp.exists() and stamp.read_text().strip() == fingerprint:
        return
    if dest.is_dir() and os.path.ismount(dest):
        # A mount point (e.g. a shared volume) cannot be swapped: rebuild its contents in place.
        for child in dest.iterdir():
            shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
        _write_tree(dest, plan, binary, version, fingerprint)
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = dest.parent / f".{dest.name}.building-{os.getpid()}"
    retired = dest.parent / f".{dest.name}.old-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        _write_tree(staging, plan, binary, version, fingerprint)
        if dest.exists():
            dest.rename(retired)
        staging.rename(dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(retired, ignore_errors=True)
