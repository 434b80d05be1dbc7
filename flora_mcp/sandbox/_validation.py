"""Checking run inputs against a technique's schema, for both the nested and the top-level create routes.

Every problem becomes a field error named after the input id, so one 422 lists them all.
"""

from __future__ import annotations

from typing import Any

from flora_mcp.sandbox._catalog import URL_TYPES, Technique, canonical_type
from flora_mcp.sandbox._errors import FieldError, SandboxError
from flora_mcp.sandbox._fetch import check_url

__all__ = ["validate_callback_url", "validate_input_list", "validate_input_map"]


def validate_input_list(technique: Technique, raw: Any) -> dict[str, str]:
    """Nested route: `[{"id", "type", "value"}, ...]` -> `{id: value}`; raises a 422 listing every problem."""
    if not isinstance(raw, list) or not raw:
        raise SandboxError.validation([FieldError("inputs", "Required: a non-empty list of {id, type, value}")])
    errors: list[FieldError] = []
    values: dict[str, str] = {}
    for index, item in enumerate(raw):
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            errors.append(FieldError(f"inputs[{index}]", "Must be an object with string id, type and value"))
            continue
        input_id: str = item["id"]
        port = technique.input(input_id)
        if port is None:
            errors.append(FieldError(input_id, f"Unknown input; expected one of: {_ids(technique)}"))
            continue
        given_type = item.get("type")
        if not isinstance(given_type, str) or canonical_type(given_type) != port.type:
            errors.append(FieldError(input_id, f"Expected type {port.type}, got {given_type!r}"))
            continue
        if input_id in values:
            errors.append(FieldError(input_id, "Given more than once"))
            continue
        value = item.get("value")
        if not isinstance(value, str):
            errors.append(FieldError(input_id, "Value must be a string"))
            continue
        values[input_id] = value
    _check_values(technique, values, errors)
    return values


def validate_input_map(technique: Technique, raw: Any) -> dict[str, str]:
    """Top-level route: `{id: value}`; raises a 422 listing every problem."""
    if not isinstance(raw, dict) or not raw:
        raise SandboxError.validation([FieldError("inputs", "Required: a non-empty object of input id to value")])
    errors: list[FieldError] = []
    values: dict[str, str] = {}
    for input_id, value in raw.items():
        if technique.input(input_id) is None:
            errors.append(FieldError(input_id, f"Unknown input; expected one of: {_ids(technique)}"))
        elif not isinstance(value, str):
            errors.append(FieldError(input_id, "Value must be a string"))
        else:
            values[input_id] = value
    _check_values(technique, values, errors)
    return values


def validate_callback_url(raw: Any) -> str | None:
    """The create body's `callback_url` (None when absent); a 422 unless it is an http(s) URL on loopback."""
    if raw is None:
        return None
    problem = "Must be a string" if not isinstance(raw, str) else check_url(raw)
    if problem is None and raw.startswith("data:"):
        problem = "Must be an http(s) URL"
    if problem is not None:
        raise SandboxError.validation([FieldError("callback_url", problem)])
    assert isinstance(raw, str)
    return raw


def _ids(technique: Technique) -> str:
    return ", ".join(port.id for port in technique.inputs)


def _check_values(technique: Technique, values: dict[str, str], errors: list[FieldError]) -> None:
    named = {error.field for error in errors}
    for port in technique.inputs:
        value = values.get(port.id)
        if port.id in named:
            continue
        if not value:
            if port.optional:
                values.pop(port.id, None)  # an empty optional input counts as left out
            else:
                errors.append(FieldError(port.id, "Required"))
            continue
        if port.type in URL_TYPES:
            problem = check_url(value)
            if problem:
                errors.append(FieldError(port.id, problem))
    if not errors and technique.validate is not None:
        errors.extend(technique.validate(values))
    if errors:
        raise SandboxError.validation(errors)
