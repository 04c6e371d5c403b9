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
    _read(artifacts, "2026-11-28T10:00:00+00:00", "abc")
    publish_final(artifacts, reports)  # publishing the final models publishes the reads of test2 with them
    assert json.loads((reports / "models" / "test2-reads.json").read_text())["reads"][0]["final_model"] == "final-abc"


def _read(artifacts, at: str, key: str) -> None:
    artifacts.mkdir(parents=True, exist_ok=True)
    read = {"at": at, "choices_hash": key, "profile": "cpu", "final_model": f"final-{key}", "fixres_step": "bn_recal",
            "code": {"commit": "abc123", "modified": False}}
    (artifacts / "test2_read.json").write_text(json.dumps({"choices_hash": key, "choices": {}, "reads": [read]}))


def test_the_history_of_test2_reads_outlives_a_fresh_artifacts_folder(tmp_path):
    from effnb.report.index import TEST2_READS, publish_test2_reads
    from effnb.study.holdout import reads_table

    reports = tmp_path / "reports"
    assert publish_test2_reads(tmp_path / "none", reports) == [] and not (reports / TEST2_READS).exists()
    _read(tmp_path / "first", "2026-11-28T10:00:00+00:00", "phi2")
    _read(tmp_path / "second", "2026-11-29T10:00:00+00:00", "phi1")
    publish_test2_reads(tmp_path / "first", reports)
    publish_test2_reads(tmp_path / "first", reports)  # published twice: recorded once
    reads = publish_test2_reads(tmp_path / "second", reports)
    assert [r["final_model"] for r in reads] == ["final-phi2", "final-phi1"]
    assert json.loads((reports / TEST2_READS).read_text())["reads"] == reads
    row = reads_table(reads)[0]
    assert row["when (UTC)"] == "2026-11-28 10:00" and row["FixRes step"].startswith("BN statistics recalibrated")
