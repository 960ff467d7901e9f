"""TDM's own settings.json code, taken from its real source (../shared/tdm-src), not re-implemented.

Importing TDM's `utils` whole needs its GUI stack (tkinter, Pillow); the settings code needs none of it. So
the definitions are lifted out of TDM's files by name and run as they are: `utils.json_load`, `json_save`,
`merge_json`, `_deserialize`, `_serialize`, `_remove_missing`, `SERIALIZE_ENV`, `_MISSING`;
`constants.PriorityMode` and `DEFAULT_LANG`; `settings.default_settings`. `yarl.URL` is the real one too.

`TDM.<name>` loads them at first use, inside a test: without ../shared the test skips (fails with CI=true).
"""

from __future__ import annotations

import __future__
import ast
import copy
import json
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path
from typing import Any, Callable, Mapping, TypeVar, cast

from conftest import need_tdm_source

_WANTED = {
    "constants.py": {"PriorityMode", "DEFAULT_LANG"},
    "utils.py": {
        "_serialize", "_MISSING", "SERIALIZE_ENV", "_remove_missing", "_deserialize", "merge_json", "json_load", "json_save",
    },
    "settings.py": {"default_settings"},
}


def _names(node: ast.stmt) -> set[str]:
    if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
        return {node.name}
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return {node.target.id}
    if isinstance(node, ast.Assign):
        return {target.id for target in node.targets if isinstance(target, ast.Name)}
    return set()


def _load(source: Path) -> dict[str, Any]:
    from yarl import URL  # TDM's own URL type (aiohttp's dependency)

    namespace: dict[str, Any] = {
        "__name__": "tdm_source", "json": json, "datetime": datetime, "timezone": timezone, "Enum": Enum,
        "Path": Path, "Any": Any, "Mapping": Mapping, "Callable": Callable, "cast": cast, "URL": URL,
        "JsonType": dict, "_JSON_T": TypeVar("_JSON_T"),
    }
    for file, wanted in _WANTED.items():
        path = source / file
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        body = [node for node in tree.body if _names(node) & wanted]
        found = set().union(*(_names(node) for node in body))
        if found != wanted:
            raise AssertionError(f"{path}: not found in TDM's source: {sorted(wanted - found)}")
        code = compile(ast.Module(body, []), str(path), "exec", flags=__future__.annotations.compiler_flag, dont_inherit=True)
        exec(code, namespace)  # TDM's own definitions, with their file names in tracebacks
    return namespace


class _RealTdm:
    _namespace: dict[str, Any] | None = None

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name.startswith("_pytest"):  # pytest's collection probing, not a test's use
            raise AttributeError(name)
        if _RealTdm._namespace is None:
            _RealTdm._namespace = _load(need_tdm_source())
        if name == "default_settings":  # TDM passes its module-level dict; a fresh copy per call here
            return lambda: copy.deepcopy(_RealTdm._namespace["default_settings"])
        return _RealTdm._namespace[name]


TDM = _RealTdm()
