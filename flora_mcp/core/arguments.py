"""Tool arguments against a tool's JSON Schema: one validator and one wording of its errors, for the technique tools
and for flora-mcp's own (flora_get_run, flora_list_runs, flora_spend and the compact trio) alike.

A number must be finite: JSON Schema lets NaN through every `minimum` and `maximum` (each comparison is false), and
`1e309` arrives as infinity.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from flora_mcp.core.results import FieldError

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator

__all__ = ["argument_errors", "schema_validator"]


def schema_validator(schema: Mapping[str, Any]) -> Draft202012Validator:
    """A Draft 2020-12 validator of `schema` whose numbers are finite ones only."""
    return _finite_validator_class()(dict(schema))  # type: ignore[no-any-return]


@functools.cache
def _finite_validator_class() -> Any:
    # Imported on first use: jsonschema takes ~40 ms to import, and a server starting up needs none of it.
    from jsonschema import Draft202012Validator, validators

    base = Draft202012Validator.TYPE_CHECKER

    def finite_number(checker: Any, instance: Any) -> bool:
        return bool(base.is_type(instance, "number")) and not (isinstance(instance, float) and
                                                                not math.isfinite(instance))

    return validators.extend(Draft202012Validator,  # type: ignore[no-untyped-call]
                             type_checker=base.redefine("number", finite_number))


def argument_errors(validator: Draft202012Validator, arguments: Mapping[str, Any]) -> list[FieldError]:
    """Every problem the schema finds with `arguments`, one `FieldError` each, named by the argument."""
    schema: Mapping[str, Any] = validator.schema  # type: ignore[assignment]  # an object schema, never `true`
    errors = list(validator.iter_errors(arguments))
    # A value of the wrong type is said to be so, once: not also "not one of" an enum of strings.
    mistyped = {tuple(err.absolute_path) for err in errors if err.validator == "type"}
    return [_field_error(err, schema) for err in errors
            if err.validator == "type" or tuple(err.absolute_path) not in mistyped]


def _field_error(err: Any, schema: Mapping[str, Any]) -> FieldError:
    path = ".".join(str(p) for p in err.absolute_path) or "arguments"
    instance = err.instance
    if err.validator == "required":
        missing = re.search(r"'([^']+)' is a required property", err.message)
        return FieldError(field=missing.group(1) if missing else path, message="required input is missing")
    if err.validator == "additionalProperties":
        known = ", ".join(sorted(schema.get("properties", {}))) or "none"
        extra = re.findall(r"'([^']+)'", err.message)
        return FieldError(field=extra[0] if extra else path, message=f"unknown input; valid inputs: {known}")
    if err.validator == "type":
        if isinstance(instance, float) and not math.isfinite(instance):
            return FieldError(field=path, message=f"must be a finite number, got {_shown(instance)}")
        return FieldError(field=path, message=f"must be of type {err.validator_value}, got {type(instance).__name__}")
    if err.validator == "minLength":
        if err.validator_value <= 1:
            return FieldError(field=path, message="must not be empty")
        return FieldError(field=path, message=f"must be at least {err.validator_value} characters")
    if err.validator == "maxLength":
        return FieldError(field=path, message=f"must be at most {err.validator_value} characters, got {len(instance)}")
    if err.validator == "enum":
        return FieldError(field=path, message="must be one of " + ", ".join(map(str, err.validator_value)))
    if err.validator in ("minimum", "maximum") and not isinstance(instance, bool):
        bound = ">=" if err.validator == "minimum" else "<="
        return FieldError(field=path, message=f"must be {bound} {err.validator_value:g}, got {_shown(instance)}")
    return FieldError(field=path, message=err.message[:200])


def _shown(value: Any) -> str:
    """A value as an error message may quote it: short, and safe for an integer too long for `repr`."""
    try:
        text = repr(value)
    except ValueError:
        return "a number too long to show"
    return text if len(text) <= 40 else text[:37] + "..."
