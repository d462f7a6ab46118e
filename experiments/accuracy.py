"""Accuracy on real imagery: train a config, evaluate its best checkpoint, print one table.

    python -m experiments.accuracy --config configs/massachusetts-cpu.json
    python -m experiments.accuracy --config configs/massachusetts-cpu.json --ablations --epochs 3
    python -m experiments.accuracy --config configs/massachusetts-cpu.json --claims task --seeds 3 \
        --whole-tiles ../shared/real/massachusetts-nodata --out ~/claims

Each run is `python train.py -c CONFIG` followed by `python test.py -r <model_best.pth> --split val`
(the same pipeline as validation), as a user would type them; the table has road IoU, F1,
relaxed F1 (rho = metrics.rho, 3 px: Mnih's protocol), connectivity mIoU, APLS and the training
minutes. `--ablations` trains, at one equal budget, the paper's claims against their variants:
joint vs segmentation only (`loss.args.conn_weight` 0), two seeds each, then `ga` vs `se` vs
`basic` blocks and 2 vs 1 stacks, one seed each. `--sweep` trains, at the same budget, the
config with one setting changed at a time (learning rate, crop size and count, batch, width,
connectivity loss weight, fp32 instead of bf16): which of them the CPU config should change.
`--recipe` trains the candidates for the CPU recipe at the full budget (RECIPE below); with
none of these, `--seeds N` trains the config as it is with seeds 0 to N-1 (the chosen recipe).
`--preset` adds the evaluation presets of `evaluation/presets.py` to each run's evaluation;
`--threshold` evaluates the first run's checkpoint at other road-probability thresholds too.

`--claims task` (and `block`, `stacks`) is the powered comparison: `--seeds N` pairs of runs at the
config's full budget, the paper's setting against its variant with the same seeds (network
initialisation and data order), each scored on val and on the whole tiles of `--whole-tiles`.
It prints each side's mean and standard deviation and the paired differences with a 95 %
t-interval, and how many pairs would make the interval exclude zero at the observed effect.
A run whose `outcome.json` exists is not run again; a run interrupted in training resumes from
its newest checkpoint (`train.py -r RUN_FOLDER`), so the driver can be stopped and restarted.
`--record DIR` keeps each finished run's outcome as one small JSON file apart from the checkpoints
(experiments/results/ holds the committed ones); `--report` prints the tables of the runs recorded
there without running anything.
"""
import argparse
import json
import math
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from scipy import stats

from utils.checkpoint import write_json
from utils.errors import UserError, run_cli

REPO = Path(__file__).resolve().parents[1]
COLUMNS = ("road_iou", "f1", "relaxed_f1", "conn_miou", "apls")
CLAIM_COLUMNS = ("road_iou", "relaxed_f1", "apls", "topo_f1")
# The paper's setting, and the variant each claim is measured against (one config change).
CLAIMS = {
    "task": ("joint", "segmentation only", "loss.args.conn_weight=0.0"),
    "block": ("ga blocks", "basic blocks", 'arch.args.block="basic"'),
    "stacks": ("2 stacks", "1 stack", "arch.args.num_stacks=1"),
}


@dataclass(frozen=True)
class Run:
    """One training run: a name and the `--set` assignments that make it."""

    name: str
    sets: tuple[str, ...] = ()
    group: str = ""


@dataclass
class Outcome:
    run: Run
    minutes: float
    metrics: dict[str, dict] = field(default_factory=dict)  # by evaluation preset


ABLATIONS = (
    Run("joint, seed 0", ("trainer.seed=0",), "task"),
    Run("joint, seed 1", ("trainer.seed=1", "data_loader.args.seed=1"), "task"),
    Run("segmentation only, seed 0", ("trainer.seed=0", "loss.args.conn_weight=0.0"), "task"),
    Run("segmentation only, seed 1", ("trainer.seed=1", "data_loader.args.seed=1",
                                      "loss.args.conn_weight=0.0"), "task"),
    Run("se blocks", ("arch.args.block=\"se\"",), "block"),
    Run("basic blocks", ("arch.args.block=\"basic\"",), "block"),
    Run("1 stack", ("arch.args.num_stacks=1",), "stacks"),
)

SWEEP = (
    Run("as configured, seed 0", ("trainer.seed=0",), "sweep"),
    Run("lr 0.002", ("trainer.seed=0", "optimizer.args.lr=0.002"), "sweep"),
    Run("lr 0.0005", ("trainer.seed=0", "optimizer.args.lr=0.0005"), "sweep"),
    Run("crop 384, 1 per tile", ("trainer.seed=0", "data_loader.args.crop_size=384",
                                 "data_loader.args.crops_per_tile=1"), "sweep"),
    Run("batch 8", ("trainer.seed=0", "data_loader.args.batch_size=8"), "sweep"),
    Run("width 96", ("trainer.seed=0", "arch.args.num_feats=96"), "sweep"),
    Run("conn_weight 0.5", ("trainer.seed=0", "loss.args.conn_weight=0.5"), "sweep"),
    Run("fp32 training", ("trainer.seed=0", "trainer.amp=false"), "sweep"),
)


def seeded(seed: int) -> tuple[str, ...]:
    """The assignments of one seed: network initialisation and data order."""
    return (f"trainer.seed={seed}", f"data_loader.args.seed={seed}")


def longer(epochs: int) -> tuple[str, ...]:
    """Train for `epochs`, the cosine schedule stretched to match."""
    return (f"trainer.epochs={epochs}", f"lr_scheduler.args.T_max={epochs}")


# Candidates for the CPU recipe, judged on val and the whole tiles against the config's own runs
# ("paper, seed N" of --claims): two more epochs fill the 25-minute budget; batch 2 doubles the
# steps at about the same cost per image (at 3 epochs steps mattered more than context); half the
# connectivity weight tests whether segmentation gains what the connectivity task costs it. A
# candidate replaces the paper's setting only if it wins by more than the seed spread; the last
# run repeats the chosen one with another seed.
RECIPE = (
    Run("12 epochs, seed 0", (*seeded(0), *longer(12)), "recipe"),
    Run("12 epochs, batch 2, seed 0", (*seeded(0), *longer(12),
                                       "data_loader.args.batch_size=2"), "recipe"),
    Run("12 epochs, conn_weight 0.5, seed 0", (*seeded(0), *longer(12),
                                               "loss.args.conn_weight=0.5"), "recipe"),
    Run("12 epochs, seed 1", (*seeded(1), *longer(12)), "recipe"),
)


def claim_runs(claims: list[str], seeds: int) -> list[Run]:
    """Paired runs: for each seed, the paper's setting once and each claimed variant once."""
    runs = []
    for seed in range(seeds):
        runs.append(Run(f"paper, seed {seed}", seeded(seed), "paper"))
        runs += [Run(f"{CLAIMS[claim][1]}, seed {seed}", (*seeded(seed), CLAIMS[claim][2]), claim)
                 for claim in claims]
    return runs


def config_runs(name: str, seeds: int | None) -> list[Run]:
    """The config as it is: one run with its own seeds, or one run per seed 0 to `seeds`-1."""
    if seeds is None:
        return [Run(name)]
    return [Run(f"{name}, seed {seed}", seeded(seed), "config") for seed in range(seeds)]


def command(*args: str) -> subprocess.CompletedProcess:
    """Run `python <args>` from the repo root, output shown as it comes (progress bars too)."""
    result = subprocess.run([sys.executable, *args], cwd=REPO, stdout=subprocess.PIPE, text=True)
    if result.returncode != 0:
        raise UserError(f"`python {' '.join(args)}` failed with exit code {result.returncode}")
    return result


def train_and_test(config: Path, run: Run, save_dir: Path, epochs: int | None,
                   evaluations: dict[str, list[str]], extra: list[str],
                   done: Path | None = None) -> Outcome:
    """Train `run`, then evaluate its best checkpoint on val once per entry of `evaluations`
    (a name and the `test.py` arguments that make it). The outcome goes to `done` (by default
    `save_dir/outcome.json`); a run whose outcome exists is not run again."""
    done = done or save_dir / "outcome.json"
    if done.exists():
        saved = json.loads(done.read_text())
        return Outcome(run, saved["minutes"], saved["metrics"])
    sets = [*run.sets, *extra, f"trainer.save_dir={json.dumps(str(save_dir))}"]
    if epochs is not None:
        sets += [f"trainer.epochs={epochs}", f"lr_scheduler.args.T_max={epochs}"]
    arguments = [item for assignment in sets for item in ("--set", assignment)]
    trained = save_dir / "trained.json"
    if not trained.exists():
        start = time.perf_counter()
        started = sorted(save_dir.glob("models/*/*/checkpoint-*.pth"))
        if started:  # interrupted earlier: go on from its newest checkpoint that loads
            command("train.py", "-r", str(started[-1].parent))
        else:
            command("train.py", "-c", str(config), *arguments)
        write_json({"minutes": (time.perf_counter() - start) / 60}, trained)
    minutes = json.loads(trained.read_text())["minutes"]
    checkpoints = sorted(save_dir.glob("models/*/*/model_best.pth"), key=lambda p: p.stat().st_mtime)
    if not checkpoints:
        raise UserError(f"{save_dir}: training wrote no model_best.pth (is a validation split set?)")
    outcome = Outcome(run, minutes)
    for name, test_args in evaluations.items():
        out = checkpoints[-1].parent / f"val-{name.replace(' ', '-')}"
        command("test.py", "-r", str(checkpoints[-1]), "--split", "val", "--out", str(out),
                *test_args)
        outcome.metrics[name] = json.loads((out / "metrics.json").read_text())
    write_json({"run": run.name, "sets": run.sets, "minutes": minutes,
                "metrics": outcome.metrics}, done)
    return outcome


def table(outcomes: list[Outcome]) -> str:
    """The results as a Markdown table, one row per run and evaluation preset."""
    header = ["run", "evaluation", *COLUMNS, "train min"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for outcome in outcomes:
        for preset, metrics in outcome.metrics.items():
            values = [f"{metrics[key]:.3f}" for key in COLUMNS]
            lines.append(f"| {outcome.run.name} | {preset} | " + " | ".join(values)
                         + f" | {outcome.minutes:.1f} |")
    return "\n".join(lines)


def seed_spread(outcomes: list[Outcome]) -> str:
    """For runs that differ only by seed, the range of each metric: smaller differences between
    variants are ties."""
    by_variant: dict[str, list[dict]] = {}
    for outcome in outcomes:
        if ", seed " in outcome.run.name:
            by_variant.setdefault(outcome.run.name.split(", seed ")[0], []).append(
                outcome.metrics["ours"])
    lines = []
    for variant, runs in by_variant.items():
        if len(runs) > 1:
            spreads = {key: max(r[key] for r in runs) - min(r[key] for r in runs) for key in COLUMNS}
            means = {key: statistics.fmean(r[key] for r in runs) for key in COLUMNS}
            lines.append(f"{variant}: mean " + ", ".join(f"{k} {means[k]:.3f}" for k in COLUMNS)
                         + "; seed spread " + ", ".join(f"{k} {spreads[k]:.3f}" for k in COLUMNS))
    return "\n".join(lines)


def paired_differences(outcomes: list[Outcome], claim: str, evaluation: str) -> str:
    """Markdown rows for one claim on one evaluation: each side's mean and standard deviation over
    seeds, and the mean paired difference (paper minus variant) with its 95 % t-interval."""
    by_seed: dict[str, dict[str, dict]] = {}
    for outcome in outcomes:
        name, seed = outcome.run.name.rsplit(", seed ", 1)
        by_seed.setdefault(seed, {})[name] = outcome.metrics.get(evaluation)
    paper, variant = "paper", CLAIMS[claim][1]
    pairs = [(runs[paper], runs[variant]) for runs in by_seed.values()
             if runs.get(paper) and runs.get(variant)]
    lines = []
    for key in CLAIM_COLUMNS:
        a = [first[key] for first, _ in pairs if key in first]
        b = [second[key] for _, second in pairs if key in second]
        if len(a) != len(pairs) or len(b) != len(pairs) or not pairs:
            continue
        lines.append(f"| {CLAIMS[claim][0]} vs {variant} | {evaluation} | {key} | {len(pairs)} | "
                     f"{describe(a)} | {describe(b)} | {interval([x - y for x, y in zip(a, b)])} |")
    return "\n".join(lines)


def describe(values: list[float]) -> str:
    spread = statistics.stdev(values) if len(values) > 1 else math.nan
    return f"{statistics.fmean(values):.3f} ± {spread:.3f}"


def interval(differences: list[float]) -> str:
    """Mean difference, its 95 % t-interval, and the number of pairs at which an effect of this
    size and spread would give an interval that excludes zero."""
    n = len(differences)
    mean = statistics.fmean(differences)
    if n < 2:
        return f"{mean:+.3f} (one pair: no interval)"
    sd = statistics.stdev(differences)
    half = stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n)
    verdict = ("paper better" if mean - half > 0 else "variant better" if mean + half < 0
               else "tie")
    needed = next((k for k in range(2, 1000)
                   if sd == 0 or stats.t.ppf(0.975, k - 1) * sd / math.sqrt(k) < abs(mean)), None)
    settle = f"; ~{needed} pairs would settle it" if verdict == "tie" and needed else ""
    return f"{mean:+.3f} [{mean - half:+.3f}, {mean + half:+.3f}] {verdict}{settle}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m experiments.accuracy",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, required=True, help="config to train")
    parser.add_argument("--epochs", type=int, help="override trainer.epochs (and the schedule)")
    parser.add_argument("--ablations", action="store_true", help="train the ablation runs")
    parser.add_argument("--sweep", action="store_true", help="train the tuning sweep runs")
    parser.add_argument("--recipe", action="store_true",
                        help="train the candidates for the CPU recipe at the full budget")
    parser.add_argument("--preset", action="append", default=[],
                        help="also evaluate with this preset (e.g. authors); repeatable")
    parser.add_argument("--claims", action="append", default=[], choices=sorted(CLAIMS),
                        help="paired comparison of the paper's setting against this variant")
    parser.add_argument("--seeds", type=int,
                        help="seed pairs for --claims (3 unless given); alone, the config as it "
                             "is with seeds 0 to N-1")
    parser.add_argument("--whole-tiles", type=Path,
                        help="also evaluate every run on this split folder (images/, masks/)")
    parser.add_argument("--threshold", action="append", default=[], type=float,
                        help="also evaluate the first run at this threshold; repeatable")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a config change for every run")
    parser.add_argument("--out", type=Path, default=REPO / "saved" / "accuracy",
                        help="folder of the runs and of results.json")
    parser.add_argument("--report", action="store_true",
                        help="run nothing: print the tables of the runs found in --record")
    parser.add_argument("--record", type=Path,
                        help="folder of one small JSON outcome per finished run, kept apart from "
                             "the checkpoints so that it can be committed; runs recorded there "
                             "are not run again")
    args = parser.parse_args(argv)
    runs = [*(ABLATIONS if args.ablations else ()), *(SWEEP if args.sweep else ()),
            *(RECIPE if args.recipe else ()),
            *(claim_runs(args.claims, args.seeds or 3) if args.claims else ())]
    # A run with the same changes as an earlier one (the sweep's baseline is "joint, seed 0").
    runs = [run for index, run in enumerate(runs)
            if all(run.sets != earlier.sets for earlier in runs[:index])] or config_runs(
        args.config.stem, args.seeds)
    evaluations = {"ours": [], **{preset: ["--preset", preset] for preset in args.preset}}
    if args.whole_tiles:
        tiles = args.whole_tiles.resolve()
        evaluations[tiles.name] = ["--split", tiles.name, "--set",
                                   f"data_loader.args.data_dir={json.dumps(str(tiles.parent))}"]
    outcomes = []
    for index, run in enumerate(runs):
        # Named by the run alone, so that a restarted driver finds the runs it has done.
        slug = run.name.replace(" ", "_").replace(",", "")
        save_dir = args.out / slug
        done = args.record / f"{slug}.json" if args.record else None
        if args.report:
            if done is not None and done.exists():
                saved = json.loads(done.read_text())
                outcomes.append(Outcome(run, saved["minutes"], saved["metrics"]))
            continue
        print(f"== {run.name} ({index + 1}/{len(runs)})", file=sys.stderr, flush=True)
        thresholds = {f"threshold {value}": ["--set", f"predictor.threshold={value}"]
                      for value in (args.threshold if index == 0 else ())}
        outcomes.append(train_and_test(args.config, run, save_dir, args.epochs,
                                       {**evaluations, **thresholds}, args.set, done))
        args.out.mkdir(parents=True, exist_ok=True)
        write_json([{"run": o.run.name, "sets": o.run.sets, "minutes": o.minutes,
                     "metrics": o.metrics} for o in outcomes], args.out / "results.json")
    print(table(outcomes))
    spread = seed_spread(outcomes)
    if spread:
        print(spread)
    if args.claims:
        print("\n| claim | evaluation | metric | pairs | paper mean ± sd | variant mean ± sd "
              "| paired difference [95 % CI] |\n|---|---|---|---|---|---|---|")
        for claim in args.claims:
            for evaluation in evaluations:
                rows = paired_differences(outcomes, claim, evaluation)
                if rows:
                    print(rows)


if __name__ == "__main__":
    run_cli(main)
