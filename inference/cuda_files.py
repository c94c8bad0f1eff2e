"""What the files of a CUDA stack say, read without loading or importing them (no GPU, no driver needed): the
``cuda.bindings`` files' version (:func:`bindings_version`), the CUDA libraries mapped into a process
(:func:`loaded_cuda_libraries`, from ``/proc/<pid>/maps``) and a shared library's ``NEEDED`` / ``RPATH`` / ``RUNPATH``
(:func:`elf_dynamic`). :mod:`inference.cuda_stack` checks what they find.

Standard library only.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

#: CUDA libraries whose loaded copies ``--session`` reports (soname stem -> what it is).
CUDA_LIBRARIES = ("libcudart", "libcublas", "libcublasLt", "libcudnn", "libcufft", "libcurand", "libnvinfer")
_LIB_RE = re.compile(r"/(lib(?:cudart|cublasLt|cublas|cudnn|cufft|curand|nvinfer))\.so\.(\d+)[\d.]*$")
_VERSION_RE = re.compile(r"""^__version__\s*=\s*(?:version\s*=\s*)?["']([^"']+)["']""", re.M)


def bindings_version(search_path: list[str] | None = None) -> str | None:
    """The version of the ``cuda.bindings`` files that ``import cuda.bindings`` would load (``cuda/bindings/_version.py``,
    read, not imported: importing needs a driver), or None when absent. Unlike the distributions' metadata, this is
    what runs when two distributions wrote the same files.

    Args:
        search_path: folders to look in (default ``sys.path``).
    """
    for folder in search_path if search_path is not None else sys.path:
        f = Path(folder or ".") / "cuda" / "bindings" / "_version.py"
        try:
            m = _VERSION_RE.search(f.read_text())
        except OSError:
            continue
        if m:
            return m.group(1)
    return None


def loaded_cuda_libraries(maps: str) -> dict[str, list[str]]:
    """CUDA libraries mapped into a process (the text of ``/proc/<pid>/maps``): soname stem (``libcudnn``) -> the
    distinct files (a real path and its major, e.g. ``/usr/lib/x86_64-linux-gnu/libcudnn.so.9.1.0``)."""
    found: dict[str, list[str]] = {}
    for line in maps.splitlines():
        path = line.split(None, 5)[-1] if line.count(" ") >= 5 else ""
        m = _LIB_RE.search(path)
        if m and path not in found.get(m.group(1), []):
            found.setdefault(m.group(1), []).append(path)
    return found


_DT_NEEDED, _DT_STRTAB, _DT_RPATH, _DT_RUNPATH = 1, 5, 15, 29


def elf_dynamic(path: str | Path) -> dict[str, list[str]]:
    """``NEEDED``, ``RPATH`` and ``RUNPATH`` of a 64-bit little-endian ELF shared library (what ``readelf -d`` shows),
    read with the standard library: the ``PT_DYNAMIC`` segment's entries, their strings from ``DT_STRTAB`` (a virtual
    address, mapped to a file offset through the ``PT_LOAD`` segments). ELF-64 object file format, "Dynamic Section".

    Raises:
        ValueError: not a 64-bit little-endian ELF file, or no dynamic segment.
    """
    import mmap
    import struct

    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        if m[:4] != b"\x7fELF" or m[4] != 2 or m[5] != 1:
            raise ValueError(f"{path}: not a 64-bit little-endian ELF file")
        phoff, phentsize, phnum = struct.unpack_from("<Q", m, 32)[0], *struct.unpack_from("<HH", m, 54)
        loads, dynamic = [], None
        for i in range(phnum):
            p_type, _, p_offset, p_vaddr, _, p_filesz, _, _ = struct.unpack_from("<IIQQQQQQ", m, phoff + i * phentsize)
            if p_type == 1:  # PT_LOAD
                loads.append((p_vaddr, p_offset, p_filesz))
            elif p_type == 2:  # PT_DYNAMIC
                dynamic = (p_offset, p_filesz)
        if dynamic is None:
            raise ValueError(f"{path}: no dynamic segment")
        entries = []
        for off in range(dynamic[0], dynamic[0] + dynamic[1], 16):
            tag, val = struct.unpack_from("<qQ", m, off)
            if tag == 0:  # DT_NULL
                break
            entries.append((tag, val))
        strtab = next(v for t, v in entries if t == _DT_STRTAB)
        base = next(off + strtab - va for va, off, size in loads if va <= strtab < va + size)

        def string(index: int) -> str:
            end = m.find(b"\0", base + index)
            return m[base + index : end].decode()

        out: dict[str, list[str]] = {"needed": [], "rpath": [], "runpath": []}
        for tag, val in entries:
            key = {_DT_NEEDED: "needed", _DT_RPATH: "rpath", _DT_RUNPATH: "runpath"}.get(tag)
            if key:
                out[key].append(string(val))
        return out
