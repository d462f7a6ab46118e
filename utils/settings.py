"""Typed settings: one frozen dataclass per config section, built from its JSON object.

Each settings class holds its defaults and checks its values in `__post_init__`, raising
`ValueError` with a message that starts with the parameter's name ("snap: must be >= 0"). Library
code knows parameter names only; `from_config` turns those errors, unknown keys and values of the
wrong JSON kind into a `ConfigError` naming the JSON key ("metrics.apls.snap: must be >= 0").
"""
import dataclasses
import difflib
import types
import typing
from typing import Any, TypeVar

from utils.errors import ConfigError

T = TypeVar("T")

_JSON_KINDS = {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
               tuple: "an array", list: "an array", dict: "an object"}


def from_config(cls: type[T], values: Any, key: str, **overrides: Any) -> T:
    """Build the settings dataclass `cls` from the JSON object `values` found at config `key`.

    `overrides` are values that the command supplies itself (e.g. a shared section) and win over
    the file. Nested settings dataclasses are built from nested objects, with their own key.
    """
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise ConfigError(f"config key '{key}' must be an object, got {values!r}")
    hints = typing.get_type_hints(cls)
    fields = {field.name: field for field in dataclasses.fields(cls) if field.init}
    arguments: dict[str, Any] = {}
    given = {**values, **overrides}
    for name, field in fields.items():
        required = (field.default is dataclasses.MISSING
                    and field.default_factory is dataclasses.MISSING)
        if required and name not in given:
            raise ConfigError(f"config key '{key}.{name}' is missing")
    for name, value in given.items():
        if name not in fields:
            close = difflib.get_close_matches(name, list(fields), n=3)
            hint = f"did you mean {', '.join(close)}?" if close else f"known: {', '.join(fields)}"
            raise ConfigError(f"unknown config key '{key}.{name}'; {hint}")
        arguments[name] = _converted(hints[name], value, f"{key}.{name}")
    try:
        return cls(**arguments)
    except ValueError as error:
        parameter, separator, message = str(error).partition(": ")
        if separator and parameter in fields:
            raise ConfigError(f"config key '{key}.{parameter}': {message}") from None
        raise ConfigError(f"config key '{key}': {error}") from None


def _converted(annotation: Any, value: Any, key: str) -> Any:
    """`value` checked against a field's annotation: JSON arrays become tuples, integers are
    accepted for floats, nested dataclasses are built; anything else of the wrong kind is an
    error naming `key`."""
    options = typing.get_args(annotation) if _is_union(annotation) else (annotation,)
    if value is None:
        if type(None) in options:
            return None
        raise ConfigError(f"config key '{key}' may not be null")
    for option in options:
        origin = typing.get_origin(option) or option
        if dataclasses.is_dataclass(origin) and isinstance(value, dict):
            return from_config(origin, value, key)
        if origin is typing.Literal and value in typing.get_args(option):
            return value
        if origin is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if origin is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if origin in (bool, str) and isinstance(value, origin):
            return value
        if origin in (tuple, list) and isinstance(value, (list, tuple)):
            return tuple(value) if origin is tuple else list(value)
        if origin is dict and isinstance(value, dict):
            return value
    raise ConfigError(f"config key '{key}' expects {_describe(options)}, got {value!r}")


def _is_union(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType)


def _describe(options: tuple) -> str:
    names = []
    for option in options:
        origin = typing.get_origin(option) or option
        if origin is type(None):
            names.append("null")
        elif origin is typing.Literal:
            names.append(" | ".join(repr(choice) for choice in typing.get_args(option)))
        elif dataclasses.is_dataclass(origin):
            names.append("an object")
        else:
            names.append(_JSON_KINDS.get(origin, getattr(origin, "__name__", str(origin))))
    return " or ".join(names)


def check(condition: bool, parameter: str, message: str) -> None:
    """Raise the `ValueError` of the module's convention ("parameter: message") unless `condition`."""
    if not condition:
        raise ValueError(f"{parameter}: {message}")


def as_dict(settings: Any) -> dict[str, Any]:
    """The settings as a JSON-ready dict (tuples as lists), e.g. for `metrics.json`."""
    return {key: list(value) if isinstance(value, tuple) else value
            for key, value in dataclasses.asdict(settings).items()}
