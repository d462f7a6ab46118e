"""ConfigParser: overrides, --set, factories and their one-line errors; the shipped configs."""
import argparse
import dataclasses
import inspect
import json
from pathlib import Path

import pytest
import torch

import data_loader.data_loaders as module_data
import model.loss as module_loss
import model.network as module_arch
from base.base_trainer import TrainerSettings
from evaluation.pipeline import MetricSettings, evaluation_settings
from evaluation.predictor import PredictorSettings
from evaluation.presets import PRESETS
from roads.extraction import GraphSettings
from roads.labels import LabelSettings
from utils.checkpoint import write_json
from utils.config import ConfigParser, Override, read_json
from utils.errors import ConfigError
from utils.settings import from_config

REPO = Path(__file__).resolve().parents[2]
OVERRIDES = [Override(["--lr"], float, "optimizer.args.lr"),
             Override(["--bs"], int, "data_loader.args.batch_size"),
             Override(["--epochs"], int, "trainer.epochs")]


def parse(*args: str, config: Path = REPO / "config.json") -> ConfigParser:
    parser = argparse.ArgumentParser()
    parser.add_argument("-c", "--config")
    parser.add_argument("-r", "--resume")
    parser.add_argument("-d", "--device")
    return ConfigParser.from_args(parser, OVERRIDES, ["-c", str(config), *args])


def test_named_overrides():
    config = parse("--lr", "0.5", "--bs", "3", "--epochs", "7")
    assert config["optimizer"]["args"]["lr"] == 0.5
    assert config["data_loader"]["args"]["batch_size"] == 3
    assert config["trainer"]["epochs"] == 7


def test_set_parses_json_values_and_strings():
    config = parse("--set", "arch.args.num_blocks=1", "--set", "trainer.monitor=min val/loss",
                   "--set", "data_loader.args.mean=[0.5, 0.5, 0.5]", "--set", "trainer.clip_grad_norm=2.5")
    assert config["arch"]["args"]["num_blocks"] == 1
    assert config["trainer"]["monitor"] == "min val/loss"
    assert config["data_loader"]["args"]["mean"] == [0.5, 0.5, 0.5]
    assert config["trainer"]["clip_grad_norm"] == 2.5


def test_set_int_into_float_argument_becomes_float():
    config = parse("--set", "optimizer.args.lr=1")
    optimizer = config.init_obj("optimizer", torch.optim, [torch.zeros(1, requires_grad=True)])
    assert type(optimizer.param_groups[0]["lr"]) is float


def test_set_reaches_keys_that_the_file_leaves_to_their_defaults():
    config = parse("--set", "predictor.window=256", "--set", "optimizer.args.weight_decay=0.01",
                   "--set", "optimizer.args.betas=[0.8, 0.9]", "--set", "loss.args.conn_weight=2",
                   "--set", "graph.connectivity.max_gap_m=20")
    assert "predictor" not in json.loads((REPO / "config.json").read_text())
    assert config.settings(PredictorSettings, "predictor").window == 256
    assert config.settings(GraphSettings, "graph").connectivity.max_gap_m == 20.0
    optimizer = config.init_obj("optimizer", torch.optim, [torch.zeros(1, requires_grad=True)])
    assert optimizer.param_groups[0]["weight_decay"] == 0.01
    assert optimizer.param_groups[0]["betas"] == (0.8, 0.9)
    assert config.init_obj("loss", module_loss).conn_weight == 2.0


def test_unknown_set_key_names_it_and_suggests():
    config = parse("--set", "trainer.epoch=3", "--set", "optimizer.args.weight_decy=0.1")
    with pytest.raises(ConfigError, match=r"unknown config key 'trainer.epoch'; did you mean epochs"):
        config.settings(TrainerSettings, "trainer")
    with pytest.raises(ConfigError, match=r"'optimizer.args.weight_decy'; did you mean weight_decay"):
        config.init_obj("optimizer", torch.optim, [torch.zeros(1, requires_grad=True)])
    with pytest.raises(ConfigError, match="unknown config key 'nonsense'; known: name, arch"):
        parse("--set", "nonsense.key=3")
    with pytest.raises(ConfigError, match="unknown config key 'metrcs'; did you mean metrics"):
        parse("--set", "metrcs.rho=2")
    with pytest.raises(ConfigError, match="'name' holds 'toy-spacenet', not an object"):
        parse("--set", "name.first=x")


def test_wrong_value_type_names_the_key():
    config = parse("--set", "trainer.epochs=many", "--set", "optimizer.args.lr=fast",
                   "--set", "lr_scheduler.args={}")
    with pytest.raises(ConfigError, match="'trainer.epochs' expects an integer, got 'many'"):
        config.settings(TrainerSettings, "trainer")
    parameters = [torch.zeros(1, requires_grad=True)]
    with pytest.raises(ConfigError, match="'optimizer.args.lr' expects a number or Tensor, got 'fast'"):
        config.init_obj("optimizer", torch.optim, parameters)
    optimizer = torch.optim.Adam(parameters)
    with pytest.raises(ConfigError, match="'lr_scheduler.args.T_max' is missing"):
        config.init_obj("lr_scheduler", torch.optim.lr_scheduler, optimizer)


def test_set_without_equals_is_an_error():
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse("--set", "trainer.epochs")


def test_init_obj_builds_configured_class():
    config = parse("--set", "arch.args.num_blocks=1", "--set", "arch.args.num_feats=16")
    net = config.init_obj("arch", module_arch)
    assert isinstance(net, module_arch.StackedHourglassRoadNet)
    optimizer = config.init_obj("optimizer", torch.optim, net.parameters())
    assert optimizer.param_groups[0]["lr"] == 0.001
    assert isinstance(config.init_obj("loss", module_loss), module_loss.JointLoss)


def test_unknown_type_lists_available_names(tmp_path):
    config = parse("--set", "arch.type=UNet")
    with pytest.raises(ConfigError, match=r"unknown type 'UNet' in model.network \(config key "
                                          r"'arch.type'\); known: .*StackedHourglassRoadNet"):
        config.init_obj("arch", module_arch)
    config = parse("--set", "arch.type=StackedHourglassRoadNt")
    with pytest.raises(ConfigError, match=r"did you mean StackedHourglassRoadNet\?"):
        config.init_obj("arch", module_arch)


def test_constructor_value_error_names_the_config_key():
    config = parse("--set", "arch.args.block=transformer")
    with pytest.raises(ConfigError, match="'arch.args.block': must be one of"):
        config.init_obj("arch", module_arch)


def test_missing_key_is_named(tmp_path):
    content = json.loads((REPO / "config.json").read_text())
    del content["loss"]
    path = tmp_path / "config.json"
    path.write_text(json.dumps(content))
    config = parse(config=path)
    with pytest.raises(ConfigError, match="'loss.type' is missing"):
        config.init_obj("loss", module_loss)
    del content["trainer"]
    path.write_text(json.dumps(content))
    with pytest.raises(ConfigError, match="config key 'trainer' is missing"):
        parse(config=path)


def test_bad_argument_to_constructor_names_the_section():
    config = parse("--set", "loss.args={\"seg_weight\": 1, \"colour\": 2}")
    with pytest.raises(ConfigError, match="unknown config key 'loss.args.colour'; known: seg_weight"):
        config.init_obj("loss", module_loss)


def test_missing_and_invalid_config_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        parse(config=tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="bad.json is not valid JSON"):
        parse(config=bad)


def test_run_folders_follow_save_dir_and_record_every_value_read(tmp_path):
    config = parse("--set", f"trainer.save_dir={tmp_path}", "--set", "predictor.tta=true")
    settings = config.settings(TrainerSettings, "trainer")
    config.settings(PredictorSettings, "predictor")
    config.init_obj("optimizer", torch.optim, [torch.zeros(1, requires_grad=True)])
    config.arguments("data_loader", module_data)
    config.place_run(settings.save_dir)
    config.prepare_run_dirs()
    assert config.save_dir == tmp_path / "models" / "toy-spacenet" / config.run_id
    assert config.log_dir == tmp_path / "log" / "toy-spacenet" / config.run_id
    saved = json.loads((config.save_dir / "config.json").read_text())
    assert saved["trainer"]["save_dir"] == str(tmp_path)
    assert "channels_last" not in saved["trainer"] and "predictor" in saved
    resolved = json.loads((config.save_dir / "resolved.json").read_text())
    assert resolved["trainer"] == dataclasses.asdict(settings)
    assert resolved["trainer"]["channels_last"] is True
    assert resolved["predictor"] == {"window": 512, "margin": 72, "batch_size": 4, "tta": True,
                                     "precision": "auto", "compile": False, "threshold": 0.5}
    assert resolved["optimizer"]["type"] == "Adam"
    assert resolved["optimizer"]["args"]["lr"] == 0.001
    assert resolved["optimizer"]["args"]["betas"] == [0.9, 0.999]
    # Nested settings are recorded field by field, the defaults of the labels included.
    assert resolved["data_loader"]["args"]["labels"] == dataclasses.asdict(LabelSettings())
    assert (config.log_dir / "info.log").exists()


def test_settings_refuse_unknown_and_mistyped_keys_naming_them():
    config = parse()
    assert config.settings(PredictorSettings, "predictor").window == 512
    config = parse("--set", "predictor.windw=256")
    with pytest.raises(ConfigError, match="unknown config key 'predictor.windw'; did you mean window"):
        config.settings(PredictorSettings, "predictor")
    config = parse("--set", "predictor.margin=wide")
    with pytest.raises(ConfigError, match="'predictor.margin' expects an integer, got 'wide'"):
        config.settings(PredictorSettings, "predictor")
    config = parse("--set", "predictor.margin=300")
    with pytest.raises(ConfigError, match="'predictor.window': must exceed 2 \\* margin"):
        config.settings(PredictorSettings, "predictor")


def test_settings_take_defaults_and_require_what_has_none():
    assert from_config(GraphSettings, {}, "graph") == GraphSettings()
    assert from_config(GraphSettings, {"spur_length": 12}, "graph").spur_length == 12.0
    with pytest.raises(ConfigError, match="'trainer.epochs' is missing"):
        from_config(TrainerSettings, {}, "trainer")
    with pytest.raises(ConfigError, match="'trainer.early_stop' expects an integer or null"):
        from_config(TrainerSettings, {"epochs": 1, "type": "JointTrainer", "early_stop": "soon"},
                    "trainer")
    with pytest.raises(ConfigError, match="'graph.method' expects 'skeleton' \\| 'connectivity', got 'magic'"):
        from_config(GraphSettings, {"method": "magic"}, "graph")


def test_set_null_takes_effect():
    config = parse("--set", "trainer.valid_split=null", "--set", "trainer.early_stop=null")
    assert config["trainer"]["valid_split"] is None
    settings = config.settings(TrainerSettings, "trainer")
    assert settings.valid_split is None and settings.early_stop is None


def test_config_inherits_from_its_base(tmp_path):
    base = json.loads((REPO / "config.json").read_text())
    derived = parse(config=REPO / "configs" / "spacenet3.json")
    assert derived["name"] == "spacenet3"
    assert derived["arch"]["args"] == {**base["arch"]["args"], "num_blocks": 3, "num_feats": 128}
    assert derived["data_loader"]["args"]["batch_size"] == 16
    assert derived["data_loader"]["args"]["mean"] == base["data_loader"]["args"]["mean"]
    assert derived["optimizer"] == base["optimizer"] and "_base_" not in derived.config
    loop = tmp_path / "a.json"
    loop.write_text(json.dumps({"_base_": "a.json", "name": "x"}))
    with pytest.raises(ConfigError, match="comes back to it"):
        parse(config=loop)


def test_class_counts_are_no_network_arguments():
    # The labels fix the class counts (roads/classes.py): a count in the config is an unknown key.
    config = parse("--set", "arch.args.conn_classes=5")
    with pytest.raises(ConfigError, match="unknown config key 'arch.args.conn_classes'") as error:
        config.init_obj("arch", module_arch)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("mode, distances", [
    ("ours", {"delta": 20.0, "snap": 10.0, "min_path": 3.0, "units": "pixels"}),
    ("spacenet", {"delta": 50.0, "snap": 4.0, "min_path": 0.001, "units": "metres"}),
])
def test_apls_mode_set_on_the_command_line_takes_its_own_distances(mode, distances):
    for config in (parse("--set", f"metrics.apls.mode={mode}"),
                   parse("--set", f"metrics.apls.mode={mode}",
                         config=REPO / "configs" / "massachusetts-cpu.json")):
        apls = evaluation_settings(config).metrics.apls
        assert apls.mode == mode
        assert {key: apls.resolved()[key] for key in distances} == distances
    config = parse()
    config.update(PRESETS["spacenet"])
    assert config.settings(MetricSettings, "metrics").apls.resolved()["delta"] == 50.0
# Values a config states even where they equal a default: the recipe's headline hyper-parameters
# and the dataset's normalisation statistics, which a newcomer reads there and changes first.
HEADLINE_KEYS = {"optimizer.args.lr", "data_loader.args.batch_size", "data_loader.args.crop_size",
                 "data_loader.args.mean", "data_loader.args.std"}
MODULES = {"arch": module_arch, "data_loader": module_data, "loss": module_loss,
           "optimizer": torch.optim, "lr_scheduler": torch.optim.lr_scheduler}


def leaves(tree: dict, prefix: str = "") -> dict[str, object]:
    """dotted key -> value of every leaf of a nested config."""
    found = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            found.update(leaves(value, f"{prefix}{key}."))
        else:
            found[f"{prefix}{key}"] = value
    return {key: list(value) if isinstance(value, tuple) else value
            for key, value in found.items()}


def defaults(config: dict) -> dict[str, object]:
    """dotted key -> code default of every key with a default that `config` could state."""
    settings = {"trainer": TrainerSettings(epochs=1, type="JointTrainer"),
                "predictor": PredictorSettings(), "graph": GraphSettings(),
                "metrics": MetricSettings(), "data_loader.args.labels": LabelSettings()}
    found = {}
    for section, value in settings.items():
        found.update(leaves(dataclasses.asdict(value), f"{section}."))
    del found["trainer.epochs"], found["trainer.type"]
    for section, module in MODULES.items():
        parameters = inspect.signature(getattr(module, config[section]["type"])).parameters
        for name, parameter in parameters.items():
            if parameter.default is not parameter.empty:
                found[f"{section}.args.{name}"] = parameter.default
    return {key: list(value) if isinstance(value, tuple) else value
            for key, value in found.items()}
def test_shipped_configs_state_choices_not_defaults():
    base = json.loads((REPO / "config.json").read_text())
    code = defaults(base)
    restated = {key for key, value in leaves(base).items()
                if key in code and value == code[key] and key not in HEADLINE_KEYS}
    assert not restated, f"config.json restates code defaults: {sorted(restated)}"
    for path in sorted((REPO / "configs").glob("*.json")):
        own = json.loads(path.read_text())
        inherited = leaves(read_json(path.parent / own.pop("_base_")))
        repeated = {key for key, value in leaves(own).items()
                    if key in inherited and value == inherited[key] and key not in HEADLINE_KEYS}
        assert not repeated, f"{path.name} repeats its base: {sorted(repeated)}"


def test_a_json_write_that_fails_leaves_the_previous_file_whole(tmp_path):
    path = tmp_path / "config.json"
    write_json({"name": "first"}, path)

    class Unprintable:
        def __str__(self):
            raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        write_json({"name": "second", "value": Unprintable()}, path)
    assert json.loads(path.read_text()) == {"name": "first"}
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]
