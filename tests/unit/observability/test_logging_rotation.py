"""Size-based rotation of log files, with backups and gzip."""

from __future__ import annotations

import dataclasses
import gzip
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agentkeel import ConfigurationError, PipelineError
from agentkeel.observability import (
    LogRotationConfig,
    configure_global_rotation,
    configure_logging,
    flush_logs,
    get_logger,
    logging_stats,
)


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    yield
    configure_logging()


def read_lines(path: Path) -> list[dict[str, Any]]:
    data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    assert data.endswith(b"\n") or not data  # whole lines only
    return [json.loads(line) for line in data.splitlines()]


def log_numbered(count: int, *, start: int = 0, pad: int = 60) -> None:
    log = get_logger("rot")
    for i in range(start, start + count):
        log.info("line", metadata={"i": i, "pad": "p" * pad})


def test_config_defaults_and_validation(tmp_path: Path) -> None:
    config = LogRotationConfig(log_dir=tmp_path)
    assert config.max_bytes == 100 * 1024 * 1024
    assert config.backup_count == 30
    assert config.compression is True
    assert config.filename == "agentkeel.log"
    assert config.path == tmp_path / "agentkeel.log"
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.max_bytes = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        LogRotationConfig(tmp_path)  # type: ignore[call-arg]  # keyword-only


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_bytes": 0}, "max_bytes must be > 0"),
        ({"max_bytes": -5}, "max_bytes must be > 0"),
        ({"max_bytes": 1.5}, "max_bytes must be an int"),
        ({"backup_count": -1}, "backup_count must be >= 0"),
        ({"backup_count": True}, "backup_count must be an int"),
        ({"filename": ""}, "filename"),
        ({"filename": "sub/app.log"}, "bare file name"),
        ({"log_dir": ""}, "log_dir"),
    ],
)
def test_invalid_config_is_rejected(kwargs: dict[str, Any], match: str, tmp_path: Path) -> None:
    args: dict[str, Any] = {"log_dir": tmp_path, **kwargs}
    with pytest.raises(ConfigurationError, match=match):
        LogRotationConfig(**args)


def test_rotation_keeps_backup_count_files_of_whole_lines(tmp_path: Path) -> None:
    config = LogRotationConfig(log_dir=tmp_path, max_bytes=1_000, backup_count=3, compression=False)
    configure_logging(stream=None, rotation=config, batch_size=7)
    log_numbered(100)
    assert flush_logs()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["agentkeel.log", "agentkeel.log.1", "agentkeel.log.2", "agentkeel.log.3"]
    ordered = [tmp_path / f"agentkeel.log.{i}" for i in (3, 2, 1)] + [tmp_path / "agentkeel.log"]
    numbers: list[int] = []
    for path in ordered:
        assert path.stat().st_size <= 1_000
        numbers.extend(line["metadata"]["i"] for line in read_lines(path))
    # The newest lines, in order, none missing or split: the oldest were rotated out.
    assert numbers == list(range(numbers[0], 100))
    assert numbers[0] > 0


def test_rotated_files_are_gzipped_and_readable(tmp_path: Path) -> None:
    config = LogRotationConfig(
        log_dir=tmp_path, max_bytes=2_000, backup_count=2, filename="app.log"
    )
    configure_logging(stream=None, rotation=config)
    log_numbered(60)
    assert flush_logs()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["app.log", "app.log.1.gz", "app.log.2.gz"]
    older = read_lines(tmp_path / "app.log.2.gz")
    newer = read_lines(tmp_path / "app.log.1.gz")
    live = read_lines(tmp_path / "app.log")
    numbers = [x["metadata"]["i"] for x in older + newer + live]
    assert numbers == list(range(numbers[0], 60))


def test_backup_count_zero_starts_the_file_afresh(tmp_path: Path) -> None:
    config = LogRotationConfig(log_dir=tmp_path, max_bytes=500, backup_count=0)
    configure_logging(stream=None, rotation=config)
    log_numbered(20)
    assert flush_logs()
    assert [p.name for p in tmp_path.iterdir()] == ["agentkeel.log"]
    assert read_lines(tmp_path / "agentkeel.log")[-1]["metadata"]["i"] == 19


def test_a_line_longer_than_max_bytes_gets_a_file_of_its_own(tmp_path: Path) -> None:
    config = LogRotationConfig(log_dir=tmp_path, max_bytes=300, backup_count=5, compression=False)
    configure_logging(stream=None, rotation=config)
    log_numbered(1, start=0, pad=10)
    log_numbered(1, start=1, pad=2_000)
    log_numbered(1, start=2, pad=10)
    assert flush_logs()
    assert [x["metadata"]["i"] for x in read_lines(tmp_path / "agentkeel.log.2")] == [0]
    assert [x["metadata"]["i"] for x in read_lines(tmp_path / "agentkeel.log.1")] == [1]
    assert [x["metadata"]["i"] for x in read_lines(tmp_path / "agentkeel.log")] == [2]


def test_rotation_continues_an_existing_file(tmp_path: Path) -> None:
    live = tmp_path / "agentkeel.log"
    live.write_bytes(b'{"old": true}\n' * 60)  # 840 bytes already there
    config = LogRotationConfig(log_dir=tmp_path, max_bytes=1_000, backup_count=1, compression=False)
    configure_logging(stream=None, rotation=config)
    log_numbered(2)
    assert flush_logs()
    assert read_lines(tmp_path / "agentkeel.log.1")[0] == {"old": True}
    assert len(read_lines(live)) >= 1


def test_configure_global_rotation_keeps_the_other_settings(tmp_path: Path) -> None:
    stream = io.StringIO()
    configure_logging(stream=stream, level="WARNING")
    configure_global_rotation(
        config=LogRotationConfig(log_dir=tmp_path / "agents", max_bytes=10_000, backup_count=30)
    )
    log = get_logger("global")
    log.info("filtered out")
    log.warning("kept")
    assert flush_logs()
    assert [json.loads(x)["message"] for x in stream.getvalue().splitlines()] == ["kept"]
    assert [x["message"] for x in read_lines(tmp_path / "agents" / "agentkeel.log")] == ["kept"]
    configure_global_rotation(config=None)
    log.warning("stream only")
    assert flush_logs()
    assert len(read_lines(tmp_path / "agents" / "agentkeel.log")) == 1
    with pytest.raises(ConfigurationError):
        configure_global_rotation(config="daily")  # type: ignore[arg-type]


def test_file_and_rotation_together_are_ambiguous(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="not both"):
        configure_logging(file=tmp_path / "a.log", rotation=LogRotationConfig(log_dir=tmp_path))


def test_a_log_file_moved_away_is_recreated(tmp_path: Path) -> None:
    config = LogRotationConfig(log_dir=tmp_path, max_bytes=10_000, compression=False)
    configure_logging(stream=None, rotation=config)
    log_numbered(1)
    assert flush_logs()
    (tmp_path / "agentkeel.log").rename(tmp_path / "moved.log")
    configure_logging(stream=None, rotation=config)  # reopens (as a restart would)
    log_numbered(1, start=1)
    assert flush_logs()
    assert [x["metadata"]["i"] for x in read_lines(tmp_path / "agentkeel.log")] == [1]


def test_an_unwritable_log_dir_is_reported_not_raised_into_the_caller(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the directory should be")
    configure_logging(stream=None, rotation=LogRotationConfig(log_dir=blocker / "logs"))
    before = logging_stats()
    get_logger("disk").info("cannot be written")  # returns normally
    with pytest.raises(PipelineError):
        flush_logs()
    after = logging_stats()
    assert after.output_errors == before.output_errors + 1
    assert after.dropped_by_reason["output_failed"] >= 1
