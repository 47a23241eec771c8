"""A corpus of hostile environment tarballs, each paired with the refusal it must meet.

Every builder writes one tarball and may aim at ``outside`` (a folder the extractor
must never write into). ``CORPUS`` maps a case name to (builder, words of the refusal).
"""

from __future__ import annotations

import gzip
import io
import shutil
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path

Builder = Callable[[Path, Path], Path]


def _info(
    name: str, kind: bytes = tarfile.REGTYPE, mode: int = 0o644, link: str = ""
) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.linkname = link
    return info


def _write(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w:gz", format=tarfile.GNU_FORMAT) as archive:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            archive.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def dotdot(path: Path, outside: Path) -> Path:
    return _write(path, [(_info("lib/../../escaped.txt"), b"bad")])


def absolute(path: Path, outside: Path) -> Path:
    return _write(path, [(_info(str(outside / "absolute.txt")), b"bad")])


def symlinked_dir(path: Path, outside: Path) -> Path:
    """A folder symlink that stays inside, then a write through it (``a/up -> ..``, ``a/up/x``)."""
    return _write(
        path,
        [
            (_info("a", tarfile.DIRTYPE, 0o755), None),
            (_info("a/up", tarfile.SYMTYPE, link=".."), None),
            (_info("a/up/x"), b"bad"),
        ],
    )


def symlink_out(path: Path, outside: Path) -> Path:
    """A symlink to a folder outside, then a file written through it."""
    return _write(
        path,
        [
            (_info("out", tarfile.SYMTYPE, link="../" * 12 + str(outside).lstrip("/")), None),
            (_info("out/through-link.txt"), b"bad"),
        ],
    )


def long_path_chain(path: Path, outside: Path) -> Path:
    """The CVE-2025-4517 pattern: nested long names and a symlink chain that overflow
    PATH_MAX so ``os.path.realpath`` stops resolving, then a link out and a write through it."""
    component = "d" * 247
    steps = "abcdefghijklmnop"
    members: list[tuple[tarfile.TarInfo, bytes | None]] = []
    prefix = ""
    for step in steps:
        members.append((_info(prefix + component, tarfile.DIRTYPE, 0o755), None))
        members.append((_info(prefix + step, tarfile.SYMTYPE, link=component), None))
        prefix += component + "/"
    link_path = "/".join(steps) + "/" + "l" * 254
    members.append((_info(link_path, tarfile.SYMTYPE, link="../" * len(steps)), None))
    members.append(
        (_info("escape", tarfile.SYMTYPE, link=link_path + "/.." * 12 + str(outside)), None)
    )
    members.append((_info("escape/cve.txt"), b"bad"))
    return _write(path, members)


def hardlink_out(path: Path, outside: Path) -> Path:
    target = outside / "victim.txt"
    return _write(path, [(_info("h", tarfile.LNKTYPE, link=str(target)), None)])


def hardlink_dotdot(path: Path, outside: Path) -> Path:
    return _write(path, [(_info("h", tarfile.LNKTYPE, link="../../victim.txt"), None)])


def device(path: Path, outside: Path) -> Path:
    info = _info("dev/sda", tarfile.CHRTYPE, 0o600)
    info.devmajor, info.devminor = 8, 0
    return _write(path, [(info, None)])


def fifo(path: Path, outside: Path) -> Path:
    return _write(path, [(_info("pipe", tarfile.FIFOTYPE, 0o600), None)])


def setuid(path: Path, outside: Path) -> Path:
    return _write(path, [(_info("bin/su", mode=0o4755), b"#!/bin/sh\n")])


def sparse_10gb(path: Path, outside: Path) -> Path:
    """A real GNU sparse member of 10 GB (a few hundred bytes compressed)."""
    if shutil.which("tar") is None:  # pragma: no cover - GNU tar is in every Debian
        raise RuntimeError("GNU tar is needed to build a sparse member")
    source = path.parent / f"{path.name}.src"
    source.mkdir()
    with open(source / "big", "wb") as stream:
        stream.truncate(10 * 10**9)
    subprocess.run(["tar", "--sparse", "-czf", str(path), "-C", str(source), "big"], check=True)
    shutil.rmtree(source)
    return path


def many_files(path: Path, outside: Path, count: int = 100_008) -> Path:
    """Over 100k empty files in a few hundred KB."""
    with tarfile.open(path, "w:gz", compresslevel=1) as archive:
        info = tarfile.TarInfo("f")
        for index in range(count):
            info.name = f"f/{index}"
            archive.addfile(info)
    return path


def ratio_bomb(path: Path, outside: Path, size: int = 96 << 20) -> Path:
    """96 MiB of zeros in about 100 KB: a zip-bomb-like ratio."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as archive:
        info = tarfile.TarInfo("zeros")
        info.size = size
        archive.addfile(info, _Zeros(size))
    path.write_bytes(gzip.compress(raw.getvalue(), compresslevel=9))
    return path


class _Zeros(io.RawIOBase):
    def __init__(self, size: int) -> None:
        self.left = size

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        self.left -= n
        return bytes(n)


CORPUS: dict[str, tuple[Builder, str]] = {
    "dotdot": (dotdot, "'..' in the path leaves the environment"),
    "absolute": (absolute, "absolute path"),
    "symlinked-dir": (symlinked_dir, "below the symlink 'a/up'"),
    "symlink-out": (symlink_out, "below the symlink 'out'"),
    "cve-2025-4517": (long_path_chain, "longer than 1024 characters"),
    "hardlink-out": (hardlink_out, "links outside the environment (absolute path)"),
    "hardlink-dotdot": (hardlink_dotdot, "links outside the environment"),
    "device": (device, "device files are not allowed"),
    "fifo": (fifo, "fifos are not allowed"),
    "setuid": (setuid, "setuid/setgid bits are not allowed"),
    "sparse-10gb": (sparse_10gb, "more than 8589934592 bytes (max_bytes)"),
    "100k-files": (many_files, "more than 100000 members (max_files)"),
    "ratio-bomb": (ratio_bomb, "(max_ratio)"),
}


def build_corpus(folder: Path, outside: Path) -> dict[str, Path]:
    """Every hostile tarball of ``CORPUS`` written into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    return {
        name: builder(folder / f"{name}.tar.gz", outside) for name, (builder, _) in CORPUS.items()
    }


def snapshot(root: Path) -> set[str]:
    """Every path below ``root`` (to show nothing was written outside)."""
    return {str(p.relative_to(root)) for p in root.rglob("*")}
