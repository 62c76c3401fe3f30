"""Generate the configuration reference (Markdown) from the pydantic models.

``docs/configuration.md`` is this module's output, committed; a test regenerates it and fails
when the file and the models disagree, so the reference never drifts from the code.
"""

from __future__ import annotations

import enum
import types
import typing
from typing import Any

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

HEADER = """# Configuration reference

Generated from the pydantic models by `plantmrv config-doc` (a test keeps this file in sync).
One YAML file holds the sections its service needs; `plantmrv check-config FILE` validates it
and names file, key path and line of every error. Strings may use `${VAR}` or
`${VAR:-default}` to take values (secrets above all) from the environment.
"""


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        names = [_type_name(a) for a in args if a is not type(None)]
        suffix = " or null" if type(None) in args else ""
        return " | ".join(dict.fromkeys(names)) + suffix
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in args)
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin in (list, tuple, set, frozenset):
        return f"list of {_type_name(args[0])}" if args else "list"
    if origin is dict:
        return f"map of {_type_name(args[0])} to {_type_name(args[1])}" if args else "map"
    if annotation is SecretStr:
        return "secret string"
    if isinstance(annotation, type):
        if issubclass(annotation, BaseModel):
            return annotation.__name__
        if issubclass(annotation, enum.Enum):
            return " | ".join(repr(m.value) for m in annotation)
        return {"str": "string", "int": "integer", "float": "number", "bool": "boolean"}.get(annotation.__name__, annotation.__name__)
    return str(annotation).replace("typing.", "")


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "**required**"
    if field.default_factory is not None:
        try:
            value = field.default_factory()
        except TypeError:
            return "(computed)"
    else:
        value = field.default
    if value is PydanticUndefined:
        return "**required**"
    if isinstance(value, BaseModel):
        return "(see section)"
    if isinstance(value, enum.Enum):
        value = value.value
    if value is None:
        return "null"
    if isinstance(value, str) and value == "":
        return '""'
    return f"`{value}`"


def _nested_models(annotation: Any) -> list[type[BaseModel]]:
    found = []
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    for arg in typing.get_args(annotation):
        found.extend(_nested_models(arg))
    return found


def _describe(model: type[BaseModel], path: str, out: list[str], seen: set) -> None:
    rows = []
    nested: list[tuple[str, type[BaseModel]]] = []
    for name, field in model.model_fields.items():
        key = field.alias or name
        desc = (field.description or "").replace("|", "\\|").replace("\n", " ")
        type_name = _type_name(field.annotation).replace("|", "\\|")
        default = _default(field).replace("|", "\\|")
        rows.append(f"| `{key}` | {type_name} | {default} | {desc} |")
        for sub in _nested_models(field.annotation):
            is_list = typing.get_origin(field.annotation) is list or any(
                typing.get_origin(a) is list for a in typing.get_args(field.annotation)
            )
            nested.append((f"{path}.{key}[]" if is_list else f"{path}.{key}", sub))
    out.append(f"\n### `{path}` ({model.__name__})\n")
    doc = (model.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")
    if doc and not doc.startswith("!!!") and "Usage docs" not in doc:
        out.append(doc + "\n")
    if rows:
        out.append("| key | type | default | description |\n|---|---|---|---|")
        out.extend(rows)
    else:
        out.append("(no keys)")
    for sub_path, sub in nested:
        if (sub_path, sub) in seen:
            continue
        seen.add((sub_path, sub))
        _describe(sub, sub_path, out, seen)


def generate() -> str:
    from plantmrv.config import root_model

    root = root_model()
    out = [HEADER]
    for name, field in root.model_fields.items():
        out.append(f"\n## `{name}`\n")
        for model in _nested_models(field.annotation):
            _describe(model, name, out, set())
    return "\n".join(out).rstrip() + "\n"
