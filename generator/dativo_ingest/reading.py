"""Reading a file once it is open: the one place that checks it is a regular file and reads it whole. The
callers open it with their own rules (through symlinks or not) and say what a non-regular file means."""

from __future__ import annotations

import os
import stat


def read_opened(fd: int, limit: int | None = None) -> tuple[bytes | None, os.stat_result]:
    """Read the file open at `fd` (opened O_NONBLOCK: a FIFO never blocks), then close it: (its bytes, None
    when it is not a regular file; its status as opened). With `limit`, at most limit + 1 bytes are read:
    enough to tell the file is larger."""
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return None, info
        cap = info.st_size + 1 if limit is None else min(info.st_size, limit) + 1
        data = os.read(fd, cap)  # a byte more than fstat saw (or the limit): a shorter read is the whole file
        if len(data) < cap:
            return data, info
        chunks, total = [data], len(data)
        while limit is None or total <= limit:
            chunk = os.read(fd, 1 << 20 if limit is None else limit + 1 - total)
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        return b"".join(chunks), info
    finally:
        os.close(fd)
