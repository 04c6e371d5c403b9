"""Publishing a run's final models leaves only that run's checkpoints in reports/models."""
from __future__ import annotations

import json

from effnb.report.index import publish_final
from effnb.study.outputs import write_output


def test_publish_keeps_only_the_checkpoints_final_json_names(tmp_path):
    artifacts, reports = tmp_path / "artifacts", tmp_path / "reports"
    checkpoint = artifacts / "experiments" / "fixres-full-abc" / "model.pt"
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_bytes(b"weights")
    write_output(artifacts, "final", {"rows": [{"id": "full", "checkpoint": str(checkpoint)}]})
    (reports / "models").mkdir(parents=True)
    (reports / "models" / "final-C-phi2-old.pt").write_bytes(b"an earlier run's")
    published = json.loads(publish_final(artifacts, reports).read_text())
    assert sorted(p.name for p in (reports / "models").glob("*.pt")) == ["fixres-full-abc.pt"]
    assert published["rows"][0]["published_checkpoint"] == "models/fixres-full-abc.pt"
