"""Uncertainty of accuracies and a pre-declared rule for choosing between models evaluated on the same images.

- :func:`accuracy_interval`, :func:`format_accuracy`: the Wilson score interval of one accuracy (95 %).
- :func:`compare_paired`: two models on the *same* test images: the exact McNemar test on the images
  where exactly one of them is right, and a paired bootstrap interval of the accuracy difference.
- :class:`DecisionRule`: "the incumbent stands unless a challenger beats it beyond the noise",
  stated before the results are seen; :meth:`DecisionRule.decide` returns the choice and a sentence
  saying which happened. :class:`CostOrderedRule` is the same idea for candidates ordered by cost.

Per-image results travel as strings of ``0``/``1`` (one character per test image, in the order of the
evaluation indices; see :func:`effnb.utils.correct.pack_correct`), so they fit in the study's JSON files.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
from scipy.stats import binomtest, bootstrap

from effnb.utils.correct import unpack_correct

CONFIDENCE = 0.95
ALPHA = 0.05


def accuracy_interval(accuracy: float, n: int, level: float = CONFIDENCE) -> tuple[float, float]:
    """The Wilson score interval of an accuracy measured on ``n`` images, as fractions."""
    correct = round(accuracy * n)
    if n <= 0 or not 0 <= correct <= n:
        raise ValueError(f"need an accuracy in [0, 1] on n > 0 images, got accuracy={accuracy}, n={n}")
    ci = binomtest(correct, n).proportion_ci(level, method="wilson")
    return float(ci.low), float(ci.high)


def format_accuracy(accuracy: float, n: int, level: float = CONFIDENCE) -> str:
    """``"63.00 % (95 % interval 60.9–65.1 %)"``: an accuracy in % with its interval."""
    low, high = accuracy_interval(accuracy, n, level)
    return f"{100 * accuracy:.2f} % ({100 * level:.0f} % interval {100 * low:.1f}–{100 * high:.1f} %)"


def format_correct(correct) -> str:
    """:func:`format_accuracy` of per-image correctness."""
    c = unpack_correct(correct)
    return format_accuracy(float(c.mean()), c.size)


def mcnemar_exact(only_a: int, only_b: int) -> float:
    """Two-sided exact McNemar p-value: a binomial test of ``only_a`` out of the discordant pairs at 1/2.

    ``only_a``: images model A gets right and B wrong; ``only_b``: the reverse. 1.0 when there are none.
    """
    discordant = only_a + only_b
    return 1.0 if discordant == 0 else float(binomtest(only_a, discordant, 0.5).pvalue)


def paired_bootstrap_interval(a: np.ndarray, b: np.ndarray, confidence: float = CONFIDENCE,
                              n_resamples: int = 10_000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of ``mean(a) - mean(b)``, resampling images (pairs) with replacement."""
    diff = unpack_correct(a).astype(np.float64) - unpack_correct(b).astype(np.float64)
    if not diff.any():  # identical predictions: the difference is 0 in every resample
        return 0.0, 0.0
    ci = bootstrap((diff,), np.mean, n_resamples=n_resamples, confidence_level=confidence, method="percentile",
                   vectorized=True, batch=1000, rng=np.random.default_rng(seed)).confidence_interval
    return float(ci.low), float(ci.high)


@dataclass(frozen=True)
class PairedComparison:
    """A challenger against the incumbent on the same test images (accuracies and differences as fractions)."""

    challenger: str
    incumbent: str
    n: int
    challenger_accuracy: float
    incumbent_accuracy: float
    only_challenger: int  # images the challenger gets right and the incumbent wrong
    only_incumbent: int
    p_value: float  # exact McNemar, two-sided
    difference: float  # challenger - incumbent
    difference_low: float
    difference_high: float
    adjusted_p: float | None = None  # Holm-adjusted over all challengers of one decision

    def beats_incumbent(self, alpha: float = ALPHA) -> bool:
        """Better beyond the noise: (adjusted) p < ``alpha`` and the difference's interval above 0."""
        p = self.p_value if self.adjusted_p is None else self.adjusted_p
        return p < alpha and self.difference_low > 0

    def describe(self) -> str:
        p = self.p_value if self.adjusted_p is None else self.adjusted_p
        return (f"{self.challenger} - {self.incumbent}: {100 * self.difference:+.2f} points "
                f"[{100 * self.difference_low:+.2f}, {100 * self.difference_high:+.2f}], "
                f"{self.only_challenger} vs {self.only_incumbent} discordant images, McNemar p {_p_words(p)}"
                f"{' (Holm)' if self.adjusted_p is not None else ''}")


def compare_paired(challenger: str, challenger_correct, incumbent: str, incumbent_correct,
                   confidence: float = CONFIDENCE, seed: int = 0) -> PairedComparison:
    """Compare two models' per-image correctness on the same images (same order)."""
    a, b = unpack_correct(challenger_correct), unpack_correct(incumbent_correct)
    if a.shape != b.shape or a.size == 0:
        raise ValueError(f"paired comparison needs the same non-empty test images, got {a.size} and {b.size} results")
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    low, high = paired_bootstrap_interval(a, b, confidence, seed=seed)
    return PairedComparison(challenger, incumbent, int(a.size), float(a.mean()), float(b.mean()), only_a, only_b,
                            mcnemar_exact(only_a, only_b), float(a.mean() - b.mean()), low, high)


def format_p(p: float) -> str:
    """A p-value for a reader: ``"< 0.0001"`` below that, else 2 significant digits (``"0.042"``, ``"1"``)."""
    return "< 0.0001" if p < 1e-4 else f"{p:.2g}"


def _p_words(p: float) -> str:
    """``"= 0.042"`` or ``"< 0.0001"``: a p-value after its name."""
    text = format_p(p)
    return text if text.startswith("<") else f"= {text}"


def holm_adjust(p_values: Sequence[float], family: int | None = None) -> list[float]:
    """Holm-Bonferroni adjusted p-values (step-down, monotone, capped at 1), in the input order; ``family``: the
    number of hypotheses declared, when only these have been tested yet (the others counted at p = 1, which bounds
    the adjustment whatever their results turn out to be)."""
    missing = max(0, (family or len(p_values)) - len(p_values))
    p = np.asarray([*p_values, *[1.0] * missing], dtype=np.float64)
    order = np.argsort(p, kind="stable")
    steps = np.maximum.accumulate((len(p) - np.arange(len(p))) * p[order])
    adjusted = np.empty_like(p)
    adjusted[order] = np.minimum(steps, 1.0)
    return adjusted.tolist()[:len(p_values)]


@dataclass(frozen=True)
class DecisionRule:
    """A choice declared before the results: ``incumbent`` stands unless a challenger beats it beyond the noise.

    "Beyond the noise": on the same test images, the exact McNemar p-value (Holm-adjusted over the
    challengers when ``holm``) is below ``alpha`` *and* the bootstrap interval of the accuracy
    difference lies above 0. If several challengers do, the most accurate of them is chosen.
    """

    question: str  # e.g. "which baseline to scale"
    incumbent: str
    why_incumbent: str  # e.g. "the seed's choice"
    alpha: float = ALPHA
    confidence: float = CONFIDENCE
    holm: bool = True

    def statement(self) -> str:
        """The rule in one paragraph, to print before any result."""
        holm = ", Holm-adjusted over the challengers," if self.holm else ""
        return (f"Decision rule ({self.question}), fixed before the results: {self.incumbent} ({self.why_incumbent}) "
                f"stands unless a challenger beats it beyond the noise on the same test images: exact McNemar "
                f"p{holm} below {self.alpha:g} and the {100 * self.confidence:g} % paired-bootstrap interval of "
                f"the accuracy difference above 0. If several do, the most accurate of them is chosen.")

    def decide(self, correct: Mapping[str, object], seed: int = 0) -> Decision:
        """Apply the rule to per-image correctness of every candidate (the incumbent among them)."""
        if self.incumbent not in correct:
            raise ValueError(f"the incumbent {self.incumbent!r} has no results (got {sorted(correct)})")
        comparisons = [compare_paired(name, c, self.incumbent, correct[self.incumbent], self.confidence, seed)
                       for name, c in correct.items() if name != self.incumbent]
        if not comparisons:
            inc = format_correct(correct[self.incumbent])
            return Decision(self, self.incumbent, False, f"{self.incumbent} had no challenger: it stands ({inc}).", [])
        return self.decide_comparisons(comparisons)

    def decide_comparisons(self, comparisons: Sequence[PairedComparison], family: int | None = None) -> Decision:
        """Apply the rule to comparisons already made against the incumbent (for instance read from a committed
        record); any ``adjusted_p`` they carry is replaced by the Holm adjustment over these challengers, or over
        the ``family`` of challengers declared when some are not run yet (see :func:`holm_adjust`)."""
        if not comparisons or any(c.incumbent != self.incumbent for c in comparisons):
            raise ValueError(f"need comparisons against {self.incumbent!r}, got "
                             f"{[(c.challenger, c.incumbent) for c in comparisons]}")
        adjusted = holm_adjust([c.p_value for c in comparisons], family) if self.holm else [None] * len(comparisons)
        comparisons = [PairedComparison(**{**asdict(c), "adjusted_p": p}) for c, p in zip(comparisons, adjusted)]
        winners = [c for c in comparisons if c.beats_incumbent(self.alpha)]
        inc = format_accuracy(comparisons[0].incumbent_accuracy, comparisons[0].n)
        if winners:
            best = max(winners, key=lambda c: c.challenger_accuracy)
            sentence = (f"{best.challenger} beats {self.incumbent} beyond the noise ({best.describe()}): "
                        f"the study switches from {self.incumbent} ({self.why_incumbent}, {inc}) to {best.challenger} "
                        f"({format_accuracy(best.challenger_accuracy, best.n)}).")
            return Decision(self, best.challenger, True, sentence, comparisons)
        closest = max(comparisons, key=lambda c: c.difference)
        sentence = (f"No challenger beats {self.incumbent} beyond the noise (closest: {closest.describe()}): "
                    f"{self.incumbent}, {self.why_incumbent}, stands ({inc}).")
        return Decision(self, self.incumbent, False, sentence, comparisons)


@dataclass(frozen=True)
class CostOrderedRule:
    """A choice declared before the results among candidates ordered by cost, cheapest first: the cheapest
    stands, and walking up in cost each candidate replaces the current choice only if it beats it beyond the
    noise (exact McNemar p < ``alpha`` and the paired-bootstrap interval of the difference above 0).

    The walk stops at the first candidate that does not: a fixed-sequence test, so the chance of any false
    switch stays below ``alpha`` without a correction (each hypothesis is tested only if all before it fell).
    """

    question: str  # e.g. "which FixRes step"
    order: tuple[str, ...]  # cheapest first
    alpha: float = ALPHA
    confidence: float = CONFIDENCE

    def statement(self) -> str:
        """The rule in one paragraph, to print before any result."""
        return (f"Decision rule ({self.question}), fixed before the results: {self.order[0]}, the cheapest, stands; "
                f"walking up in cost ({' < '.join(self.order)}), each costlier candidate replaces the current choice "
                f"only if it beats it beyond the noise on the same test images: exact McNemar p below {self.alpha:g} "
                f"and the {100 * self.confidence:g} % paired-bootstrap interval of the accuracy difference above 0. "
                f"The walk stops at the first that does not (a fixed sequence: no correction needed, the chance of "
                f"any false switch stays below {self.alpha:g}).")

    def decide(self, correct: Mapping[str, object], seed: int = 0) -> Decision:
        """Apply the rule to per-image correctness of every candidate of ``order``."""
        missing = [name for name in self.order if name not in correct]
        if missing:
            raise ValueError(f"no results for {missing} (got {sorted(correct)})")
        current, comparisons, steps = self.order[0], [], []
        for name in self.order[1:]:
            c = compare_paired(name, correct[name], current, correct[current], self.confidence, seed)
            comparisons.append(c)
            if c.beats_incumbent(self.alpha):
                steps.append(f"{name} beats {current} beyond the noise ({c.describe()})")
                current = name
            else:
                steps.append(f"{name} does not beat {current} beyond the noise ({c.describe()})")
                untested = self.order[self.order.index(name) + 1:]
                if untested:
                    steps.append(f"the walk stops there, {' and '.join(untested)} not tested")
                break
        cheapest = ", the cheapest," if current == self.order[0] else ""
        sentence = "; ".join(steps) + f". So {current}{cheapest} is chosen ({format_correct(correct[current])})."
        return Decision(self, current, current != self.order[0], sentence, comparisons)


@dataclass(frozen=True)
class Decision:
    """The outcome of a rule: what was chosen, whether the default was overturned, and why."""

    rule: DecisionRule | CostOrderedRule
    chosen: str
    switched: bool
    sentence: str
    comparisons: list[PairedComparison] = field(default_factory=list)

    def table(self) -> pd.DataFrame:
        """One row per comparison made, in words a reader can take in: accuracies and the difference with its
        interval in points (2 decimals), discordant counts, p-values as :func:`format_p` writes them (Holm "not
        applied" under a rule without it), "yes"/"no"; indexed by the candidate."""
        rows = [{"candidate": c.challenger, "against": c.incumbent, "accuracy": f"{100 * c.challenger_accuracy:.2f} %",
                 "against accuracy": f"{100 * c.incumbent_accuracy:.2f} %",
                 "difference (points) [95 % CI]": f"{100 * c.difference:+.2f} [{100 * c.difference_low:+.2f}, "
                                                  f"{100 * c.difference_high:+.2f}]",
                 "only candidate right": c.only_challenger, "only against right": c.only_incumbent,
                 "McNemar p": format_p(c.p_value),
                 "Holm p": format_p(c.adjusted_p) if c.adjusted_p is not None else
                 "not needed (fixed sequence)" if isinstance(self.rule, CostOrderedRule) else "not applied",
                 "beats it": "yes" if c.beats_incumbent(self.rule.alpha) else "no"}
                for c in self.comparisons]
        return pd.DataFrame(rows).set_index("candidate") if rows else pd.DataFrame(rows)

    def as_dict(self) -> dict:
        """JSON-ready record of the rule, the choice and every comparison."""
        return {"rule": asdict(self.rule), "statement": self.rule.statement(), "chosen": self.chosen,
                "switched": self.switched, "sentence": self.sentence, "comparisons": [asdict(c) for c in self.comparisons]}


# Flip TTA against one forward pass, on the same images: the ablation at the final budget and notebook 05 both use it.
TTA_RULE = DecisionRule("whether flip TTA becomes the default evaluation", "one forward pass",
                        "half the evaluation cost", holm=False)


def decide_tta(one_pass: object, flipped: object, seed: int = 0) -> Decision:
    """:data:`TTA_RULE` on one model's per-image correctness without and with flip TTA, on the same images."""
    return TTA_RULE.decide({"one forward pass": one_pass, "flip TTA": flipped}, seed)
