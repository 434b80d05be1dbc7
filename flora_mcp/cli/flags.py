"""The FLORA settings flags, generated from `Settings.model_fields`: a new setting is one line in `config.py`.

Each field becomes `--<field-name>` (dashes for underscores) with the field's type (`X | None` as `X`, a `Literal` as
choices, a `bool` as `--name` / `--no-name`), and help made of the field's description, its `FLORA_*` variable and its
default. A field marked `NOT_A_FLAG` (the secrets) gets no flag; a secret type without that mark is a bug, refused.
"""

from __future__ import annotations

import argparse
import types
import typing
from collections.abc import Callable
from typing import Any

from pydantic import SecretStr
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

from flora_mcp.config import Settings

__all__ = ["add_setting_flags", "flag_fields", "flag_name", "setting_overrides"]


def flag_fields(model: type[BaseSettings] = Settings) -> dict[str, FieldInfo]:
    """The settings that have a flag, by field name, in the order `model` declares them.

    Raises:
        TypeError: a secret field is not marked `NOT_A_FLAG` (it would leak through the process list).
    """
    fields: dict[str, FieldInfo] = {}
    for name, info in model.model_fields.items():
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        is_flag = extra.get("flag", True) is not False
        if is_flag and _value_type(info.annotation) is SecretStr:
            raise TypeError(f"{model.__name__}.{name} is a secret: mark it json_schema_extra=NOT_A_FLAG")
        if is_flag:
            fields[name] = info
    return fields


def flag_name(field: str) -> str:
    """`max_wait` -> `--max-wait`."""
    return "--" + field.replace("_", "-")


def add_setting_flags(group: argparse._ArgumentGroup, *, suppress_defaults: bool = False) -> None:
    """One flag per setting in `flag_fields()`.

    Args:
        group: where the flags go.
        suppress_defaults: leave an absent flag out of the namespace, so that a sub-command's copy of the flags does
            not overwrite the value given before the sub-command's name.
    """
    for field, info in flag_fields().items():
        kind = _value_type(info.annotation)
        options: dict[str, Any] = {
            "dest": field,
            "default": argparse.SUPPRESS if suppress_defaults else None,
            "help": _help(field, info),
        }
        if kind is bool:
            options["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(kind) is typing.Literal:
            options["choices"] = list(typing.get_args(kind))
        else:
            options["type"] = _converter(kind)
        group.add_argument(flag_name(field), **options)


def setting_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The settings given as flags, by field name (absent flags are not there: their FLORA_* variable counts)."""
    return {field: value for field in flag_fields() if (value := getattr(args, field, None)) is not None}


def _value_type(annotation: Any) -> Any:
    """`X | None` -> `X`; anything else as it is."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        kinds = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(kinds) == 1:
            return kinds[0]
    return annotation


def _converter(kind: Any) -> Callable[[str], Any]:
    if kind in (str, int, float):
        return typing.cast(Callable[[str], Any], kind)
    raise TypeError(f"no command-line flag for a setting of type {kind!r}: mark it NOT_A_FLAG or add a converter")


def _help(field: str, info: FieldInfo) -> str:
    variable = f"FLORA_{field.upper()}"
    if info.default is None:
        default = "unset"
    elif isinstance(info.default, bool):
        default = "on" if info.default else "off"
    elif isinstance(info.default, float):
        default = f"{info.default:g}"
    else:
        default = str(info.default)
    text = (info.description or "").rstrip()
    # argparse formats help with %: a literal percent sign must be doubled.
    return f"{text} ({variable}; default: {default})".replace("%", "%%").strip()
