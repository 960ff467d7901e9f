"""Helpers for tests that need a tool from outside Python: headless Chromium, promtool, openssl.

One rule for every such tool (`unavailable`): when it is missing, the test skips, except with CI=true,
where it fails. Also here: PromQL's metric names, test certificates, and an HTTP(S) client that
shows the answer's headers. Fixtures and the daemon helpers most tests share are in conftest.py.
"""

from __future__ import annotations

import http.client
import os
import re
import shutil
import ssl
import subprocess
from base64 import b64encode
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest

try:  # tests that drive the browser take `expect` from here too
    from playwright.sync_api import Browser, expect, sync_playwright
except ImportError as error:  # pragma: no cover - depends on the machine
    expect = sync_playwright = None
    PLAYWRIGHT_MISSING = f"playwright is not installed ({error}); pip install playwright"
else:
    PLAYWRIGHT_MISSING = ""

REPO = Path(__file__).resolve().parents[1]


def unavailable(reason: str, ci_reason: str | None = None) -> NoReturn:
    """Skip the test for want of a tool; with CI=true, where every tool must be there, fail it instead
    (with `ci_reason`, by default `reason` and "; CI must have it")."""
    if os.environ.get("CI") == "true":
        pytest.fail(ci_reason if ci_reason is not None else reason + "; CI must have it")
    pytest.skip(reason)


# -- headless Chromium (Debian's `chromium` through the PyPI package `playwright`) ------------------

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"  # the system browser: no `playwright install`
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_unavailable() -> str:
    """Why headless Chromium cannot run here, or "" when it can."""
    if PLAYWRIGHT_MISSING:
        return PLAYWRIGHT_MISSING
    if not os.access(CHROMIUM, os.X_OK):
        return f"no Chromium at {CHROMIUM}; apt-get install chromium"
    return ""


def headless_chromium(in_ci: str) -> Iterator[Browser]:
    """The body of a module's `browser` fixture: `yield from headless_chromium(...)`.

    Yields a launched headless Chromium and closes it afterwards. Without Playwright or Chromium the
    test skips; with CI=true it fails with "`in_ci`: <why>"."""
    reason = chromium_unavailable()
    if reason:
        unavailable(reason, f"{in_ci}: {reason}")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


def console_page(browser: Browser) -> Iterator:
    """The body of a module's `page` fixture: `yield from console_page(browser)`.

    A page of its own (en-GB, 1280x900) that ends the test failed if it threw or logged a console error.
    Chromium logs every 4xx answer ("Failed to load resource"): the tests check those answers themselves."""
    context = browser.new_context(locale="en-GB", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("console", lambda message: problems.append(f"console {message.type}: {message.text}")
            if message.type == "error" and "Failed to load resource" not in message.text else None)
    yield page
    context.close()
    assert not problems, problems


# -- promtool (Debian's `prometheus`) and PromQL --------------------------------------------------

EXPORTED_METRICS = REPO / "tests" / "data" / "exported_metrics.txt"


def promtool() -> str:
    """promtool's path; without it the test skips (fails with CI=true)."""
    path = shutil.which("promtool")
    if path is None:
        unavailable("promtool not found (Debian: apt-get install prometheus)")
    return path


def run_promtool(*args: str | Path) -> str:
    """`promtool args...` in the repository; its output, after asserting it succeeded."""
    result = subprocess.run(
        [promtool(), *map(str, args)], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"promtool {' '.join(map(str, args))} failed:\n{output}"
    return output


def exported_metrics() -> set[str]:
    """The metric names the exporter exports (tests/data/exported_metrics.txt)."""
    lines = EXPORTED_METRICS.read_text().splitlines()
    return {line.strip() for line in lines if line.strip() and not line.startswith("#")}


_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGES = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_OFFSET = re.compile(r"\boffset\s+-?\w+")
_NUMBERS = re.compile(r"(?<![\w:])(?:0x[0-9a-fA-F]+|\d+(?:\.\d*)?(?:[eE][+-]?\d+)?)")
_IDENTIFIER = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_KEYWORDS = {"and", "or", "unless", "bool", "inf", "nan", "atan2", "offset"}


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (functions, keywords and labels left out)."""
    text = _STRINGS.sub('""', expr)
    for pattern in (_MATCHERS, _RANGES, _GROUPING, _OFFSET, _NUMBERS):
        text = pattern.sub(" ", text)
    names = set()
    for match in _IDENTIFIER.finditer(text):
        if text[match.end():].lstrip().startswith("("):
            continue  # a function or an aggregation
        if match.group().lower() not in _KEYWORDS:
            names.add(match.group())
    return names


# -- test certificates (the openssl command) and a client ------------------------------------------

EC_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


def require_openssl() -> None:
    """Without the openssl command the test skips (fails with CI=true)."""
    if shutil.which("openssl") is None:
        reason = "the openssl command is needed to make a test certificate"
        unavailable(reason, reason)


def openssl(folder: Path, *args: str) -> None:
    """`openssl args...` in `folder`; raises if it fails."""
    subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True, timeout=60)


def self_signed(folder: Path, name: str, subject: str, *extensions: str) -> None:
    """name.key (a new EC key) and name.crt, self-signed for two days, with `-addext` extensions."""
    added = [arg for extension in extensions for arg in ("-addext", extension)]
    openssl(
        folder, "req", "-x509", *EC_KEY, "-keyout", f"{name}.key", "-out", f"{name}.crt", "-days", "2",
        "-subj", subject, *added,
    )


def basic_auth(user: str, password: str) -> dict[str, str]:
    """The Authorization header of HTTP basic auth."""
    return {"Authorization": "Basic " + b64encode(f"{user}:{password}".encode()).decode()}


def request(
    port: int,
    path: str = "/metrics",
    headers: dict[str, str] | None = None,
    method: str = "GET",
    context: ssl.SSLContext | None = None,
    body: bytes | None = None,
) -> tuple[int, http.client.HTTPMessage, bytes]:
    """One request to 127.0.0.1:`port`, over TLS when given a `context`: (status, headers, body)."""
    if context is None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    else:
        connection = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=context)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()
