"""Why TDM died, in one line: the exception its last traceback ended with. Pure: text in, text out.

TDM prints a fatal error's traceback only to its window (the launcher mirrors it into the captured
output as a `GUI` record), and an interpreter that cannot import TDM's modules prints one on stderr
(`STDERR` records, one per line). Either way the line a user needs is the last one of the traceback,
`aiohttp.client_exceptions.ClientHttpProxyError: 407, ...` or `ModuleNotFoundError: No module named
'aiohttp'`, not "Fatal error encountered:" or "exited with code 1".
"""

from __future__ import annotations

import re

from .redaction import redact

TRACEBACK = "Traceback (most recent call last):"
MAX_LENGTH = 300
# A record header of TDM's log format (framing.HEADER as text): the message follows it.
_HEADER = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3,4}:\t *[A-Z]+:\t")
_MISSING_MODULE = re.compile(r"^ModuleNotFoundError: No module named '([^']+)'")


def last_exception(text: str) -> str | None:
    """The exception line of the last traceback in `text` (log records or plain lines), secrets
    redacted and cut to MAX_LENGTH; None without a complete traceback."""
    lines = [_HEADER.sub("", line, count=1) for line in text.splitlines()]
    starts = [index for index, line in enumerate(lines) if line.strip() == TRACEBACK]
    if not starts:
        return None
    # Frames, source lines and carets are indented; the first line that is not ends the traceback.
    for line in lines[starts[-1] + 1 :]:
        if line.strip() and not line[0].isspace():
            cause = redact(line.strip())
            return cause if len(cause) <= MAX_LENGTH else cause[: MAX_LENGTH - 1] + "…"
    return None


def missing_module(cause: str | None) -> str | None:
    """The module an ImportError-ending traceback could not find ('aiohttp'), else None."""
    match = _MISSING_MODULE.match(cause or "")
    return match.group(1) if match else None
