"""Read a YAML file safely, keeping the line of every value so errors can name it.

Plain `yaml.safe_load` keeps the last of two duplicate keys without a word and turns a game
called `no` into False; composing the node tree first lets us refuse the first and undo the second.
It also lets us refuse a YAML bomb before anything expands it: a file larger than MAX_FILE_BYTES,
aliases that would add more than MAX_ALIAS_EXPANSION values (billion laughs), an alias to itself, or
nesting deeper than Python's recursion allows. Files are read through `safefile` (no FIFO, no device).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from . import safefile

Path_ = tuple  # a path into the document: ("settings", "priority", 2)

_BOOL_TAG = "tag:yaml.org,2002:bool"
# What yaml.safe_load would build; anything else (python/object, custom tags) is refused.
_SAFE_TAGS = frozenset(
    "tag:yaml.org,2002:" + name for name in ("map", "seq", "str", "int", "float", "bool", "null", "timestamp")
)
_SCALARS = yaml.SafeLoader("")  # only its scalar constructors are used
MAX_FILE_BYTES = 1 << 20  # our config files are a few KiB
MAX_ALIAS_EXPANSION = 10_000  # values aliases may add to a document; a real config adds a few dozen


class YamlError(ValueError):
    """One line: `file:line: message`."""


@dataclass(frozen=True)
class Document:
    name: str  # the file's name as shown in messages
    value: Any
    lines: dict[Path_, int]  # 1-based line of each value
    raw_scalars: dict[Path_, str]  # the source text of scalars YAML 1.1 turned into booleans
    errors: tuple[str, ...] = ()  # with keep_going: `file:line: path: duplicate key` (the first value is kept)
    key_lines: dict[Path_, int] = field(default_factory=dict)  # 1-based line of each mapping key

    def key_line(self, path: Path_) -> int:
        """The line of the key that names `path` (a value may start on a later line than its key)."""
        line = self.key_lines.get(path)
        return line if line is not None else self.line(path)

    def where_key(self, path: Path_) -> str:
        return f"{self.name}:{self.key_line(path)}"

    def line(self, path: Path_) -> int:
        while path and path not in self.lines:
            path = path[:-1]
        return self.lines.get(path, 1)

    def where(self, path: Path_) -> str:
        return f"{self.name}:{self.line(path)}"


def read(path: Path) -> str:
    """The text of a YAML file; YamlError (`name: ...`) if it is missing, not a regular file, too large or not UTF-8."""
    name = Path(path).name
    try:
        return safefile.read_text(path, MAX_FILE_BYTES)
    except FileNotFoundError:
        raise YamlError(f"{name}: file not found: {path}") from None
    except OSError as error:
        raise YamlError(f"{name}: cannot read: {safefile.describe(error)}") from None
    except UnicodeDecodeError as error:
        raise YamlError(f"{name}: cannot read: not UTF-8 (byte {error.start})") from None


def load(path: Path, *, keep_going: bool = False) -> Document:
    return parse(read(path), Path(path).name, keep_going=keep_going)


def parse(text: str, name: str, *, keep_going: bool = False) -> Document:
    """The document; a duplicate key raises YamlError, or with `keep_going` is listed in `errors` so a caller
    can report it with every other problem."""
    try:
        node = compose(text, name)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error)
        raise YamlError(f"{name}{line}: invalid YAML: {problem}") from None
    document = Document(name, None, {}, {}, key_lines={})
    errors: list[str] | None = [] if keep_going else None
    try:
        value = _convert(node, (), document, errors) if node is not None else None
    except RecursionError:
        raise YamlError(f"{name}: invalid YAML: nested too deeply") from None
    return replace(document, value=value, errors=tuple(errors or ()))


def compose(text: str, name: str) -> yaml.Node | None:
    """`yaml.compose`, refusing what would blow up when expanded: YamlError (`name:line: invalid YAML: ...`)
    for a document too large, too deep, or whose aliases expand too far; yaml.YAMLError for a syntax error."""
    if len(text) > MAX_FILE_BYTES:
        raise YamlError(f"{name}: invalid YAML: larger than {MAX_FILE_BYTES} bytes")
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except RecursionError:
        raise YamlError(f"{name}: invalid YAML: nested too deeply") from None
    if node is not None:
        _check_aliases(node, text, name)
    return node


def safe_load(text: str, name: str) -> Any:
    """`yaml.safe_load` with `compose`'s refusals."""
    node = compose(text, name)
    if node is None:
        return None
    try:
        return yaml.SafeLoader("").construct_document(node)
    except RecursionError:
        raise YamlError(f"{name}: invalid YAML: nested too deeply") from None


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [child for pair in node.value for child in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _check_aliases(root: yaml.Node, text: str, name: str) -> None:
    """An alias is the node it names, shared: count the values the document has once every alias is expanded,
    without expanding (each node's expanded size once, bottom-up), and refuse a node that contains itself."""
    expanded: dict[int, int] = {}
    open_nodes: set[int] = set()  # on the current path from the root
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            expanded[key] = 1 + sum(expanded[id(child)] for child in _children(node))
            open_nodes.discard(key)
            continue
        if key in expanded:
            continue
        open_nodes.add(key)
        stack.append((node, True))
        for child in _children(node):
            if id(child) in open_nodes:
                raise YamlError(f"{name}:{_first_alias_line(text)}: invalid YAML: an alias refers to a value that contains it")
            if id(child) not in expanded:
                stack.append((child, False))
    if expanded[id(root)] - len(expanded) > MAX_ALIAS_EXPANSION:
        raise YamlError(
            f"{name}:{_first_alias_line(text)}: invalid YAML: aliases expand to more than "
            f"{MAX_ALIAS_EXPANSION} extra values (refused as a YAML bomb)"
        )


def _first_alias_line(text: str) -> int:
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.AliasEvent):
            return event.start_mark.line + 1
    return 1


def _convert(node: yaml.Node, path: Path_, document: Document, errors: list[str] | None) -> Any:
    """The value of `node`, filling in `document`'s line maps as it goes."""
    name, lines, raw = document.name, document.lines, document.raw_scalars
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
            document.key_lines[path + (key,)] = key_node.start_mark.line + 1
            result[key] = _convert(value_node, path + (key,), document, errors)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_convert(item, path + (i,), document, errors) for i, item in enumerate(node.value)]
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
