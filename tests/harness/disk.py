"""A real small filesystem for the full-disk scenarios: a tmpfs of a given size mounted
(as root, or through sudo) on a directory of the test's, that a test fills to the last
byte with a filler file and frees again."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path


def _sudo() -> list:
    return [] if os.geteuid() == 0 else ["sudo", "-n"]


class SmallFilesystem:
    def __init__(self, mountpoint: Path, size: int):
        self.path = Path(mountpoint)
        self.size = size
        self.filler = self.path / "filler"
        self.mounted = False

    def __enter__(self) -> "SmallFilesystem":
        self.path.mkdir(parents=True, exist_ok=True)
        subprocess.run([*_sudo(), "mount", "-t", "tmpfs", "-o", f"size={self.size},mode=0777",
                        "tmpfs", str(self.path)], check=True, capture_output=True, timeout=30)
        self.mounted = True
        return self

    def __exit__(self, *exc) -> None:
        if self.mounted:
            subprocess.run([*_sudo(), "umount", "-l", str(self.path)], check=False, capture_output=True,
                           timeout=30)
            self.mounted = False

    def free_bytes(self) -> int:
        st = os.statvfs(self.path)
        return st.f_bavail * st.f_frsize

    def fill(self) -> int:
        """Writes the filler until the filesystem has no byte left; returns its size."""
        n = 0
        chunk = b"\0" * (1 << 16)
        with open(self.filler, "ab", buffering=0) as f:
            for size in (1 << 16, 4096, 512, 1):
                while True:
                    try:
                        n += f.write(chunk[:size])
                    except OSError:
                        break
        return n

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)
