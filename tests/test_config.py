"""ConfigParser: overrides, --set, factories and their one-line errors."""
import argparse
import json
from pathlib import Path

import pytest
import torch

import model.loss as module_loss
import model.network as module_arch
from base.base_trainer import TrainerSettings
from evaluation.predictor import PredictorSettings
from roads.extraction import GraphSettings
from utils.config import ConfigParser, Override
from utils.errors import ConfigError
from utils.settings import from_config

REPO = Path(__file__).resolve().parents[1]
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


def test_set_int_into_float_key_becomes_float():
    assert parse("--set", "optimizer.args.lr=1")["optimizer"]["args"]["lr"] == 1.0


def test_unknown_set_key_names_it_and_suggests():
    with pytest.raises(ConfigError, match=r"unknown config key 'trainer.epoch'.*epochs"):
        parse("--set", "trainer.epoch=3")
    with pytest.raises(ConfigError, match="unknown config key 'nonsense'"):
        parse("--set", "nonsense.key=3")


def test_wrong_value_type_names_the_key():
    with pytest.raises(ConfigError, match="'trainer.epochs' expects int"):
        parse("--set", "trainer.epochs=many")


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
    with pytest.raises(ConfigError, match=r"'arch.type': unknown type 'UNet'.*StackedHourglassRoadNet"):
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
    with pytest.raises(ConfigError, match="no 'trainer' section"):
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


def test_run_folders_follow_save_dir(tmp_path):
    config = parse("--set", f"trainer.save_dir={tmp_path}")
    config.prepare_run_dirs()
    assert config.save_dir == tmp_path / "models" / "toy-spacenet" / config.run_id
    assert config.log_dir == tmp_path / "log" / "toy-spacenet" / config.run_id
    saved = json.loads((config.save_dir / "config.json").read_text())
    assert saved["trainer"]["save_dir"] == str(tmp_path)
    assert (config.log_dir / "info.log").exists()


def test_settings_refuse_unknown_and_mistyped_keys_naming_them():
    config = parse()
    assert config.settings(PredictorSettings, "predictor").window == 512
    config["predictor"]["windw"] = 256
    with pytest.raises(ConfigError, match="unknown config key 'predictor.windw'; did you mean window"):
        config.settings(PredictorSettings, "predictor")
    del config["predictor"]["windw"]
    config["predictor"]["margin"] = "wide"
    with pytest.raises(ConfigError, match="'predictor.margin' expects an integer, got 'wide'"):
        config.settings(PredictorSettings, "predictor")
    config["predictor"]["margin"] = 300
    with pytest.raises(ConfigError, match="'predictor.window': must exceed 2 \\* margin"):
        config.settings(PredictorSettings, "predictor")


def test_settings_take_defaults_and_require_what_has_none():
    assert from_config(GraphSettings, {}, "graph") == GraphSettings()
    assert from_config(GraphSettings, {"spur_length": 12}, "graph").spur_length == 12.0
    with pytest.raises(ConfigError, match="'trainer.seed' is missing"):
        from_config(TrainerSettings, {"epochs": 1}, "trainer")
    with pytest.raises(ConfigError, match="'trainer.early_stop' expects an integer or null"):
        from_config(TrainerSettings, {"epochs": 1, "seed": 0, "early_stop": "soon"}, "trainer")
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
    assert derived["graph"] == base["graph"] and "_base_" not in derived.config
    loop = tmp_path / "a.json"
    loop.write_text(json.dumps({"_base_": "a.json", "name": "x"}))
    with pytest.raises(ConfigError, match="comes back to it"):
        parse(config=loop)


def test_keys_of_earlier_versions_are_read_with_a_warning(tmp_path, caplog):
    content = json.loads((REPO / "config.json").read_text())
    content["arch"]["args"].update(seg_classes=2, conn_classes=5)
    path = tmp_path / "old.json"
    path.write_text(json.dumps(content))
    config = parse(config=path)
    assert "conn_classes" not in config["arch"]["args"]
    assert "'arch.args.conn_classes' is deprecated" in caplog.text
    content["arch"]["args"]["conn_classes"] = 7
    path.write_text(json.dumps(content))
    with pytest.raises(ConfigError, match="'arch.args.conn_classes' must be 5"):
        parse(config=path)
