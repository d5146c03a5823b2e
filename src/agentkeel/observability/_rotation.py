"""Log files, optionally rotated by size and compressed.

When the next line would push the file past ``max_bytes``, the file is renamed
to ``<name>.1`` (older backups shift up: ``.1`` → ``.2`` …, the one past
``backup_count`` is deleted) and a fresh file is started. With ``compression``
the fresh backup is gzipped to ``<name>.1.gz``. Rotation happens between lines,
never inside one, so every file holds whole JSON lines; a single line longer
than ``max_bytes`` gets a file of its own.

All of this runs on the log writer thread (or, in ``sync`` mode, under the
writer's lock), so one process never races itself. Several processes rotating
the same file are not supported: give each its own ``filename``.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from agentkeel import _internal
from agentkeel._errors import ConfigurationError
from agentkeel.observability._render import R_LINE, Rendered

MiB = 1024 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class LogRotationConfig:
    """Where log files go and when they rotate.

    ``log_dir / filename`` is the live file. ``max_bytes`` is the size at which it
    rotates; ``backup_count`` how many rotated files are kept (0: none, the file is
    simply started afresh); ``compression`` gzips rotated files.
    """

    log_dir: str | os.PathLike[str]
    max_bytes: int = 100 * MiB
    backup_count: int = 30
    compression: bool = True
    filename: str = "agentkeel.log"

    def __post_init__(self) -> None:
        if isinstance(self.max_bytes, bool) or not isinstance(self.max_bytes, int):
            raise ConfigurationError(f"max_bytes must be an int, got {self.max_bytes!r}")
        if self.max_bytes <= 0:
            raise ConfigurationError(f"max_bytes must be > 0, got {self.max_bytes}")
        if isinstance(self.backup_count, bool) or not isinstance(self.backup_count, int):
            raise ConfigurationError(f"backup_count must be an int, got {self.backup_count!r}")
        if self.backup_count < 0:
            raise ConfigurationError(f"backup_count must be >= 0, got {self.backup_count}")
        if not isinstance(self.filename, str) or not self.filename.strip():
            raise ConfigurationError(f"filename must be a non-empty string, got {self.filename!r}")
        if Path(self.filename).name != self.filename:
            raise ConfigurationError(
                f"filename must be a bare file name, not a path: {self.filename!r} "
                "(put the directory in log_dir)"
            )
        if not str(self.log_dir).strip():
            raise ConfigurationError("log_dir must name a directory, got an empty path")

    @property
    def path(self) -> Path:
        """The live log file."""
        return Path(self.log_dir) / self.filename


class FileOutput:
    """Appends lines to one file; rotates it when given a :class:`LogRotationConfig`.

    A write that fails closes the file, so the next batch reopens it: a log file
    deleted or moved by hand, or a disk that was full for a moment, heals itself.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        rotation: LogRotationConfig | None = None,
    ) -> None:
        self.path = Path(path)
        self._rotation = rotation
        self._file: BinaryIO | None = None
        self._size = 0

    def _open(self) -> BinaryIO:
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle = open(self.path, "ab")  # noqa: SIM115 - kept open across batches
            self._size = os.fstat(handle.fileno()).st_size
            self._file = handle
        return self._file

    def write(self, batch: Sequence[Rendered]) -> None:
        try:
            self._write(batch)
        except BaseException:
            self.close()
            raise

    def _write(self, batch: Sequence[Rendered]) -> None:
        handle = self._open()
        rotation = self._rotation
        if rotation is None:
            handle.write(b"".join([r[R_LINE] for r in batch]))
            handle.flush()
            return
        limit = rotation.max_bytes
        pending: list[bytes] = []
        size = self._size
        for item in batch:
            line = item[R_LINE]
            if size + len(line) > limit and size > 0:
                if pending:
                    handle.write(b"".join(pending))
                    pending = []
                handle = self._rotate(rotation)
                size = 0
            pending.append(line)
            size += len(line)
        if pending:
            handle.write(b"".join(pending))
        handle.flush()
        self._size = size

    def _rotate(self, rotation: LogRotationConfig) -> BinaryIO:
        if self._file is not None:
            self._file.close()
            self._file = None
        base = str(self.path)
        keep = rotation.backup_count
        exists = os.path.exists(base)  # it may have been moved away by hand
        if keep == 0:
            if exists:
                os.remove(base)
        else:
            for i in range(keep, 0, -1):
                for suffix in (".gz", ""):
                    source = f"{base}.{i}{suffix}"
                    if not os.path.exists(source):
                        continue
                    if i == keep:
                        os.remove(source)
                    else:
                        os.replace(source, f"{base}.{i + 1}{suffix}")
            if exists:
                os.replace(base, f"{base}.1")
        handle = self._open()  # new lines go on while the backup is compressed
        if keep and exists and rotation.compression:
            _compress(f"{base}.1")
        return handle

    def close(self) -> None:
        handle, self._file = self._file, None
        if handle is not None:
            handle.close()


def _compress(source: str) -> None:
    """``source`` → ``source.gz``; on failure the uncompressed backup stays."""
    target = source + ".gz"
    partial = target + ".partial"
    try:
        with open(source, "rb") as raw, gzip.open(partial, "wb", compresslevel=6) as packed:
            shutil.copyfileobj(raw, packed, 1024 * 1024)
        os.replace(partial, target)
        os.remove(source)
    except OSError as exc:
        # The lines are safe in the uncompressed backup: report, do not fail the batch.
        with contextlib.suppress(OSError):
            os.remove(partial)
        _internal.report_internal_error("logging.compress", exc, reraise=False)
