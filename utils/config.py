"""ConfigParser: the JSON config, command-line overrides, run folders and object factories.

Follows pytorch-template's semantics: `-c config.json`, `-r checkpoint` (the config then comes from
the checkpoint unless `-c` is also given), `-d` device ids, named overrides such as `--lr`, and a
generic repeatable `--set dotted.key=value` for every key of the config.
"""
import argparse
import difflib
import inspect
import json
import logging
import os
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple, TypeVar

from utils.checkpoint import load_checkpoint, newest_valid_checkpoint
from utils.errors import ConfigError
from utils.settings import from_config

T = TypeVar("T")
logger = logging.getLogger("config")


LOG_FORMAT = "%(asctime)s %(levelname)s %(message)s"


class Expected(NamedTuple):
    """What a config key must hold: one of `kinds` (bool is not an int here), at least `minimum`."""

    kinds: tuple[type, ...]
    required: bool = False
    minimum: int | None = None


# The sections every config needs, checked when it is parsed. Each section's own keys are checked
# by its settings class (`ConfigParser.settings`) or, for sections naming a `type`, against the
# signature of the class they build (`init_obj`).
EXPECTED_KEYS = {
    "name": Expected((str,), required=True),
    "arch": Expected((dict,), required=True),
    "trainer": Expected((dict,), required=True),
    "predictor": Expected((dict,), required=True),
    "metrics": Expected((dict,), required=True),
    "graph": Expected((dict,)),
}

BASE_KEY = "_base_"
"""A config may name a base config (a path relative to itself) and hold only its differences:
objects merge key by key, any other value replaces the base's (mmsegmentation's `_base_`)."""

# Network arguments of earlier versions, still read with a warning: the class counts are fixed by
# the labels (roads/classes.py) and are no longer parameters.
FIXED_ARCH_ARGS = {"seg_classes": 2, "conn_classes": 5}


class Override(NamedTuple):
    """A named command-line option that sets one config key, e.g. `--lr` -> optimizer.args.lr."""

    flags: list[str]
    type: type
    target: str


class ConfigParser:
    """Holds the configuration of a run and builds the objects it names."""

    def __init__(self, config: dict, resume: Path | None = None,
                 modification: dict[str, Any] | None = None, run_id: str | None = None) -> None:
        self._config = config
        self.resume = Path(resume) if resume is not None else None
        self.options = argparse.Namespace()
        for key, value in (modification or {}).items():
            set_by_path(self._config, key, value)
        check_expected_keys(self._config)
        read_deprecated_keys(self._config)
        save_dir = Path(self._config["trainer"].get("save_dir", "saved"))
        name = self._config["name"]
        self.run_id = run_id or datetime.now().strftime("%Y%m%d_%H%M%S")
        self.save_dir = save_dir / "models" / name / self.run_id
        self.log_dir = save_dir / "log" / name / self.run_id

    @classmethod
    def from_args(cls, parser: argparse.ArgumentParser, overrides: list[Override] = (),
                  args: list[str] | None = None) -> "ConfigParser":
        """Parse the command line: `-c`, `-r`, `-d`, the named `overrides` and `--set key=value`."""
        for override in overrides:
            parser.add_argument(*override.flags, type=override.type, default=None,
                                dest=override.target, help=f"sets {override.target}")
        parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                            help="set any config key, e.g. --set trainer.epochs=3 (value parsed as JSON)")
        options = parser.parse_args(args)
        if getattr(options, "device", None) is not None:
            os.environ["CUDA_VISIBLE_DEVICES"] = options.device
        resume = Path(options.resume) if getattr(options, "resume", None) else None
        if resume is not None and resume.is_dir():
            # A run folder: resume from the checkpoint furthest along that still loads.
            resume = newest_valid_checkpoint(resume)
        if options.config is not None:
            config = read_json(Path(options.config))
        elif resume is not None:
            config = load_checkpoint(resume).get("config")
            if not isinstance(config, dict):
                raise ConfigError(f"checkpoint {resume} holds no config: pass one with -c")
        else:
            raise ConfigError("give a config file with -c config.json, or a checkpoint with -r")
        # A named option left out is None; `--set key=null` really sets null.
        modification = {o.target: getattr(options, o.target) for o in overrides
                        if getattr(options, o.target) is not None}
        modification.update(parse_assignment(text) for text in options.set)
        parsed = cls(config, resume, modification)
        parsed.options = options
        return parsed

    def __getitem__(self, name: str) -> Any:
        return self._config[name]

    def get(self, name: str, default: Any = None) -> Any:
        return self._config.get(name, default)

    @property
    def config(self) -> dict:
        return self._config

    def init_obj(self, name: str, module: ModuleType, *args, **kwargs) -> Any:
        """Build `module.<config[name].type>(*args, **config[name].args, **kwargs)`."""
        factory, config_kwargs = self._lookup(name, module)
        if set(kwargs) & set(config_kwargs):
            raise ConfigError(f"'{name}.args' may not set {sorted(set(kwargs) & set(config_kwargs))}")
        check_argument_kinds(f"{name}.args", factory, config_kwargs)
        try:
            return factory(*args, **config_kwargs, **kwargs)
        except TypeError as error:
            raise ConfigError(f"'{name}': {error}") from None
        except ValueError as error:
            # The repo's classes name the parameter first ("block: must be one of ...").
            parameter, separator, message = str(error).partition(": ")
            if separator and parameter in config_kwargs:
                raise ConfigError(f"config key '{name}.args.{parameter}': {message}") from None
            raise

    def update(self, changes: dict) -> None:
        """Merge `changes` (nested like the config) into the config: objects key by key."""
        self._config = merged(self._config, changes)

    def section(self, dotted_key: str) -> Any:
        """The value at `dotted_key` (e.g. "metrics.apls"); None when a part of it is absent."""
        node: Any = self._config
        for key in dotted_key.split("."):
            node = node.get(key) if isinstance(node, dict) else None
        return node

    def settings(self, cls: type[T], dotted_key: str, **overrides: Any) -> T:
        """The settings dataclass `cls` of the section at `dotted_key`, defaults where absent;
        errors name the JSON key."""
        return from_config(cls, self.section(dotted_key), dotted_key, **overrides)

    def find_type(self, name: str, module: ModuleType) -> Any:
        """The class or function that `config[name].type` names in `module`."""
        return self._lookup(name, module)[0]

    def _lookup(self, name: str, module: ModuleType) -> tuple[Any, dict]:
        section = self._config.get(name)
        if not isinstance(section, dict) or "type" not in section:
            raise ConfigError(f"config key '{name}.type' is missing")
        type_name = section["type"]
        factory = getattr(module, type_name, None)
        if factory is None or not callable(factory):
            available = sorted(n for n in dir(module) if not n.startswith("_") and n[0].isupper())
            raise ConfigError(f"config key '{name}.type': unknown type {type_name!r} in "
                              f"{module.__name__}; available: {', '.join(available)}")
        args = section.get("args", {})
        if args is None:
            args = {}
        if not isinstance(args, dict):
            raise ConfigError(f"config key '{name}.args' must be an object")
        return factory, dict(args)

    def prepare_run_dirs(self) -> None:
        """Create the checkpoint and log folders of this run and save the effective config there."""
        base_id, suffix = self.run_id, 1
        while self.save_dir.exists() or self.log_dir.exists():
            suffix += 1
            self.run_id = f"{base_id}_{suffix}"
            self.save_dir = self.save_dir.with_name(self.run_id)
            self.log_dir = self.log_dir.with_name(self.run_id)
        for folder in (self.save_dir, self.log_dir):
            try:
                folder.mkdir(parents=True)
            except OSError as error:
                raise ConfigError(f"cannot create {folder} (trainer.save_dir): {error.strerror}") from None
        write_json(self._config, self.save_dir / "config.json")
        log_file = logging.FileHandler(self.log_dir / "info.log")
        log_file.setFormatter(logging.Formatter(LOG_FORMAT))
        logging.getLogger().addHandler(log_file)


def check_expected_keys(config: dict) -> None:
    """Raise ConfigError naming the first key of EXPECTED_KEYS that is missing or holds a wrong value."""
    for dotted_key, expected in EXPECTED_KEYS.items():
        *parents, leaf = dotted_key.split(".")
        node = config
        for key in parents:
            node = node.get(key) if isinstance(node, dict) else None
        if not isinstance(node, dict):
            continue  # its section is absent (optional) or was reported by an earlier entry
        if leaf not in node:
            if expected.required:
                raise ConfigError(f"config has no '{leaf}' section" if not parents
                                  else f"config key '{dotted_key}' is missing")
            continue
        value = node[leaf]
        if isinstance(value, bool) != (bool in expected.kinds) or not isinstance(value, expected.kinds):
            names = " or ".join("null" if kind is type(None) else kind.__name__ for kind in expected.kinds)
            raise ConfigError(f"config key '{dotted_key}' expects {names}, got {value!r}")
        if expected.minimum is not None and value is not None and value < expected.minimum:
            raise ConfigError(f"config key '{dotted_key}' must be >= {expected.minimum}, got {value}")


def read_deprecated_keys(config: dict) -> None:
    """Accept the keys of earlier versions with a one-line warning each (see FIXED_ARCH_ARGS)."""
    arch_args = config["arch"].get("args") or {}
    for key, fixed in FIXED_ARCH_ARGS.items():
        if key in arch_args:
            if arch_args[key] != fixed:
                raise ConfigError(f"config key 'arch.args.{key}' must be {fixed}: the labels "
                                  f"define {fixed} classes (roads/classes.py)")
            logger.warning("config key 'arch.args.%s' is deprecated and ignored (always %d)",
                           key, fixed)
            del arch_args[key]


def value_kind(value: Any) -> str | None:
    """The JSON kind of a value: boolean, number, string, array or object (None for others)."""
    if isinstance(value, bool):
        return "boolean"
    for kinds, name in (((int, float), "number"), (str, "string"), ((list, tuple), "array"),
                        (dict, "object")):
        if isinstance(value, kinds):
            return name
    return None


def check_argument_kinds(section: str, factory: Any, kwargs: dict) -> None:
    """Raise ConfigError for a configured argument whose JSON kind differs from that of its default
    (e.g. `"num_feats": "16"`), which would otherwise fail deep inside the constructor. Arguments
    without a default or with a None default, and null values, are left to the constructor."""
    try:
        parameters = inspect.signature(factory).parameters
    except (TypeError, ValueError):  # some builtins have no signature
        return
    open_ended = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    for key, value in kwargs.items():
        parameter = parameters.get(key)
        if parameter is None and not open_ended:
            known = [name for name, p in parameters.items()
                     if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and name != "self"]
            raise ConfigError(f"unknown config key '{section}.{key}'; known: {', '.join(known)}")
        if value is None or parameter is None or parameter.default is inspect.Parameter.empty:
            continue
        expected = value_kind(parameter.default)
        if expected is not None and value_kind(value) != expected:
            raise ConfigError(f"config key '{section}.{key}' expects a {expected} "
                              f"(default {parameter.default!r}), got {value!r}")


def parse_assignment(text: str) -> tuple[str, Any]:
    """`a.b=value` -> ("a.b", value parsed as JSON when it parses, else the string)."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise ConfigError(f"--set expects KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(raw)
    except json.JSONDecodeError:
        return key, raw


def set_by_path(tree: dict, dotted_key: str, value: Any) -> None:
    """Set an existing key of a nested config; unknown keys and changed types are errors."""
    *parents, leaf = dotted_key.split(".")
    node = tree
    for depth, key in enumerate(parents):
        if not isinstance(node, dict) or key not in node:
            raise ConfigError(unknown_key_message(".".join(parents[: depth + 1]), node))
        node = node[key]
    if not isinstance(node, dict) or leaf not in node:
        raise ConfigError(unknown_key_message(dotted_key, node))
    old = node[leaf]
    # null is always allowed here: the section's settings class decides whether the key may be.
    if old is not None and value is not None and not same_kind(old, value):
        raise ConfigError(f"config key '{dotted_key}' expects {type(old).__name__}, "
                          f"got {value!r} ({type(value).__name__})")
    node[leaf] = float(value) if isinstance(old, float) and isinstance(value, int) else value


def same_kind(old: Any, new: Any) -> bool:
    if isinstance(old, bool) or isinstance(new, bool):
        return isinstance(old, bool) and isinstance(new, bool)
    if isinstance(old, (int, float)):
        return isinstance(new, (int, float)) and (isinstance(old, float) or isinstance(new, int))
    return isinstance(new, type(old))


def unknown_key_message(dotted_key: str, node: Any) -> str:
    candidates = sorted(node) if isinstance(node, dict) else []
    close = difflib.get_close_matches(dotted_key.rsplit(".", 1)[-1], candidates, n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else (
        f"; keys here: {', '.join(candidates)}" if candidates else "")
    return f"unknown config key '{dotted_key}'{hint}"


def read_json(path: Path, _seen: tuple[Path, ...] = ()) -> dict:
    """A config file, merged onto the base config it names under `_base_` (recursively)."""
    path = Path(path)
    if path.resolve() in _seen:
        raise ConfigError(f"config file {path}: its {BASE_KEY} chain comes back to it")
    content = _read_json_object(path)
    base = content.pop(BASE_KEY, None)
    if base is None:
        return content
    if not isinstance(base, str):
        raise ConfigError(f"config file {path}: '{BASE_KEY}' must be a path, got {base!r}")
    return merged(read_json(path.parent / base, (*_seen, path.resolve())), content)


def merged(base: dict, changes: dict) -> dict:
    """`base` with `changes` applied: objects merge key by key, other values replace."""
    result = dict(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merged(result[key], value)
        else:
            result[key] = value
    return result


def _read_json_object(path: Path) -> dict:
    try:
        with open(path, encoding="utf-8") as file:
            content = json.load(file)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"config file {path} is not valid JSON: {error}") from None
    except RecursionError:
        raise ConfigError(f"config file {path} is not valid JSON: nested too deeply") from None
    except OSError as error:
        raise ConfigError(f"config file {path} cannot be read: {error.strerror}") from None
    if not isinstance(content, dict):
        raise ConfigError(f"config file {path} must hold a JSON object")
    return content


def write_json(content: dict, path: Path) -> None:
    with open(path, "w", encoding="utf-8") as file:
        json.dump(content, file, indent=2)
        file.write("\n")
