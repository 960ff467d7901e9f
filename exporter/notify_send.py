"""Apprise, for one URL at a time: check a URL, mask it for display, send one message and say what went wrong.

Apprise URLs carry tokens (a Discord webhook's, a Telegram bot's, an ntfy topic). They stay in the
config: everything we show, log or store names a URL by its masked form (`discord://****`), and an
error text from Apprise has every part of the URL blanked out before anyone sees it.

Apprise is imported on first use: it is large, and most commands never notify.
"""

from __future__ import annotations

import logging
import re
import threading
from urllib.parse import parse_qsl, urlsplit

MASK = "****"
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_URLS_IN_TEXT = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://\S+")
_lock = threading.Lock()
_apprise = None  # the module, once imported and quietened
_captured = threading.local()


def mask(url: str) -> str:
    """What a user may see of a URL: its scheme only."""
    match = _SCHEME.match(url)
    return f"{match.group(1).lower()}://{MASK}" if match else MASK


def check_url(url: str) -> None:
    """Raise ValueError (naming the URL masked) unless Apprise knows how to send to it."""
    if _SCHEME.match(url) is None:
        raise ValueError(f"not an Apprise URL (expected service://...): {mask(url)}")
    if _module().Apprise.instantiate(url, asset=_asset()) is None:
        raise ValueError(f"not a valid Apprise URL (unknown service, or a part is missing): {mask(url)}")


# Apprise's message types (a service shows them as a colour or an icon): good news, bad news, the rest.
TYPES = ("info", "success", "warning", "failure")


def send(url: str, title: str, body: str, kind: str = "info") -> str | None:
    """Send one message, in this thread; None when it was delivered, else why not (URL parts masked).

    The service's plugin is called directly: `Apprise.notify` would hand the call to a process-wide
    thread pool that is never shut down. A fresh plugin per message: Apprise throttles per instance.
    """
    service = _module().Apprise.instantiate(url, asset=_asset())
    if service is None:
        return f"not a valid Apprise URL: {mask(url)}"
    _captured.lines = []
    try:
        delivered = service.notify(body=body, title=title, notify_type=kind if kind in TYPES else "info")
    except Exception as error:  # a plugin bug must not end the delivery thread
        return scrub(f"{type(error).__name__}: {error}", url)
    finally:
        lines, _captured.lines = _captured.lines, None
    if delivered:
        return None
    return scrub("; ".join(lines[-2:]) or "not delivered", url)


class _Capture(logging.Handler):
    """Apprise's warnings of the send running in this thread, for its error text."""

    def emit(self, record: logging.LogRecord) -> None:
        lines = getattr(_captured, "lines", None)
        if lines is not None:
            try:
                lines.append(record.getMessage())
            except Exception:  # a bad format string in a plugin's log call
                pass


def scrub(text: str, url: str) -> str:
    """`text` without any part of `url` (host, user, password, path segments, query values) or any URL."""
    text = _URLS_IN_TEXT.sub(lambda m: mask(m.group(0)), text)
    for part in sorted(url_parts(url), key=len, reverse=True):
        text = text.replace(part, MASK)
    return text


def url_parts(url: str) -> set[str]:
    rest = _SCHEME.sub("", url)
    try:
        split = urlsplit("x://" + rest)
        host = split.hostname or ""
    except ValueError:
        return {rest} if rest else set()
    parts = {split.netloc, host, split.username or "", split.password or ""}
    parts.update(segment for segment in split.path.split("/"))
    parts.update(value for _, value in parse_qsl(split.query))
    return {part for part in parts if len(part) >= 3}


def _module():
    global _apprise
    with _lock:
        if _apprise is None:
            import apprise

            # Apprise logs through `logging` and some lines name hosts or paths: keep them out of our
            # stderr and log. A failed send's warnings become its error text, scrubbed.
            quiet = logging.getLogger("apprise")
            quiet.propagate = False
            quiet.setLevel(logging.WARNING)
            quiet.addHandler(_Capture(logging.WARNING))
            _apprise = apprise
        return _apprise


def _asset():
    # Apprise may keep per-service state on disk; ours stays in memory, no files under ~.
    return _module().AppriseAsset(storage_mode="memory")
