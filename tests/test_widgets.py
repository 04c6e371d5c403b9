"""The prediction browser's page range follows its filter, and no page is ever empty."""
from __future__ import annotations

import matplotlib
import pytest
import torch

from effnb.report.widgets import PAGE_SIZE, prediction_browser, prediction_pages

matplotlib.use("Agg")


def predictions(n: int, wrong: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    labels = torch.zeros(n, dtype=torch.long)
    probs = torch.tensor([[0.9, 0.1]]).repeat(n, 1)
    probs[wrong] = torch.tensor([0.2, 0.8])
    return torch.zeros(n, 3, 8, 8), labels, probs


@pytest.mark.parametrize("n, wrong, errors_only, pages", [
    (40, [3, 17, 39], True, 1), (40, [3, 17, 39], False, 3), (32, [], False, 2), (32, [], True, 0),
    (33, list(range(33)), True, 3),
])
def test_pages_cover_exactly_the_filtered_predictions(n, wrong, errors_only, pages):
    _, labels, probs = predictions(n, wrong)
    result = prediction_pages(probs.argmax(1) != labels, errors_only)
    assert len(result) == pages and all(0 < len(page) <= PAGE_SIZE for page in result)
    shown = torch.cat(result).tolist() if result else []
    assert shown == (sorted(wrong) if errors_only else list(range(n)))


def test_page_slider_follows_the_errors_only_filter():
    browser = prediction_browser(*predictions(40, [3, 17, 39]), classes=["Cat", "Dog"])
    page, errors_only = browser.children[0], browser.children[1]
    assert errors_only.value and page.max == 0  # three errors: one page
    errors_only.value = False
    assert page.max == 2  # 40 predictions: pages 0, 1, 2 (the last holds 8)
    page.value = 2
    errors_only.value = True
    assert page.max == 0 and page.value == 0  # the slider cannot point past the last page of errors
    matplotlib.pyplot.close("all")


def test_the_crop_explorer_reaches_every_crop_the_study_uses_and_every_k_test(small_cache):
    from effnb.data.transforms import P_RANGE
    from effnb.report.widgets import crop_explorer, study_crop_range
    from effnb.train.recipes import RECIPES

    low, high = study_crop_range()
    for recipe in RECIPES.values():
        for lo, hi in filter(None, (recipe.train.p_range, recipe.train.p_range_start)):
            assert low <= lo and hi <= high
    assert low <= P_RANGE[0] and P_RANGE[1] <= high
    explorer = crop_explorer(small_cache, 64, k_test=87)
    _, proportion, k_test = explorer.children[:3]
    assert (proportion.min, proportion.max) == (low, high)
    assert k_test.step == 1 and k_test.value == 87  # 87 px reachable and shown as such
    matplotlib.pyplot.close("all")
