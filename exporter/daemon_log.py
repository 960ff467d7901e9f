"""Our own log output, through loguru. Every message is redacted before any sink sees it."""

from __future__ import annotations

import sys

from loguru import logger

from .redaction import redact

LEVELS = ("TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL")
FORMAT = "{time:YYYY-MM-DD HH:mm:ss.SSS} {level: <7} {message}"


def _redact_record(record) -> None:
    record["message"] = redact(record["message"])


def setup(level: str = "INFO", file=None) -> None:
    """Send our log to stderr (and a file, if given) at `level`."""
    level = level.upper()
    if level not in LEVELS:
        raise ValueError(f"--log.level: expected one of {', '.join(LEVELS)}, got {level!r}")
    logger.remove()
    logger.configure(patcher=_redact_record)
    logger.add(sys.stderr, level=level, format=FORMAT, backtrace=False, diagnose=False)
    if file is not None:
        logger.add(file, level=level, format=FORMAT, rotation="10 MB", retention=5, backtrace=False, diagnose=False)
