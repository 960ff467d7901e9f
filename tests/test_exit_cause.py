"""The exit cause: the exception line of the last traceback in what TDM wrote (pure)."""

from __future__ import annotations

from exporter.capture import format_record
from exporter.exit_cause import MAX_LENGTH, last_exception, missing_module

FATAL = (
    "Traceback (most recent call last):\n"
    '  File "/tdm/main.py", line 167, in main\n'
    "    await client.run()\n"
    '  File "/tdm/twitch.py", line 1362, in gql_request\n'
    "    raise GQLException(response_json['errors'])\n"
    "    ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n"
    "exceptions.GQLException: [{'message': 'mock fatal inventory error'}]\n"
)


def test_a_gui_traceback_record_gives_its_last_line():
    text = (
        format_record("GUI", "Fatal error encountered:\n", 0.0).decode()
        + format_record("GUI", FATAL, 0.0).decode()
        + format_record("GUI", "Exiting...", 0.0).decode()
    )
    assert last_exception(text) == "exceptions.GQLException: [{'message': 'mock fatal inventory error'}]"


def test_stderr_lines_one_record_each_and_the_last_traceback_wins():
    lines = [
        "Traceback (most recent call last):", '  File "x.py", line 1, in <module>', "ValueError: first",
        "Traceback (most recent call last):", '  File "/tdm/main.py", line 12, in <module>',
        "    import truststore", "ModuleNotFoundError: No module named 'truststore'",
    ]
    text = "".join(format_record("STDERR", line, 0.0).decode() for line in lines)
    cause = last_exception(text)
    assert cause == "ModuleNotFoundError: No module named 'truststore'"
    assert missing_module(cause) == "truststore"
    assert missing_module("ValueError: no") is None and missing_module(None) is None


def test_no_traceback_or_an_unfinished_one_gives_nothing():
    assert last_exception("2026-01-01 00:00:00.000:\t    GUI:\tExiting...\n") is None
    assert last_exception("Traceback (most recent call last):\n  File \"x.py\", line 1\n") is None


def test_secrets_are_redacted_and_the_line_is_bounded():
    proxy = "Traceback (most recent call last):\n  x\nClientHttpProxyError: 407, url='http://user:hunter2@127.0.0.1:8080'\n"
    assert "hunter2" not in last_exception(proxy)
    long = "Traceback (most recent call last):\n  x\nValueError: " + "y" * 1000 + "\n"
    assert len(last_exception(long)) == MAX_LENGTH
