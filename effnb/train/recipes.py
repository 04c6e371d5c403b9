"""Training recipes as data: named, frozen combinations of optimiser, schedule, loss, augmentation and budget.

A :class:`Recipe` is what a profile, ``effnb train --recipe`` and ``effnb ablate`` name. Its ``epochs`` is
a budget in *equivalent epochs* (epochs at the target resolution; an epoch at size s costs
(s / k_train)^2 of one), so recipes with progressive resizing and without spend the same compute;
:meth:`Recipe.train_config` turns that budget into real epochs for the engine.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace

from effnb.data.transforms import P_RANGE
from effnb.train.fit import TrainConfig

# TrainConfig fields a recipe never sets: the caller chooses them per run (and as_dict leaves them out at default).
_PER_RUN = ("epochs", "early_stopping", "trainable")
_TEMPLATE_DEFAULTS = TrainConfig(epochs=0)


@dataclass(frozen=True)
class Recipe:
    """A named training recipe: a :class:`TrainConfig` template plus a budget and a batch size.

    Every field except ``name``/``about`` determines the result. The template's ``epochs`` is unused: the
    budget ``epochs`` (equivalent epochs) sets it in :meth:`train_config`.
    """

    name: str
    about: str
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=0, lr=2e-3))
    epochs: float = 25  # budget in equivalent epochs at the target resolution
    batch_size: int = 64

    def __post_init__(self) -> None:
        if self.epochs < 0 or self.batch_size < 1:
            raise ValueError(f"recipe {self.name!r}: epochs must be >= 0 and batch_size >= 1")
        # tuples, so a recipe built from JSON lists compares and hashes like one built in code
        object.__setattr__(self, "train", replace(
            self.train, epochs=0, p_range=tuple(self.train.p_range),
            p_range_start=tuple(self.train.p_range_start) if self.train.p_range_start else None))

    def as_dict(self) -> dict:
        """One flat dict, under the field names provenance and ablation records have always hashed."""
        flat = {k: v for k, v in asdict(self.train).items()
                if k not in _PER_RUN or (k != "epochs" and v != getattr(_TEMPLATE_DEFAULTS, k))}
        return {"name": self.name, "about": self.about, **flat, "epochs": self.epochs, "batch_size": self.batch_size}

    def with_changes(self, **changes) -> Recipe:
        """A copy with some fields changed, recipe or TrainConfig ones by their flat names (unknown ones raise)."""
        own = {f.name for f in fields(self)}
        template = {f.name for f in fields(TrainConfig)} - {"epochs"}
        unknown = set(changes) - own - template
        if unknown:
            raise ValueError(f"unknown recipe field(s): {', '.join(sorted(unknown))}")
        train = replace(changes.pop("train", self.train), **{k: changes.pop(k) for k in list(changes) if k in template})
        return replace(self, train=train, **changes)

    def train_config(self, k_train: int, epochs: float | None = None, **overrides) -> TrainConfig:
        """The engine's config for a target resolution ``k_train`` and a budget of ``epochs`` equivalent epochs.

        With progressive resizing the real epoch count is the one whose equivalent cost is closest to the budget.
        """
        budget = self.epochs if epochs is None else epochs
        base = replace(self.train, epochs=max(round(budget), 0), **overrides)
        if base.size_start == 1.0 or budget == 0:
            return base
        candidates = [replace(base, epochs=n) for n in range(1, 4 * int(budget) + 2)]
        return min(candidates, key=lambda c: abs(c.equivalent_epochs(k_train) - budget))


RECIPES: dict[str, Recipe] = {
    # The seed study's recipe as its author published it. Seed 000's text is SILENT on the optimiser, learning rate, schedule, loss, batch
    # size and number of epochs (its "Final Results" section names only phi = 4 and the accuracies); its
    # "Augmentation" section gives the crop. Every other value below comes from the author's published code
    # (AdamStein97/Efficient-Network-Scaling-with-Test-Resolution-Fine-Tuning, its configs and trainer, as
    # summarised in DESIGN.md, "What the seed's author published"):
    "published": Recipe(
        name="published", about="the author's published code: Adam, lr 1e-3 constant, plain cross-entropy, batch 64",
        train=TrainConfig(
            epochs=0,
            optimizer="adam",  # the author's published code: Adam
            lr=1e-3,  # the author's published code: 1e-3
            weight_decay=0.0,  # Adam without weight decay in the author's published code
            schedule="constant",  # the author's published code: no schedule
            label_smoothing=0.0,  # the author's published code: plain sparse categorical cross-entropy
            p_range=P_RANGE,  # seed 000's "Augmentation" section: crop proportion U(0.2, 0.7)
        ),
        epochs=150,  # the author's published code: 150 epochs
        batch_size=64,  # the author's published code: batch 64
    ),
    # The ablation's reference point: a common modern default to measure each change against.
    "onecycle": Recipe(
        name="onecycle", about="effnb's first default: AdamW, one-cycle to lr 2e-3, label smoothing 0.1",
    ),
    # The cpu profile's default: the stack that won the ablation (reports/ablation.md, "weak+progressive+batch32");
    # linear decay and EMA did not beat one-cycle there, so they are out. Weight decay 0.025 (half the onecycle
    # default) beat 0.05 at the final model's budget (reports/ablation-final-wd0.05.md, "wd-half", Holm p = 0.00025).
    "budget": Recipe(
        name="budget", about="AdamW, one-cycle to lr 2e-3, weight decay 0.025, label smoothing 0.1, batch 32; "
                             "progressive resizing 0.5 -> 1 x k_train with crops rising from U(0.6, 1.0) to U(0.4, 0.9)",
        train=TrainConfig(epochs=0, lr=2e-3, weight_decay=0.025, size_start=0.5, p_range_start=(0.6, 1.0),
                          p_range=(0.4, 0.9)),
        batch_size=32,
    ),
}


def get_recipe(name: str) -> Recipe:
    """The recipe called ``name``."""
    try:
        return RECIPES[name]
    except KeyError:
        raise ValueError(f"unknown recipe {name!r}: choose one of {', '.join(RECIPES)}") from None
