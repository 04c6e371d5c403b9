"""``effnb train``: one experiment, its options merged as plain dicts (defaults < --config < flags given)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from effnb.cli.options import (
    DATA_OPTIONS,
    Option,
    add_options,
    finite_float,
    positive_float,
    positive_int,
    print_json,
)

TRAIN_PRECEDENCE = ("Precedence, lowest first: built-in defaults < the recipe (--recipe, else the profile's) < "
                    "the --config JSON file < flags given on the command line. --config keys are the long option "
                    "names with '_' for '-' (e.g. {\"recipe\": \"published\", \"batch_size\": 32}).")

# after DATA_OPTIONS and --config, in --help's order
TRAIN_OPTIONS = (
    Option("recipe", help="training recipe from effnb.train.recipes (default: the profile's)"),
    Option("epochs", positive_float, help="budget in equivalent epochs (default: the profile's)"),
    Option("lr", positive_float, help="peak learning rate (default: the recipe's)"),
    Option("batch_size", positive_int, help="default: the recipe's"),
    Option("resolution", positive_int, help="training resolution k_train (default: the scaled spec's)"),
    Option("baseline", default="C", choices=("A", "B", "C")),
    Option("alpha", finite_float, 1.2),
    Option("beta", finite_float, 1.05),
    Option("gamma", finite_float, 1.23),
    Option("phi", finite_float, 0),
    Option("final", bool, False, help="the final-model budget instead of the selection budget"),
    Option("device"),
)
OPTIONS = {option.name: option for option in (*DATA_OPTIONS, *TRAIN_OPTIONS)}


def add_train_args(parser: argparse.ArgumentParser) -> None:
    """The train flags, all with default None: :func:`train_options` tells the flags given from the defaults."""
    add_options(parser, DATA_OPTIONS, defaults=False)
    parser.add_argument("--config", help="JSON file with any of the options below")
    add_options(parser, TRAIN_OPTIONS, defaults=False)


def read_config(config_file: str) -> dict:
    """The --config file's options, each checked like its flag; an unknown or mistyped key is a ValueError naming it."""
    try:
        config = json.loads(Path(config_file).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read --config {config_file}: {exc}") from None
    if not isinstance(config, dict):
        raise ValueError(f"--config {config_file} must hold one JSON object")  # noqa: TRY004 (a one-line error)
    unknown = sorted(set(config) - set(OPTIONS))
    if unknown:
        raise ValueError(f"--config {config_file}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(OPTIONS))}")
    checked = {}
    for key, value in config.items():
        try:
            checked[key] = OPTIONS[key].from_json(value)
        except (argparse.ArgumentTypeError, ValueError) as exc:
            raise ValueError(f"--config {config_file}: {key}: {exc} (got {value!r})") from None
    return checked


def train_options(args: argparse.Namespace) -> dict:
    """``effnb train``'s options merged as documented in :data:`TRAIN_PRECEDENCE` (the recipe is applied later):
    the defaults, then the --config file's values, then the flags given (those that are not None in ``args``)."""
    defaults = {name: option.default for name, option in OPTIONS.items()}
    config = read_config(args.config) if args.config else {}
    given = {name: getattr(args, name) for name in OPTIONS if getattr(args, name) is not None}
    return defaults | config | given


def prepare_ranked(profile: str, data_dir: str | None, artifacts_dir: str, seed: int):
    """The study, prepared by rank 0 first (it may decode and write the cache), then read by the other ranks."""
    from effnb.study.context import prepare_study
    from effnb.train import distributed

    if not distributed.is_main():
        distributed.barrier()
    study = prepare_study(profile, data_dir, artifacts_dir, seed)
    if distributed.is_main():
        distributed.barrier()
    return study


def run_ranked(exp, cache, artifacts_dir: str | Path, device, progress: bool = True) -> dict | None:
    """Rank 0 runs (or reads back) ``exp`` and alone reads and writes its folder; the other ranks lend their
    compute to its :func:`fit` and return None. One process: just :func:`run_experiment`."""
    from effnb.nn.model import EffNet
    from effnb.train import distributed
    from effnb.train.experiments import run_experiment
    from effnb.train.fit import fit

    if distributed.is_main():
        try:
            return run_experiment(exp, cache, artifacts_dir, device, progress)
        finally:
            distributed.release_followers()  # when rank 0 trained nothing, the others stop waiting
    # weights and state come from rank 0; fit returns at once when rank 0 trains nothing
    fit(EffNet(exp.spec), exp.train_feed(cache), exp.train, val=exp.eval_feed(cache), seed=exp.seed,
        device=device, progress=False)
    return None


def cmd_train(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from effnb.nn.model import BASELINES
    from effnb.nn.scaling import scale
    from effnb.study.profiles import get_profile
    from effnb.train import distributed
    from effnb.train.recipes import get_recipe
    from effnb.utils.device import pick_device

    o = train_options(args)
    device = pick_device(o["device"])  # refused before the images are decoded when unknown or unavailable
    distributed.init_from_env(device)  # under torchrun: one rank of the process group
    device = distributed.local_device(device)
    recipe = get_recipe(o["recipe"] or get_profile(o["profile"]).recipe)
    recipe = recipe.with_changes(**{k: o[k] for k in ("lr", "batch_size") if o[k] is not None})
    study = prepare_ranked(o["profile"], o["data_dir"], o["artifacts_dir"], o["seed"])
    study.recipe = recipe
    spec = scale(BASELINES[o["baseline"]], o["alpha"], o["beta"], o["gamma"], o["phi"])
    if o["resolution"]:
        spec = replace(spec, resolution=o["resolution"])
    if o["final"]:
        exp = study.final_experiment(spec, o["epochs"])
    else:
        exp = study.selection_experiment(spec, o["epochs"])
    result = run_ranked(exp, study.cache, study.artifacts_dir, device)
    if result is None:  # another rank than 0: rank 0 reports
        return 0
    print_json({k: result[k] for k in ("name", "params", "flops", "train_seconds", "checkpoint")} |
               {"recipe": study.recipe.name, "train_config": result["train_config"], "eval": result.get("eval")},
               indent=2)
    return 0
