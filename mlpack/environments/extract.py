"""Safe tarball extraction that does not rely on the interpreter's tar filter.

``extract_tarball(path, destination, limits)`` unpacks into a folder that must be new
and empty, in two passes:

1. **Plan** (nothing written): every member header is read and checked. Names are
   normalised and must stay inside the root (no absolute paths, no ``..``); no member
   may sit below a symlink of the archive (a symlinked folder cannot be written
   through); symlink targets are resolved *logically* against the archive's own
   symlinks (hop and length limits, no filesystem ``realpath``, so the over-long chain
   of CVE-2025-4517 cannot get past); hard links must name a regular file extracted
   before them; devices, fifos and setuid/setgid files are refused. Limits: member
   count, path length, total unpacked bytes (sparse members at their full size) and
   the unpacked/compressed ratio. Python's ``data`` filter, where it exists, checks
   each member again as a second line.
2. **Extract**: folders and files first (``O_NOFOLLOW``, ``O_EXCL`` for new files,
   modes masked to ``0o755``/``0o644``-style: no setuid, no group/other write), with
   the bytes actually written counted against the limit; hard links next; symlinks
   last.

Every refusal is an ``InvalidEnvironment`` naming the member and the rule.
"""

from __future__ import annotations

import os
import stat
import tarfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ..errors import InvalidEnvironment

_CHUNK = 1 << 20
_MAX_SYMLINK_HOPS = 40
_NAME_MAX = 255


@dataclass(frozen=True)
class ExtractionLimits:
    """Bounds on what one environment tarball may unpack to.

    Parameters:
        max_bytes: total unpacked bytes (sparse members count at their full size).
        max_files: number of members (files, folders and links).
        max_path_length: characters in a member's path or a link's target.
        max_ratio: unpacked bytes per compressed byte, checked once more than
            ``ratio_floor`` bytes are declared (a zip-bomb guard).
        ratio_floor: unpacked bytes below which the ratio is not checked.
    """

    max_bytes: int = 8 << 30
    max_files: int = 100_000
    max_path_length: int = 1024
    max_ratio: float = 200.0
    ratio_floor: int = 64 << 20


DEFAULT_LIMITS = ExtractionLimits()


@dataclass
class _Plan:
    directories: list[tuple[tarfile.TarInfo, PurePosixPath]] = field(default_factory=list)
    files: list[tuple[tarfile.TarInfo, PurePosixPath]] = field(default_factory=list)
    hardlinks: list[tuple[tarfile.TarInfo, PurePosixPath, PurePosixPath]] = field(
        default_factory=list
    )
    symlinks: list[tuple[tarfile.TarInfo, PurePosixPath]] = field(default_factory=list)
    total_bytes: int = 0


def extract_tarball(
    path: Path, destination: Path, limits: ExtractionLimits = DEFAULT_LIMITS
) -> None:
    """Unpack the tarball at ``path`` into the new, empty folder ``destination``, or refuse."""
    if any(destination.iterdir()):
        raise InvalidEnvironment(f"cannot unpack into {destination}: the folder is not empty")
    compressed = max(1, path.stat().st_size)
    with _open(path) as archive:
        plan = _plan(archive, destination, limits, compressed)
        _extract(archive, destination, plan, limits)


def _open(path: Path) -> tarfile.TarFile:
    try:
        return tarfile.open(path, "r:*")
    except (tarfile.TarError, OSError, EOFError) as error:
        raise InvalidEnvironment(
            f"environment tarball {path} is not a readable tarball: {error}"
        ) from None


def _refuse(member: tarfile.TarInfo, why: str) -> InvalidEnvironment:
    return InvalidEnvironment(f"environment tarball member {member.name!r} refused: {why}")


def _normalise(member: tarfile.TarInfo, limits: ExtractionLimits) -> PurePosixPath:
    name = member.name
    if len(name) > limits.max_path_length:
        raise _refuse(
            member, f"path longer than {limits.max_path_length} characters (max_path_length)"
        )
    if "\x00" in name:
        raise _refuse(member, "NUL byte in the path")
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise _refuse(member, "absolute path")
    parts = [part for part in PurePosixPath(name).parts if part not in ("", ".")]
    if ".." in parts:
        raise _refuse(member, "'..' in the path leaves the environment")
    if any(len(part.encode()) > _NAME_MAX for part in parts):
        raise _refuse(member, f"a path component longer than {_NAME_MAX} bytes")
    return PurePosixPath(*parts) if parts else PurePosixPath()


def _plan(
    archive: tarfile.TarFile, destination: Path, limits: ExtractionLimits, compressed: int
) -> _Plan:
    plan = _Plan()
    kinds: dict[PurePosixPath, str] = {}  # normalised path → "dir" | "file" | "link"
    symlinks: dict[PurePosixPath, str] = {}
    members: list[tarfile.TarInfo] = []
    try:
        for member in archive:
            if len(members) >= limits.max_files:
                raise InvalidEnvironment(
                    f"environment tarball has more than {limits.max_files} members (max_files)"
                )
            name = _normalise(member, limits)
            _check_type_and_mode(member)
            if name == PurePosixPath():
                if not member.isdir():
                    raise _refuse(member, "only a folder may name the root")
                continue
            _check_place(member, name, kinds)
            _add(plan, member, name, kinds, symlinks, limits, compressed)
            members.append(member)
    except tarfile.TarError as error:
        raise InvalidEnvironment(f"environment tarball is corrupt: {error}") from None
    for member, name in plan.symlinks:
        _check_symlink(member, name, symlinks, limits)
    # Nothing may be written below a symlink, whatever the order of members.
    for path in kinds:
        for parent in path.parents:
            if parent in symlinks:
                raise InvalidEnvironment(
                    f"environment tarball member {str(path)!r} refused: "
                    f"it is below the symlink {str(parent)!r}"
                )
    _second_line(members, destination)
    return plan


def _check_place(
    member: tarfile.TarInfo, name: PurePosixPath, kinds: dict[PurePosixPath, str]
) -> None:
    """No member below a symlink or a file; no name reused with another kind."""
    for parent in list(name.parents)[:-1]:
        if kinds.get(parent) == "link":
            raise _refuse(member, f"it is below the symlink {str(parent)!r}")
        if kinds.get(parent) == "file":
            raise _refuse(member, f"it is below the file {str(parent)!r}")
    previous = kinds.get(name)
    kind = _kind(member)
    if previous is not None and not (previous == kind and kind in ("dir", "file")):
        raise _refuse(member, f"it appears twice (as a {previous} and as a {kind})")


def _kind(member: tarfile.TarInfo) -> str:
    return "dir" if member.isdir() else "link" if member.issym() else "file"


def _add(
    plan: _Plan,
    member: tarfile.TarInfo,
    name: PurePosixPath,
    kinds: dict[PurePosixPath, str],
    symlinks: dict[PurePosixPath, str],
    limits: ExtractionLimits,
    compressed: int,
) -> None:
    if member.isdir():
        plan.directories.append((member, name))
    elif member.isreg():
        plan.total_bytes += member.size
        _check_size(member, plan.total_bytes, limits, compressed)
        plan.files.append((member, name))
    elif member.islnk():
        target = _normalise_link_target(member, limits)
        if kinds.get(target) != "file" or target in symlinks:
            raise _refuse(
                member, f"hard link to {member.linkname!r}, which is not a regular file before it"
            )
        plan.hardlinks.append((member, name, target))
    else:  # symlink
        symlinks[name] = member.linkname
        plan.symlinks.append((member, name))
    kinds[name] = _kind(member)


def _second_line(members: list[tarfile.TarInfo], destination: Path) -> None:
    """Python's own ``data`` filter (3.11.4+), after mlpack's checks, as a second line."""
    data_filter = getattr(tarfile, "data_filter", None)
    if data_filter is None:
        return
    for member in members:
        try:
            data_filter(member, str(destination))
        except tarfile.FilterError as error:
            raise _refuse(member, str(error)) from None


def _check_type_and_mode(member: tarfile.TarInfo) -> None:
    if member.ischr() or member.isblk():
        raise _refuse(member, "device files are not allowed")
    if member.isfifo():
        raise _refuse(member, "fifos are not allowed")
    if not (member.isreg() or member.isdir() or member.issym() or member.islnk()):
        raise _refuse(member, f"unsupported member type {member.type!r}")
    if member.mode & (stat.S_ISUID | stat.S_ISGID):
        raise _refuse(member, "setuid/setgid bits are not allowed")


def _check_size(
    member: tarfile.TarInfo, total: int, limits: ExtractionLimits, compressed: int
) -> None:
    if total > limits.max_bytes:
        raise _refuse(
            member,
            f"the environment would unpack to more than {limits.max_bytes} bytes (max_bytes)",
        )
    if total > limits.ratio_floor and total / compressed > limits.max_ratio:
        raise _refuse(
            member,
            f"the environment would unpack to {total} bytes from {compressed} compressed bytes, "
            f"more than {limits.max_ratio:g} times (max_ratio)",
        )


def _normalise_link_target(member: tarfile.TarInfo, limits: ExtractionLimits) -> PurePosixPath:
    target = tarfile.TarInfo(member.linkname)
    try:
        return _normalise(target, limits)
    except InvalidEnvironment as error:
        why = str(error).split(" refused: ", 1)[-1]
        raise _refuse(
            member, f"hard link to {member.linkname!r} links outside the environment ({why})"
        ) from None


def _check_symlink(
    member: tarfile.TarInfo,
    name: PurePosixPath,
    symlinks: dict[PurePosixPath, str],
    limits: ExtractionLimits,
) -> None:
    """Resolve ``member``'s target against the archive's symlinks; it must stay inside."""
    target = member.linkname
    if not target:
        raise _refuse(member, "empty symlink target")
    if len(target) > limits.max_path_length:
        raise _refuse(member, f"symlink target longer than {limits.max_path_length} characters")
    if target.startswith(("/", "\\")):
        raise _refuse(member, f"symlink to the absolute path {target!r}")
    resolved: list[str] = list(name.parent.parts)
    pending = [part for part in target.split("/") if part not in ("", ".")]
    hops = 0
    while pending:
        part = pending.pop(0)
        if part == "..":
            if not resolved:
                raise _refuse(member, f"symlink to {target!r} links outside the environment")
            resolved.pop()
            continue
        resolved.append(part)
        here = PurePosixPath(*resolved)
        if len(str(here)) > limits.max_path_length:
            raise _refuse(member, f"symlink to {target!r} resolves to an over-long path")
        if here in symlinks:
            hops += 1
            if hops > _MAX_SYMLINK_HOPS:
                raise _refuse(member, f"symlink to {target!r} goes through too many symlinks")
            inner = symlinks[here]
            if inner.startswith(("/", "\\")):
                raise _refuse(member, f"symlink to {target!r} goes through an absolute symlink")
            resolved.pop()
            pending = [p for p in inner.split("/") if p not in ("", ".")] + pending


def _extract(
    archive: tarfile.TarFile, destination: Path, plan: _Plan, limits: ExtractionLimits
) -> None:
    root = str(destination)
    for _, name in plan.directories:
        os.makedirs(os.path.join(root, name), mode=0o755, exist_ok=True)
    written = 0
    for member, name in plan.files:
        target = os.path.join(root, name)
        os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
        source = archive.extractfile(member)
        if source is None:
            raise _refuse(member, "no data")
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
        descriptor = os.open(target, flags, 0o600)
        try:
            if not stat.S_ISREG(os.fstat(descriptor).st_mode):
                raise _refuse(member, "would overwrite something that is not a regular file")
            while True:
                block = source.read(_CHUNK)
                if not block:
                    break
                written += len(block)
                if written > limits.max_bytes:
                    raise _refuse(member, f"more than {limits.max_bytes} bytes written (max_bytes)")
                os.write(descriptor, block)
            os.fchmod(descriptor, _file_mode(member.mode))
        finally:
            os.close(descriptor)
        os.utime(target, (member.mtime, member.mtime), follow_symlinks=False)
    for _, name, target_name in plan.hardlinks:
        link = os.path.join(root, name)
        os.makedirs(os.path.dirname(link), mode=0o755, exist_ok=True)
        if os.path.lexists(link):
            os.unlink(link)
        os.link(os.path.join(root, target_name), link, follow_symlinks=False)
    for member, name in plan.symlinks:
        link = os.path.join(root, name)
        os.makedirs(os.path.dirname(link), mode=0o755, exist_ok=True)
        if os.path.lexists(link):
            raise _refuse(member, "a symlink would replace another member")
        os.symlink(member.linkname, link)
    for member, name in reversed(plan.directories):
        path = os.path.join(root, name)
        os.chmod(path, _dir_mode(member.mode), follow_symlinks=False)


def _file_mode(mode: int) -> int:
    """Owner may read and write; nobody gets setuid/setgid/sticky or group/other write."""
    return (mode & 0o755) | 0o600


def _dir_mode(mode: int) -> int:
    return (mode & 0o755) | 0o700
