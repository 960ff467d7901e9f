"""The settings editor behind `GET/PUT /api/settings`: TDM's settings, edited in the daemon's YAML file.

The YAML file stays the one source of truth. A save changes only the keys it names, inside the
`settings` section, through a round-trip YAML library (ruamel.yaml) so the user's other keys, their
order and comments survive. The result is checked by the same validator as the file itself
(`config.parse_config`) before it replaces the file atomically; the daemon's usual reload applies it.
"""

from __future__ import annotations

import difflib
import hashlib
import io
import json
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import yaml
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import CommentMark, YAMLError
from ruamel.yaml.scalarstring import DoubleQuotedScalarString, SingleQuotedScalarString
from ruamel.yaml.tokens import CommentToken

from . import safefile, yamlfile
from .config import SETTINGS_SCHEMA, Config, ConfigError, parse_config
from .redaction import redact
from .settings_file import KEYS, TdmSettings, plain

EDITABLE = tuple(key for key in KEYS if key in SETTINGS_SCHEMA)  # TDM's settings, in settings.json's order
NO_CONFIG_FILE = (
    "the daemon was started without a config file (a bare `run` or the command line only): "
    "start it with --config.file FILE to edit settings here"
)
_STR_TAG = "tag:yaml.org,2002:str"
_RESOLVER = yaml.resolver.Resolver()  # the YAML 1.1 rules our loader (PyYAML) reads plain scalars by


@dataclass(frozen=True)
class Answer:
    """An HTTP answer without the HTTP: status, JSON body, extra headers."""

    status: int
    body: Mapping[str, Any]
    headers: Mapping[str, str] = field(default_factory=dict)


def etag_of(data: bytes) -> str:
    return '"' + hashlib.sha256(data).hexdigest()[:32] + '"'


def shown(key: str, value: Any) -> Any:
    """A value as the page may show it: a proxy's user:password@ is blanked out."""
    return redact(value) if key == "proxy" and isinstance(value, str) else value


def _yaml_value(value: Any) -> Any:
    """A JSON value as ruamel should write it, so that PyYAML reads back the same type: a string
    PyYAML would take for something else (`yes`, `1.5`, `null`, `2026-01-01`) is quoted."""
    if isinstance(value, str):
        if _RESOLVER.resolve(yaml.ScalarNode, value, (True, False)) != _STR_TAG or value != value.strip():
            return DoubleQuotedScalarString(value)
        return value
    if isinstance(value, list):
        seq = CommentedSeq(_yaml_value(item) for item in value)
        seq.fa.set_block_style()
        return seq
    return value


def _round_trip(original: str) -> YAML:
    rt = YAML()  # typ="rt": keeps comments, key order and quoting
    rt.preserve_quotes = True
    rt.width = 4096  # never re-wrap the user's long lines
    mapping, offset = guess_indent(original)  # write it the way it is written, so untouched lines stay as they are
    rt.indent(mapping=mapping, sequence=offset + 2, offset=offset)
    return rt


_KEY_ONLY = re.compile(r"^( *)[^\s#-][^:#]*:\s*(#.*)?$")  # "  priority:" (its value on the next lines)
_DASH = re.compile(r"^( *)- ")
_INDENTED_KEY = re.compile(r"^( +)[^\s#-][^:#]*:")


def guess_indent(text: str) -> tuple[int, int]:
    """(mapping indent, dash offset under its key) as the file uses them; (2, 0) by default."""
    mapping, offset, key_column = None, None, None
    for line in text.splitlines():
        if mapping is None and (match := _INDENTED_KEY.match(line)):
            mapping = len(match.group(1))
        if offset is None and key_column is not None and (match := _DASH.match(line)):
            offset = max(0, len(match.group(1)) - key_column)
        match = _KEY_ONLY.match(line)
        key_column = len(match.group(1)) if match else (key_column if line.strip().startswith("#") else None)
    return mapping or 2, offset or 0


def edited_text(original: str, changes: Mapping[str, Any]) -> str:
    """`original` with `settings.<key>` set to each value of `changes` (None removes the key, so TDM's own
    value applies again). Raises ruamel's YAMLError for text it cannot read."""
    rt = _round_trip(original)
    document = rt.load(original) if original.strip() else None
    if document is None:
        document = CommentedMap()
    if not isinstance(document, CommentedMap):
        raise ValueError("the config file is not a mapping of sections")
    section = document.get("settings")
    if not isinstance(section, CommentedMap):
        section = CommentedMap()
        if "settings" in document:
            document["settings"] = section  # `settings:` with nothing under it
        else:
            _append(document, "settings", section)
    for key, value in changes.items():
        if value is None:
            section.pop(key, None)
        elif isinstance(value, list) and isinstance(section.get(key), CommentedSeq):
            _edit_list(section[key], value)
        elif key in section:
            section[key] = _yaml_value(value)
        else:
            _append(section, key, _yaml_value(value))
    if not section:
        document.pop("settings")
    out = io.StringIO()
    rt.dump(document, out)
    return out.getvalue()


def _edit_list(seq: CommentedSeq, values: list[Any]) -> None:
    """Turn `seq` into `values` by the fewest deletes and inserts, so the items that stay keep their comments."""
    old = [str(item) for item in seq]
    quoted = next((type(item) for item in seq if isinstance(item, (DoubleQuotedScalarString, SingleQuotedScalarString))), None)
    matcher = difflib.SequenceMatcher(a=old, b=[str(value) for value in values], autojunk=False)
    for tag, i1, i2, j1, j2 in reversed(matcher.get_opcodes()):
        if tag == "equal":
            continue
        trailing = _detach_trailing(seq) if i2 == len(seq) else None  # blank lines after the list stay after it
        del seq[i1:i2]
        for offset, value in enumerate(values[j1:j2]):
            new = _yaml_value(value)
            if quoted is not None and isinstance(value, str) and type(new) is str:
                new = quoted(value)  # quoted like the items around it
            seq.insert(i1 + offset, new)
        if trailing is not None:
            _attach_trailing(seq, trailing)


def _append(mapping: CommentedMap, key: str, value: Any) -> None:
    """Add `key` at the end of `mapping`, before the blank lines and comments that separate it from what follows."""
    trailing = _detach_trailing(mapping)
    mapping[key] = value
    if trailing is not None:
        _attach_trailing(mapping, trailing)


def _last_slot(node: Any) -> tuple[list[Any], int] | None:
    """The comment slot after the last line of `node`: ruamel keeps what follows a value (blank lines, the next
    key's comments) on the last item."""
    if isinstance(node, CommentedMap) and node:
        last, index = list(node)[-1], 2
    elif isinstance(node, CommentedSeq) and node:
        last, index = len(node) - 1, 0
    else:
        return None
    child = node[last]
    if isinstance(child, (CommentedMap, CommentedSeq)) and len(child):
        return _last_slot(child)
    slot = node.ca.items.setdefault(last, [None, None, None, None])
    return slot, index


def _detach_trailing(node: Any) -> str | None:
    found = _last_slot(node)
    token = found[0][found[1]] if found else None
    if token is None or not isinstance(token.value, str):
        return None
    own, newline, rest = token.value.partition("\n")
    if not rest:
        return None
    token.value = own + newline  # the line's own comment stays
    return rest


def _attach_trailing(node: Any, text: str) -> None:
    found = _last_slot(node)
    if found is None:
        return
    slot, index = found
    if slot[index] is None:
        slot[index] = CommentToken("\n" + text, CommentMark(0), None)
    else:
        slot[index].value += text


def field_errors(message: str, name: str) -> dict[str, str]:
    """The validator's `file:line: settings.key[i]: message` lines, by settings key. Lines about other
    sections (the file was already wrong there) go under "_file"."""
    errors: dict[str, list[str]] = {}
    for line in message.splitlines():
        rest = line[len(name) + 1 :].split(": ", 1)[-1] if line.startswith(name + ":") else line
        path, _, text = rest.partition(": ")
        key = "_file"
        if path.startswith("settings."):
            key = path[len("settings.") :].split("[", 1)[0]
            path = path[len("settings.") :]
        errors.setdefault(key, []).append(f"{path}: {text}" if text and "[" in path else (text or rest))
    return {key: "; ".join(texts) for key, texts in errors.items()}


def atomic_replace(path: Path, data: bytes) -> None:
    """Replace `path` with `data`, keeping its permissions: a crash leaves the old or the new file, never
    a part. A symlinked config file stays a symlink: its target is replaced."""
    target = path.resolve()
    mode = target.stat().st_mode & 0o7777 if target.exists() else 0o600
    safefile.replace_atomically(target, data, mode)


class SettingsEditor:
    """Reads and edits the `settings` section of the daemon's config file.

    `current` gives the running config, `tdm_settings` what TDM's settings.json holds (keys the YAML
    leaves alone keep TDM's own value), `games` the games TDM can mine, `record` writes the audit event,
    and `apply` makes the daemon load the file again (its usual reload path: one TDM restart).
    """

    def __init__(
        self,
        config_file: Path | None,
        current: Callable[[], Config],
        tdm_settings: Callable[[], TdmSettings | None],
        games: Callable[[], list[str]],
        record: Callable[[str, dict[str, Any]], None],
        apply: Callable[[str], tuple[bool, str]],
    ) -> None:
        self.config_file = config_file
        self._current = current
        self._tdm_settings = tdm_settings
        self._games = games
        self._record = record
        self._apply = apply
        self._lock = threading.Lock()  # one save at a time: read, check, write

    # -- reading --------------------------------------------------------------------------------

    def read(self) -> Answer:
        configured = dict(self._current().settings)
        headers: dict[str, str] = {}
        reason = None if self.config_file is not None else NO_CONFIG_FILE
        if self.config_file is not None:
            try:
                data = safefile.read_regular(self.config_file, yamlfile.MAX_FILE_BYTES)  # no FIFO to block on
            except OSError as error:
                reason = f"cannot read {self.config_file}: {error.strerror or error}"
            else:
                headers["ETag"] = etag_of(data)
                try:  # what the file says now, which is what a save edits
                    configured = dict(parse_config(data.decode("utf-8"), self.config_file.name).settings)
                except (ConfigError, UnicodeDecodeError):
                    pass  # the daemon keeps running on its last good config; show that
        tdm = self._tdm_settings() or TdmSettings()
        values = {key: plain(configured[key]) if key in configured else plain(getattr(tdm, key)) for key in EDITABLE}
        body = {
            "editable": reason is None,
            "reason": reason,
            "file": str(self.config_file) if self.config_file is not None else None,
            "settings": {key: shown(key, value) for key, value in values.items()},
            "configured": [key for key in EDITABLE if key in configured],  # the rest is TDM's own value
            "games": self._game_choices(values),
        }
        return Answer(200, body, headers)

    def _game_choices(self, values: Mapping[str, Any]) -> list[str]:
        names = list(self._games())
        for key in ("priority", "exclude"):
            names.extend(values.get(key) or ())
        return sorted(set(map(str, names)), key=str.casefold)

    # -- saving -------------------------------------------------------------------------------------

    def update(self, body: bytes, content_type: str | None, if_match: str | None, user: str | None) -> Answer:
        if self.config_file is None:
            return Answer(409, {"error": NO_CONFIG_FILE})
        if (content_type or "").split(";", 1)[0].strip().lower() != "application/json":
            return Answer(415, {"error": "send the changes as JSON (Content-Type: application/json)"})
        try:
            changes = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return Answer(400, {"error": "the body is not valid JSON"})
        if not isinstance(changes, dict) or not changes:
            return Answer(400, {"error": "expected a JSON object of the settings to change"})
        unknown = {key: f"unknown setting (expected one of {', '.join(EDITABLE)})" for key in changes if key not in EDITABLE}
        if unknown:
            return Answer(422, {"errors": unknown})
        with self._lock:
            return self._save(changes, if_match, user)

    def _save(self, changes: dict[str, Any], if_match: str | None, user: str | None) -> Answer:
        path = self.config_file
        try:
            data = safefile.read_regular(path, yamlfile.MAX_FILE_BYTES)
        except OSError as error:
            return Answer(500, {"error": f"cannot read {path}: {error.strerror or error}"})
        etag = etag_of(data)
        if if_match is not None and if_match.strip() not in (etag, "*"):
            return Answer(409, {"error": f"{path.name} changed since it was read: load the settings again", "etag": etag},
                          {"ETag": etag})
        try:
            before = parse_config(data.decode("utf-8"), path.name).settings
        except (ConfigError, UnicodeDecodeError) as error:
            return Answer(422, {"errors": {"_file": f"{path.name} is invalid now; fix it first:\n{error}"}}, {"ETag": etag})
        changes = self._keep_hidden_proxy(changes, before)
        try:
            text = edited_text(data.decode("utf-8"), changes)
        except (YAMLError, ValueError) as error:
            return Answer(422, {"errors": {"_file": f"{path.name}: {error}"}}, {"ETag": etag})
        try:
            after = parse_config(text, path.name).settings  # the very validator `run` uses on the file
        except ConfigError as error:
            return Answer(422, {"errors": field_errors(str(error), path.name)}, {"ETag": etag})
        changed = {
            key: [shown(key, plain(before.get(key))), shown(key, plain(after.get(key)))]
            for key in EDITABLE
            if before.get(key) != after.get(key)
        }
        if not changed:
            return Answer(200, {"changed": {}, "applied": False, "message": "no change"}, {"ETag": etag})
        new_data = text.encode("utf-8")
        atomic_replace(path, new_data)
        self._record("settings_edited", {"source": "web", "user": user, "file": str(path), "changes": changed})
        ok, message = self._apply("web")
        return Answer(200, {"changed": changed, "applied": ok, "message": message}, {"ETag": etag_of(new_data)})

    @staticmethod
    def _keep_hidden_proxy(changes: dict[str, Any], before: Mapping[str, Any]) -> dict[str, Any]:
        """The page shows the proxy with its password blanked out; sending that back keeps the real one."""
        proxy = changes.get("proxy")
        old = before.get("proxy")
        if isinstance(proxy, str) and isinstance(old, str) and proxy != old and proxy == redact(old):
            changes = {key: value for key, value in changes.items() if key != "proxy"}
        return changes
