"""The claims statistics of experiments/accuracy.py on outcomes with known answers, and the
graph variants of experiments/graph_methods.py."""
import json

import pytest

from experiments import graph_methods
from experiments.accuracy import (
    CLAIMS,
    Outcome,
    Run,
    claim_runs,
    config_runs,
    interval,
    main,
    paired_differences,
)
from roads.extraction import GraphSettings
from utils.errors import UserError


def test_claim_runs_pair_the_seeds():
    runs = claim_runs(["task"], 2)
    assert [run.name for run in runs] == ["paper, seed 0", "segmentation only, seed 0",
                                         "paper, seed 1", "segmentation only, seed 1"]
    assert runs[1].sets == ("trainer.seed=0", "data_loader.args.seed=0", CLAIMS["task"][2])


def test_config_runs_are_the_config_alone_or_one_per_seed():
    assert config_runs("massachusetts-cpu", None) == [Run("massachusetts-cpu")]
    runs = config_runs("massachusetts-cpu", 2)
    assert [run.name for run in runs] == ["massachusetts-cpu, seed 0", "massachusetts-cpu, seed 1"]
    assert runs[1].sets == ("trainer.seed=1", "data_loader.args.seed=1")


def test_interval_of_a_known_sample():
    # differences 1, 2, 3: mean 2, sd 1, t(0.975, 2) = 4.3027 -> half width 2.484
    text = interval([1.0, 2.0, 3.0])
    assert text.startswith("+2.000 [-0.484, +4.484] tie")
    assert "pairs would settle it" in text
    assert "paper better" in interval([1.0, 1.1, 0.9])
    assert "variant better" in interval([-1.0, -1.1, -0.9])
    assert "no interval" in interval([0.5])


def test_paired_differences_match_seeds():
    def outcome(name, apls):
        return Outcome(Run(name), 1.0, {"ours": {"road_iou": 0.5, "relaxed_f1": 0.8, "apls": apls,
                                                 "topo_f1": 0.6}})
    outcomes = [outcome("paper, seed 0", 0.6), outcome("segmentation only, seed 0", 0.5),
                outcome("paper, seed 1", 0.7), outcome("segmentation only, seed 1", 0.5),
                outcome("paper, seed 2", 0.5)]  # seed 2 has no pair yet
    rows = paired_differences(outcomes, "task", "ours").splitlines()
    apls = next(row for row in rows if "| apls |" in row)
    assert "| 2 |" in apls and "0.650 ± 0.071" in apls and "+0.150" in apls
    road = next(row for row in rows if "| road_iou |" in row)
    assert "+0.000 [+0.000, +0.000]" in road


def test_report_prints_the_recorded_runs_without_running_anything(tmp_path, capsys):
    scores = {"paper": (0.50, 0.80, 0.52, 0.30), "segmentation only": (0.48, 0.79, 0.45, 0.25)}
    for seed in (0, 1):
        for name, (iou, relaxed, apls_score, topo) in scores.items():
            metrics = {"road_iou": iou + seed / 100, "f1": 0.6, "relaxed_f1": relaxed,
                       "conn_miou": 0.3, "apls": apls_score + seed / 50, "topo_f1": topo}
            slug = f"{name}_seed_{seed}".replace(" ", "_")
            (tmp_path / f"{slug}.json").write_text(json.dumps(
                {"run": f"{name}, seed {seed}", "sets": [], "minutes": 20.0,
                 "metrics": {"ours": metrics}}))
    main(["--config", "configs/massachusetts-cpu.json", "--claims", "task", "--seeds", "3",
          "--record", str(tmp_path), "--report", "--out", str(tmp_path / "never")])
    printed = capsys.readouterr().out
    assert not (tmp_path / "never").exists()
    apls_row = next(line for line in printed.splitlines() if "| ours | apls |" in line)
    assert "| 2 |" in apls_row and "+0.070 [+0.070, +0.070] paper better" in apls_row


def test_graph_variants_vary_one_key_at_a_time_for_both_methods():
    base = GraphSettings()
    named = graph_methods.variants(base, graph_methods.parse_vary(
        ["spur_length_m=20,30", "connectivity.max_gap_m=15"]))
    assert list(named) == ["skeleton", "connectivity",
                           "skeleton, spur_length_m=20", "connectivity, spur_length_m=20",
                           "skeleton, spur_length_m=30", "connectivity, spur_length_m=30",
                           "skeleton, connectivity.max_gap_m=15",
                           "connectivity, connectivity.max_gap_m=15"]
    assert named["connectivity, spur_length_m=30"].spur_length_m == 30
    assert named["connectivity, spur_length_m=30"].method == "connectivity"
    assert named["skeleton, connectivity.max_gap_m=15"].connectivity.max_gap_m == 15
    assert named["skeleton, connectivity.max_gap_m=15"].spur_length_m == base.spur_length_m
    assert len(graph_methods.variants(base)) == 5  # without --vary: the steps switched off


@pytest.mark.parametrize("assignment", ["spur_length=", "spur_lenght_m=3", "graph.spur_length_m=3",
                                        "connectivity.max_gap=3", "spur_length_m=x"])
def test_graph_variants_refuse_unknown_keys_and_bad_values(assignment):
    with pytest.raises(UserError, match="--vary"):
        graph_methods.variants(GraphSettings(), graph_methods.parse_vary([assignment]))
