"""The checkpoints committed under reports/models load with the current code and match the published table."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from effnb.train import load_checkpoint

MODELS = Path(__file__).resolve().parents[1] / "reports" / "models"


def test_every_published_checkpoint_loads_as_the_table_says():
    if not (MODELS / "final.json").is_file():
        pytest.skip("no published study in reports/models")
    final = json.loads((MODELS / "final.json").read_text())
    for row in final["rows"]:
        model, meta = load_checkpoint(MODELS.parent / row["published_checkpoint"])
        assert meta["preprocessing"]["k_train"] <= row["k_test"] and meta["classes"] == ["Cat", "Dog"]
        assert sum(p.numel() for p in model.parameters()) > 0
