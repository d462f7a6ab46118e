"""The one validator of a config: typed settings sections and the arguments of the classes it names.

A section read by a settings class (one frozen dataclass per section, `from_config`) and the
`args` of a section that names a class (`arguments`, `build`: the class's signature, its
annotations and defaults) are checked the same way: unknown keys are refused with the closest
names, values of the wrong JSON kind are refused naming the key, JSON arrays become tuples where
a tuple is declared and integers become floats where a float is. Settings classes and
constructors check their values themselves and raise `ValueError` with a message that starts with
the parameter's name (`check`: "snap: must be >= 0"); library code knows parameter names only,
and this module turns those errors into a `ConfigError` naming the JSON key
("metrics.apls.snap: must be >= 0").
"""
import dataclasses
import difflib
import inspect
import types
import typing
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from utils.errors import ConfigError

T = TypeVar("T")

_JSON_KINDS = {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
               tuple: "an array", list: "an array", dict: "an object"}


def from_config(cls: type[T], values: Any, key: str, **overrides: Any) -> T:
    """Build the settings dataclass `cls` from the JSON object `values` found at config `key`
    ("" for the top level of a config).

    `overrides` are values that the command supplies itself (e.g. a shared section) and win over
    the file. Nested settings dataclasses are built from nested objects, with their own key.
    """
    values = _json_object(values, key)
    hints = typing.get_type_hints(cls)
    fields = {field.name: field for field in dataclasses.fields(cls) if field.init}
    given = {**values, **overrides}
    for name, field in fields.items():
        required = (field.default is dataclasses.MISSING
                    and field.default_factory is dataclasses.MISSING)
        if required and name not in given:
            raise ConfigError(f"config key '{_joined(key, name)}' is missing")
    arguments = {}
    for name, value in given.items():
        if name not in fields:
            raise unknown_name(f"config key '{_joined(key, name)}'", name, fields)
        arguments[name] = _converted(hints[name], value, _joined(key, name))
    try:
        return cls(**arguments)
    except ValueError as error:
        raise _named(error, key, fields) or ConfigError(f"config key '{key}': {error}") from None


def arguments(factory: Callable, values: Any, key: str, *args: Any, **supplied: Any
              ) -> dict[str, Any]:
    """The JSON object `values` at config `key` (e.g. "arch.args") as keyword arguments of
    `factory`, which the code calls with `*args` and `**supplied` besides, checked against its
    signature: unknown names are refused (unless it takes `**kwargs`), and so are those the code
    passes; each value is checked and converted by its parameter's annotation, or, without one,
    by the kind of its default; a required parameter left unset is reported missing."""
    values = _json_object(values, key)
    parameters = _keyword_parameters(factory)
    if parameters is None:  # no signature (some builtins): the factory checks its arguments
        return dict(values)
    passed = _passed(factory, args, supplied)
    taken = sorted(passed & set(values))
    if taken:
        raise ConfigError(f"config key '{key}' may not set {', '.join(taken)}: the code "
                          "passes it")
    open_ended = any(parameter.kind is parameter.VAR_KEYWORD
                     for parameter in inspect.signature(factory).parameters.values())
    hints = _type_hints(factory)
    result = {}
    for name, value in values.items():
        parameter = parameters.get(name)
        if parameter is None:
            if not open_ended:
                raise unknown_name(f"config key '{_joined(key, name)}'", name, parameters)
            result[name] = value
            continue
        annotation = hints.get(name, _kind_of(parameter.default))
        result[name] = _converted(annotation, value, _joined(key, name))
    for name, parameter in parameters.items():
        if parameter.default is parameter.empty and name not in result and name not in passed:
            raise ConfigError(f"config key '{_joined(key, name)}' is missing")
    return result


def resolved_arguments(factory: Callable, given: dict[str, Any], *args: Any, **supplied: Any
                       ) -> dict[str, Any]:
    """Every keyword argument that a config gives `factory`: its defaults, then the `given` ones
    (checked by `arguments`), settings dataclasses as dicts; what the code passes (`*args`,
    `**supplied`) is left out."""
    passed = _passed(factory, args, supplied)
    parameters = _keyword_parameters(factory) or {}
    defaults = {name: parameter.default for name, parameter in parameters.items()
                if parameter.default is not parameter.empty and name not in passed}
    return {name: dataclasses.asdict(value)
            if dataclasses.is_dataclass(value) and not isinstance(value, type) else value
            for name, value in {**defaults, **given}.items()}


def build(factory: Callable[..., T], values: dict[str, Any], key: str, *args: Any,
          **supplied: Any) -> T:
    """`factory(*args, **values, **supplied)` for the checked `values` of config `key` (see
    `arguments`): a `ValueError` or `TypeError` that it raises for its arguments becomes a
    `ConfigError` naming the key, and the parameter when the message starts with its name
    ("block: must be one of ...")."""
    try:
        return factory(*args, **values, **supplied)
    except (TypeError, ValueError) as error:
        raise (_named(error, key, _keyword_parameters(factory) or {})
               or ConfigError(f"config key '{key}': {error}")) from None


def unknown_name(what: str, name: str, known: Iterable[str]) -> ConfigError:
    """The error for an unknown `name` (described by `what`, e.g. "config key 'trainer.epoch'"),
    suggesting the closest of the `known` names or listing them all."""
    known = list(known)
    close = difflib.get_close_matches(name, known, n=3)
    hint = f"did you mean {', '.join(close)}?" if close else f"known: {', '.join(known)}"
    return ConfigError(f"unknown {what}; {hint}")


def _joined(key: str, name: str) -> str:
    return f"{key}.{name}" if key else name


def _json_object(values: Any, key: str) -> dict:
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ConfigError(f"config key '{key}' must be an object, got {values!r}")
    return values


def _named(error: Exception, key: str, names: Iterable[str]) -> ConfigError | None:
    """A `ValueError("name: message")` of one of `names` as the ConfigError naming `key.name`."""
    parameter, separator, message = str(error).partition(": ")
    if separator and parameter in set(names):
        return ConfigError(f"config key '{_joined(key, parameter)}': {message}")
    return None


def _keyword_parameters(factory: Callable) -> dict[str, inspect.Parameter] | None:
    """The parameters of `factory` that a keyword can set; None when it has no signature."""
    try:
        parameters = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return None
    return {name: parameter for name, parameter in parameters.items()
            if parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY)}


def _passed(factory: Callable, args: tuple, supplied: dict[str, Any]) -> set[str]:
    """The names of the parameters that `factory(*args, **supplied)` sets."""
    try:
        return set(inspect.signature(factory).bind_partial(*args, **supplied).arguments)
    except (TypeError, ValueError):
        return set(supplied)


def _type_hints(factory: Callable) -> dict[str, Any]:
    """The resolved annotations of `factory`'s parameters; {} when they cannot be resolved (the
    defaults' kinds are checked then)."""
    target = factory.__init__ if isinstance(factory, type) else factory
    try:
        return typing.get_type_hints(target)
    except Exception:  # annotations naming what the module does not import at run time
        return {}


def _kind_of(default: Any) -> Any:
    """What a parameter without annotation takes: null or the JSON kind of its default, an
    integer or a number alike for numbers (None: anything, e.g. without a default or with a None
    default)."""
    if isinstance(default, bool):
        return bool | None
    if isinstance(default, (int, float)):
        return int | float | None
    for kind in (str, list, tuple, dict):
        if isinstance(default, kind):
            return kind | None
    return None


def _converted(annotation: Any, value: Any, key: str) -> Any:
    """`value` checked against a field's annotation: JSON arrays become tuples, integers are
    accepted for floats, nested dataclasses are built; anything else of the wrong kind is an
    error naming `key`. An annotation of None, `Any` or a type variable accepts any value, and a
    class that is no JSON kind (e.g. `Sequence`) any value that is an instance of it."""
    if annotation is None or annotation is Any or isinstance(annotation, TypeVar):
        return value
    options = typing.get_args(annotation) if _is_union(annotation) else (annotation,)
    if value is None:
        if type(None) in options:
            return None
        raise ConfigError(f"config key '{key}' may not be null")
    for option in options:
        origin = typing.get_origin(option) or option
        if option is Any or isinstance(option, TypeVar):
            return value
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
        if (isinstance(origin, type) and origin not in _JSON_KINDS
                and not dataclasses.is_dataclass(origin) and isinstance(value, origin)):
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
