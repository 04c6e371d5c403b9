"""What the seed study (``../shared/seeds/000_b3a5393dd92b3105.txt``) publishes, in one place.

Every number carries the line of seed 000 it is read from (``tests/test_seed_results.py`` checks
each against that line).

Seed 000 does not say which optimizer, learning rate, schedule, batch size or number of epochs it
trained and fine-tuned with, which layers fine-tuning trains, how the test splits were drawn, or what
hardware it ran on. The author's published code does (Adam, lr 1e-3 constant, 150 epochs, batch 64;
fine-tuning with Adam, lr 1e-4, 40 epochs, applied to every trainable variable): cite those as "the author's published
code", and where both are silent say "the seed does not say; we use ...".
"""
from __future__ import annotations

from dataclasses import dataclass

SEED_FILE = "000_b3a5393dd92b3105.txt"  # in ../shared/seeds/ beside the repository


@dataclass(frozen=True)
class Quoted:
    """A value the seed states, with the line of seed 000 it is read from (1-based)."""

    value: float | int | str | tuple[float, float]
    line: int
    text: str  # the characters of that line the value is read from


@dataclass(frozen=True)
class SeedRow:
    """One row of a seed result table: held-out loss and accuracy (as a fraction)."""

    name: str
    loss: float
    accuracy: float
    line: int


# "The dataset contains 23,000 images of varying size; 4,000 of these images are taken to be our test set."
IMAGES = Quoted(23_000, 28, "23,000 images")
TEST_IMAGES = Quoted(4_000, 28, "4,000")
# "The proportion of the image placed within the crop is uniformly sampled between 0.2 and 0.7."
CROP_PROPORTION = Quoted((0.2, 0.7), 36, "between 0.2 and 0.7")
K_TRAIN = Quoted(64, 37, "scaled to 64x64")
BASELINE_PARAMS = Quoted(50_000, 106, "roughly 50,000")

BASELINES: dict[str, SeedRow] = {
    "A": SeedRow("A", 0.5246, 0.6847, 117),
    "B": SeedRow("B", 0.4098, 0.8175, 118),
    "C": SeedRow("C", 0.3561, 0.8448, 119),
}
# The "Selected Architecture" table (lines 123-130) is C's, the best of the three (line 119).
CHOSEN_BASELINE = Quoted("C", 119, "C")

# The grid at phi = 1 ("Scaling Factor Selection"): (alpha, beta, gamma), test loss, test accuracy.
GRID: list[tuple[tuple[float, float, float], SeedRow]] = [
    ((1.2, 1.05, 1.23), SeedRow("experiment 1", 0.2581, 0.8909, 148)),
    ((1.2, 1.23, 1.05), SeedRow("experiment 2", 0.2846, 0.8788, 149)),
    ((1.4, 1.02, 1.17), SeedRow("experiment 3", 0.2623, 0.8909, 150)),
    ((1.4, 1.05, 1.14), SeedRow("experiment 4", 0.2659, 0.8795, 151)),
    ((1.4, 1.14, 1.05), SeedRow("experiment 5", 0.3356, 0.8564, 152)),
    ((1.4, 1.17, 1.02), SeedRow("experiment 6", 0.3230, 0.8558, 153)),
]
GRID_MULTIPLIERS: list[tuple[float, float, float]] = [abg for abg, _ in GRID]  # the six candidates, in its order
CHOSEN_GRID_EXPERIMENT = Quoted(1, 155, "experiment 1 were selected")

SIGMA = Quoted(0.444, 169, "0.444")
K_IMAGE_TEST = Quoted(72, 181, "72/ 64")
R = Quoted(0.5, 181, "0.5")  # "r = 0.444 * 72 / 64 ~ 0.5": test at twice the training resolution
FINAL_PHI = Quoted(4, 191, "phi=4")

# "Final Results" on a second random test split of the same size (lines 185-196).
FINAL: dict[str, SeedRow] = {
    "without fine-tuning": SeedRow("Trained without fine tuning", 0.2520, 0.8977, 195),
    "with fine-tuning": SeedRow("Trained with fine tuning", 0.1277, 0.9466, 196),
}
FINE_TUNING_GAIN = FINAL["with fine-tuning"].accuracy - FINAL["without fine-tuning"].accuracy
