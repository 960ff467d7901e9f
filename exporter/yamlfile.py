"""Read a YAML file safely, keeping the line of every value so errors can name it.

Plain `yaml.safe_load` keeps the last of two duplicate keys without a word and turns a game
called `no` into False; composing the node tree first lets us refuse the first and undo the second.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

Path_ = tuple  # a path into the document: ("settings", "priority", 2)

_BOOL_TAG = "tag:yaml.org,2002:bool"
# What yaml.safe_load would build; anything else (python/object, custom tags) is refused.
_SAFE_TAGS = frozenset(
    "tag:yaml.org,2002:" + name for name in ("map", "seq", "str", "int", "float", "bool", "null", "timestamp")
)
_SCALARS = yaml.SafeLoader("")  # only its scalar constructors are used


class YamlError(ValueError):
    """One line: `file:line: message`."""


@dataclass(frozen=True)
class Document:
    name: str  # the file's name as shown in messages
    value: Any
    lines: dict[Path_, int]  # 1-based line of each value
    raw_scalars: dict[Path_, str]  # the source text of scalars YAML 1.1 turned into booleans
    errors: tuple[str, ...] = ()  # with keep_going: `file:line: path: duplicate key` (the first value is kept)

    def line(self, path: Path_) -> int:
        while path and path not in self.lines:
            path = path[:-1]
        return self.lines.get(path, 1)

    def where(self, path: Path_) -> str:
        return f"{self.name}:{self.line(path)}"


def load(path: Path, *, keep_going: bool = False) -> Document:
    name = Path(path).name
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise YamlError(f"{name}: file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise YamlError(f"{name}: cannot read: {error}") from None
    return parse(text, name, keep_going=keep_going)


def parse(text: str, name: str, *, keep_going: bool = False) -> Document:
    """The document; a duplicate key raises YamlError, or with `keep_going` is listed in `errors` so a caller
    can report it with every other problem."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error)
        raise YamlError(f"{name}{line}: invalid YAML: {problem}") from None
    lines: dict[Path_, int] = {}
    raw: dict[Path_, str] = {}
    errors: list[str] | None = [] if keep_going else None
    value = _convert(node, (), name, lines, raw, errors) if node is not None else None
    return Document(name, value, lines, raw, tuple(errors or ()))


def _convert(node: yaml.Node, path: Path_, name: str, lines: dict, raw: dict, errors: list[str] | None) -> Any:
    lines[path] = node.start_mark.line + 1
    if node.tag not in _SAFE_TAGS:
        raise YamlError(f"{name}:{lines[path]}: invalid YAML: the tag {node.tag} is not allowed")
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise YamlError(f"{name}:{key_node.start_mark.line + 1}: {_dotted(path)}: keys must be plain names")
            key = key_node.value
            if key in result:
                duplicate = f"{name}:{key_node.start_mark.line + 1}: {_dotted(path + (key,))}: duplicate key"
                if errors is None:
                    raise YamlError(duplicate)
                errors.append(duplicate)
                continue
            result[key] = _convert(value_node, path + (key,), name, lines, raw, errors)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_convert(item, path + (i,), name, lines, raw, errors) for i, item in enumerate(node.value)]
    if node.tag == _BOOL_TAG:
        raw[path] = node.value
    return _SCALARS.construct_object(node)  # the plain scalar, as safe_load would give it


def _dotted(path: Path_) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top)"


def dotted(path: Path_) -> str:
    """`settings.priority[2]` for ("settings", "priority", 2)."""
    return _dotted(path)
