"""Safe reading and extraction of model.tar.gz: no traversal, links, special files or bombs.

Every member is checked before anything is written; an archive that fails any check is
refused whole, naming the member and the reason.
"""

from __future__ import annotations

import shutil
import tarfile
from pathlib import Path, PurePosixPath

from llmship.errors import PackageError

MAX_TOTAL_BYTES = 512 * 1024**3  # larger than any model one endpoint serves
MAX_RATIO = 200  # weights barely compress; a 200x ratio is a bomb, not a model
RATIO_FLOOR = 64 * 1024**2  # tiny archives of text may compress well; ignore below this


def check_members(
    archive: tarfile.TarFile, compressed_bytes: int, source: str
) -> list[tarfile.TarInfo]:
    """The archive's members, or PackageError for the first unsafe one."""
    members = archive.getmembers()
    total = 0
    for member in members:
        name = member.name
        where = f"{source}: member {name!r}"
        path = PurePosixPath(name)
        if path.is_absolute() or name.startswith(("/", "\\")):
            raise PackageError(f"{where} has an absolute path; archives must hold relative paths")
        if ".." in path.parts:
            raise PackageError(f"{where} climbs out of the archive with '..'")
        if member.issym() or member.islnk():
            raise PackageError(f"{where} is a link (to {member.linkname!r}); store the file itself")
        if not (member.isfile() or member.isdir()):
            raise PackageError(f"{where} is a device, fifo or other special file")
        total += member.size
        if total > MAX_TOTAL_BYTES:
            raise PackageError(f"{source} unpacks to more than {MAX_TOTAL_BYTES} bytes; refused")
    if total > RATIO_FLOOR and total > MAX_RATIO * max(compressed_bytes, 1):
        raise PackageError(
            f"{source} unpacks to {total} bytes from {compressed_bytes}: a ratio over {MAX_RATIO}x "
            "looks like a decompression bomb; refused"
        )
    return members


def safe_extract(tar_path: str | Path, destination: str | Path) -> Path:
    """Extract a model.tar.gz into `destination` (a new directory) after checking every member."""
    tar_path, destination = Path(tar_path), Path(destination)
    if destination.exists() and any(destination.iterdir()):
        raise PackageError(f"{destination} is not empty; extract into a new directory")
    try:
        with tarfile.open(tar_path, mode="r:*") as archive:
            members = check_members(archive, tar_path.stat().st_size, tar_path.name)
            destination.mkdir(parents=True, exist_ok=True)
            root = destination.resolve()
            for member in members:
                target = (root / member.name).resolve()
                if root not in target.parents and target != root:
                    raise PackageError(f"{tar_path.name}: member {member.name!r} escapes {root}")
                if member.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with archive.extractfile(member) as source, target.open("wb") as sink:
                    shutil.copyfileobj(source, sink, length=1024 * 1024)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise PackageError(f"cannot read {tar_path} as a tar.gz archive: {exc}") from None
    return destination
