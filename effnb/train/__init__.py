"""Training and inference: the engine, its fast evaluation path, recipes, checkpoints, content-hashed experiments."""
from effnb.train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from effnb.train.experiments import Experiment, read_result, run_experiment
from effnb.train.feed import Feed
from effnb.train.fit import TrainConfig, TrainingDiverged, fit
from effnb.train.inference import evaluate, resolution_sweep
from effnb.train.recipes import RECIPES, Recipe, get_recipe

__all__ = ["CheckpointError", "Experiment", "Feed", "RECIPES", "Recipe", "TrainConfig", "TrainingDiverged",
           "evaluate", "fit", "get_recipe", "load_checkpoint", "read_result", "resolution_sweep", "run_experiment",
           "save_checkpoint"]
