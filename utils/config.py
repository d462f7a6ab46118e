"""ConfigParser: the JSON config, command-line overrides, run folders and object factories.

Follows pytorch-template's semantics: `-c config.json`, `-r checkpoint` (the config then comes from
the checkpoint unless `-c` is also given), `-d` device ids, named overrides such as `--lr`, and a
generic repeatable `--set dotted.key=value` for any key that a section knows, whether the file
states it or leaves it to its default. The values are checked where they are read, by
`utils.settings` (the section's settings class, or the signature of the class it names), and
every value a run reads, defaults included, is recorded (`resolved`) beside the run's config.
"""
import argparse
import dataclasses
import json
import logging
import os
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple, TypeVar

from utils.checkpoint import load_checkpoint, newest_valid_checkpoint, write_json
from utils.errors import ConfigError
from utils.settings import arguments, build, from_config, resolved_arguments, unknown_name

T = TypeVar("T")


LOG_FORMAT = "%(asctime)s %(levelname)s %(message)s"


@dataclasses.dataclass(frozen=True)
class Sections:
    """The top level of a config: the run's name and its sections. `trainer`, `predictor`,
    `graph` and `metrics` are read by their settings classes (`ConfigParser.settings`); `arch`,
    `data_loader`, `optimizer`, `lr_scheduler` and `loss` name a class (`type`) and its
    arguments (`args`, `ConfigParser.init_obj`). An absent section takes its defaults."""

    name: str
    arch: dict
    trainer: dict
    data_loader: dict | None = None
    optimizer: dict | None = None
    lr_scheduler: dict | None = None
    loss: dict | None = None
    predictor: dict | None = None
    graph: dict | None = None
    metrics: dict | None = None


BASE_KEY = "_base_"
"""A config may name a base config (a path relative to itself) and hold only its differences:
objects merge key by key, any other value replaces the base's (mmsegmentation's `_base_`)."""

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
        from_config(Sections, self._config, "")
        self.run_id = run_id or datetime.now().strftime("%Y%m%d_%H%M%S")
        # The run's folders, named once the trainer has read `trainer.save_dir` (`place_run`).
        self.save_dir: Path | None = None
        self.log_dir: Path | None = None
        # What the run read, section by section, defaults included (`resolved`).
        self._resolved: dict[str, Any] = {}

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
        factory, given = self._arguments(name, module, args, kwargs)
        return build(factory, given, f"{name}.args", *args, **kwargs)

    def arguments(self, name: str, module: ModuleType, *args, **kwargs) -> dict[str, Any]:
        """Every keyword argument that `init_obj(name, module, *args, **kwargs)` takes from the
        config: the config's, checked, and the constructor's defaults for the others."""
        factory, given = self._arguments(name, module, args, kwargs)
        return resolved_arguments(factory, given, *args, **kwargs)

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
        settings = from_config(cls, self.section(dotted_key), dotted_key, **overrides)
        self._record(dotted_key, dataclasses.asdict(settings))
        return settings

    def find_type(self, name: str, module: ModuleType) -> Any:
        """The class or function that `config[name].type` names in `module`."""
        return self._lookup(name, module)[0]

    def resolved(self) -> dict[str, Any]:
        """Every value this run has read so far, defaults included, laid out as the config: the
        sections read by settings classes and the arguments of the classes built."""
        return {"name": self._config["name"], **self._resolved}

    def _arguments(self, name: str, module: ModuleType, args: tuple, kwargs: dict
                   ) -> tuple[Any, dict[str, Any]]:
        """The factory of section `name` and its config arguments, checked; the arguments it
        will be called with, defaults included, are recorded."""
        factory, values = self._lookup(name, module)
        given = arguments(factory, values, f"{name}.args", *args, **kwargs)
        self._record(name, {"type": self._config[name]["type"],
                            "args": resolved_arguments(factory, given, *args, **kwargs)})
        return factory, given

    def _record(self, dotted_key: str, values: Any) -> None:
        *parents, leaf = dotted_key.split(".")
        node = self._resolved
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = values

    def _lookup(self, name: str, module: ModuleType) -> tuple[Any, Any]:
        section = self._config.get(name)
        if not isinstance(section, dict) or "type" not in section:
            raise ConfigError(f"config key '{name}.type' is missing")
        type_name = section["type"]
        factory = getattr(module, type_name, None) if isinstance(type_name, str) else None
        if factory is None or not callable(factory):
            available = sorted(n for n in dir(module) if not n.startswith("_") and n[0].isupper())
            raise unknown_name(f"type {type_name!r} in {module.__name__} (config key "
                               f"'{name}.type')", str(type_name), available)
        return factory, section.get("args")

    def place_run(self, save_dir: str | Path) -> None:
        """Name this run's folders under `save_dir` (`trainer.save_dir`): checkpoints in
        models/<name>/<run_id>, logs in log/<name>/<run_id>."""
        name = self._config["name"]
        self.save_dir = Path(save_dir) / "models" / name / self.run_id
        self.log_dir = Path(save_dir) / "log" / name / self.run_id

    def prepare_run_dirs(self) -> None:
        """Create the checkpoint and log folders of this run (`place_run`) and save there the
        effective config (`config.json`) and every value the run read (`resolved.json`)."""
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
        write_json(self.resolved(), self.save_dir / "resolved.json")
        log_file = logging.FileHandler(self.log_dir / "info.log")
        log_file.setFormatter(logging.Formatter(LOG_FORMAT))
        logging.getLogger().addHandler(log_file)


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
    """Set a key of a nested config, creating the objects on its path that are absent or null.
    Whether the section knows the key, and whether the value suits it, is checked where the
    section is read (`ConfigParser.settings`, `ConfigParser.init_obj`)."""
    *parents, leaf = dotted_key.split(".")
    node = tree
    for depth, key in enumerate(parents):
        if node.get(key) is None:
            node[key] = {}
        node = node[key]
        if not isinstance(node, dict):
            raise ConfigError(f"config key '{'.'.join(parents[:depth + 1])}' holds {node!r}, "
                              f"not an object, so '{dotted_key}' cannot be set")
    node[leaf] = value


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
