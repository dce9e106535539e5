"""Reading inputs and writing outputs safely.

`atomic_write` never leaves a half-written output: the bytes go to a temporary file in the
output's folder, are flushed to disk, and the temporary file is then renamed over the output in
one step. Without `force` an existing output is never replaced, not even by a file that appears
while we write (the final step is a hard link, which refuses to replace anything).
Every failure is a HiercodecError whose one-line message names the path.
"""

from __future__ import annotations

import errno
import os
import secrets
from pathlib import Path

from hiercodec.errors import HiercodecError, OutputExistsError


def _reason(err: OSError) -> str:
    return err.strerror or str(err) or type(err).__name__


def check_output(path: str | os.PathLike, force: bool) -> Path:
    """Fail early (before any long computation) if `path` cannot become an output file."""
    path = Path(path)
    if path.is_dir():
        raise HiercodecError(f"{path} is a directory; give the output a file name")
    if not force and (path.exists() or path.is_symlink()):
        raise OutputExistsError(f"{path} exists; use --force to overwrite")
    folder = path.parent
    if not folder.is_dir():
        raise HiercodecError(f"cannot write {path}: folder {folder} does not exist")
    return path


def _create_temp(folder: Path, name: str) -> tuple[int, str]:
    """A new, empty temporary file beside the output, with the mode new files get (0666 & ~umask)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = os.path.join(folder, f".{name}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary file name", str(folder))


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike, data: bytes, force: bool) -> None:
    """Write `data` to `path` atomically: readers see the old file or the whole new one.

    Raises OutputExistsError if `path` exists and not `force`, HiercodecError for any other
    failure (folder missing, permission, disk full). The temporary file never stays behind.
    """
    path = check_output(path, force)
    folder = path.parent
    try:
        fd, tmp = _create_temp(folder, path.name)
    except OSError as err:
        raise HiercodecError(f"cannot write {path}: {_reason(err)}") from None
    renamed = False
    try:
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            if force:
                os.replace(tmp, path)
                renamed = True
            else:
                try:
                    os.link(tmp, path)  # atomic and never replaces an existing file
                except FileExistsError:
                    raise OutputExistsError(f"{path} exists; use --force to overwrite") from None
                except OSError as err:
                    if err.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV,
                                         errno.EMLINK, errno.ENOSYS):
                        raise
                    # a file system without hard links: check again, then rename
                    if path.exists() or path.is_symlink():
                        raise OutputExistsError(f"{path} exists; use --force to overwrite") from None
                    os.replace(tmp, path)
                    renamed = True
        except HiercodecError:
            raise
        except OSError as err:
            raise HiercodecError(f"cannot write {path}: {_reason(err)}") from None
    finally:
        if not renamed:  # after a hard link, or on any error
            try:
                os.unlink(tmp)
            except OSError:
                pass
    _fsync_dir(folder)


def read_input(path: str | os.PathLike) -> bytes:
    """The bytes of an input file, or a HiercodecError saying why it cannot be read."""
    path = Path(path)
    try:
        if path.is_dir():
            raise HiercodecError(f"{path} is a directory, not a file")
        return path.read_bytes()
    except HiercodecError:
        raise
    except FileNotFoundError:
        raise HiercodecError(f"{path}: no such file") from None
    except PermissionError:
        raise HiercodecError(f"{path}: permission denied") from None
    except IsADirectoryError:
        raise HiercodecError(f"{path} is a directory, not a file") from None
    except MemoryError:
        raise HiercodecError(f"{path} is too large to read into memory") from None
    except OSError as err:
        raise HiercodecError(f"cannot read {path}: {_reason(err)}") from None
