"""The whole study, end to end, with the ``smoke`` profile, through the runner a user calls; and its reports."""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import matplotlib
import pytest
from matplotlib.colors import to_rgb
from synthetic import make_image_folder

from effnb.cli.commands import main
from effnb.study.compute import chosen_row
from effnb.study.holdout import fingerprint
from effnb.study.outputs import NOTEBOOKS, OutputMissing, read_output
from effnb.study.profiles import PROFILES, get_profile

REPO = Path(__file__).resolve().parents[1]


def test_profiles_are_defined_in_one_place():
    assert set(PROFILES) == {"smoke", "cpu", "full"}
    with pytest.raises(ValueError, match="unknown profile"):
        get_profile("laptop")


def test_missing_output_names_the_notebook_to_run(tmp_path):
    with pytest.raises(OutputMissing, match="02_baselines"):
        read_output(tmp_path, "baselines")


@pytest.fixture(scope="module")
def smoke_study(tmp_path_factory) -> Path:
    """Run the whole smoke study once for this module; returns its folder (data, artifacts, reports)."""
    root = tmp_path_factory.mktemp("smoke")
    data = make_image_folder(root / "PetImages", per_class=150, size=(72, 96), seed=1)
    code = main(["study", "--profile", "smoke", "--data-dir", str(data), "--artifacts-dir", str(root / "artifacts"),
                 "--reports-dir", str(root / "reports")])
    assert code == 0
    return root


@pytest.mark.slow
def test_smoke_study_writes_every_report_and_final_json(smoke_study):
    artifacts, reports = smoke_study / "artifacts", smoke_study / "reports"
    for stem in NOTEBOOKS.values():
        html = (reports / f"{stem}.html").read_text()
        assert "profile &#x27;smoke&#x27;" in html or "profile 'smoke'" in html
    index = (reports / "index.html").read_text()
    assert all(f'href="{stem}.html"' in index for stem in NOTEBOOKS.values()) and "The final result" in index
    final = read_output(artifacts, "final")
    assert len(final["rows"]) == 5 and final["findings"]
    assert isinstance(final["chosen_tta"], bool) and final["decisions"]["flip_tta"]["chosen"] in ("one forward pass", "flip TTA")
    chosen = chosen_row(final)  # the answer opens the index
    assert f"<strong>{100 * chosen['accuracy']:.2f} %</strong>" in index and 'src="data:image/png;base64,' in index
    for text in ((artifacts / "final.json").read_text(), (reports / "models" / "final.json").read_text()):
        assert str(smoke_study) not in text and str(Path.home()) not in text  # no paths of this machine
    for row in final["rows"]:
        assert 0.0 <= row["accuracy"] <= 1.0 and row["loss"] > 0 and row["n"] == final["test2_images"]
    analysis = final["analysis"]  # the predictions grid: 5 FixRes steps and 3 baselines against every test2 image
    assert len(analysis["models"]) == 8 and analysis["images"] == final["test2_images"]
    assert 0 <= analysis["all_wrong"] <= analysis["any_wrong"] <= analysis["images"]
    assert len(analysis["hardest"]) == min(12, analysis["images"])
    assert "Across the 8 models" in (reports / "06_final.html").read_text()
    assert all("Stopping is by rank, not by a test" in (reports / f"{stem}.html").read_text()
               for stem in ("02_baselines", "03_grid"))  # the halving rule is stated before its results
    reads = json.loads((reports / "models" / "test2-reads.json").read_text())["reads"]  # the reads of test2, published
    assert len(reads) == 1 and reads[0]["profile"] == "smoke" and "How often <code>test2</code> has been read" in index
    assert "Once, as recorded in" in index and "Every read of" in (reports / "06_final.html").read_text()
    published = json.loads((reports / "models" / "final.json").read_text())
    assert all((reports / row["published_checkpoint"]).is_file() and "checkpoint" not in row
               for row in published["rows"])
    data = read_output(artifacts, "data")
    lo, hi = data["crop"]
    assert lo <= data["sigma"] <= hi and 0.2 <= data["sigma_seed_study_crop"] <= 0.7


@pytest.mark.slow
def test_smoke_study_decides_by_its_rules_and_records_how(smoke_study):
    artifacts = smoke_study / "artifacts"
    final = read_output(artifacts, "final")
    assert set(final["decisions"]) == {"baseline", "grid", "test_resolution", "fixres_step", "flip_tta"}
    assert final["chosen_tta"] == (final["decisions"]["flip_tta"]["chosen"] == "flip TTA")
    for decision in final["decisions"].values():
        assert decision["statement"].startswith("Decision rule") and decision["sentence"]
    grid = read_output(artifacts, "grid")["selection"]
    assert [r["epochs"] for r in grid["rungs"]] == [1, 1]  # the smoke profile's two rungs
    assert len(grid["rungs"][0]["results"]) == 6 and "experiment 1" in grid["rungs"][-1]["results"]
    prov = final["provenance"]
    assert prov["profile"]["name"] == "smoke" and prov["choices"]["baseline"] == final["decisions"]["baseline"]["chosen"]
    assert json.loads((artifacts / "test2_read.json").read_text())["choices_hash"] == fingerprint(prov["choices"])


@pytest.mark.slow
def test_reports_are_fit_for_a_reader(smoke_study):
    reports = smoke_study / "reports"
    machine_paths = [str(smoke_study), str(REPO), str(Path.home()), sys.prefix]
    for page in [*NOTEBOOKS.values(), "index"]:
        html = (reports / f"{page}.html").read_text()
        assert len(html.encode()) < 1_000_000, f"{page}.html weighs {len(html.encode()):,} bytes"
        title = re.search(r"<title>([^<]+)</title>", html)
        assert title and title.group(1).strip() not in {"Notebook", page}
        assert not [p for p in machine_paths if p in html], f"{page}.html shows a path of this machine"
        assert "PosixPath(" not in html and "application/vnd.jupyter.widget" not in html
        assert not re.findall(r"<script[^>]*\bsrc=|<link[^>]*href=\"https?:", html), f"{page}.html loads from the web"
        if page != "index":
            assert 'href="index.html"' in html and "What this shows" in html
            assert html.count("<b>Run:</b>") + html.count("<strong>Run:</strong>") == 1  # the run stated once
    # every report's wall time on the index comes from papermill's record of that run
    executed = json.loads((smoke_study / "artifacts" / "executed" / "04_scaling.ipynb").read_text())
    seconds = executed["metadata"]["papermill"]["duration"]
    shown = f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"
    assert re.search(rf"04 · [^<]*</a></td><td>{re.escape(shown)}</td>", (reports / "index.html").read_text())


@pytest.mark.slow
def test_running_again_reads_finished_experiments_back(smoke_study):
    artifacts = smoke_study / "artifacts"
    assert main(["study", "--profile", "smoke", "--data-dir", str(smoke_study / "PetImages"), "--artifacts-dir",
                 str(artifacts), "--reports-dir", str(smoke_study / "reports"), "--only", "02_baselines"]) == 0
    assert "finished earlier: read back" in (artifacts / "executed" / "02_baselines.ipynb").read_text()


def _walk_strings(data):
    if isinstance(data, dict):
        for value in data.values():
            yield from _walk_strings(value)
    elif isinstance(data, list):
        for value in data:
            yield from _walk_strings(value)
    elif isinstance(data, str):
        yield data


@pytest.mark.slow
def test_final_json_names_no_absolute_path(smoke_study):
    for path in (smoke_study / "artifacts" / "final.json", smoke_study / "reports" / "models" / "final.json"):
        absolute = [s for s in _walk_strings(json.loads(path.read_text())) if s.startswith(("/", "~")) or ":\\" in s]
        assert not absolute, f"{path.name} holds absolute paths: {absolute[:3]}"


@pytest.mark.slow
def test_tables_show_no_raw_python_values(smoke_study):
    """No None/True/False/nan cell, no 'p 0.0000', no 0/1/2 index column in any report's tables."""
    for stem in [*NOTEBOOKS.values(), "index"]:
        html = (smoke_study / "reports" / f"{stem}.html").read_text()
        cells = [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", html, re.S)]
        raw = sorted({c for c in cells if c in {"None", "True", "False", "nan", "NaN", "0.0000"}})
        assert not raw, f"{stem}.html shows raw values {raw}"
        for table in re.findall(r"<table.*?</table>", html, re.S):
            head = re.search(r"<thead>(.*?)</thead>", table, re.S)
            firsts = re.findall(r"<tr[^>]*>\s*<th[^>]*>(.*?)</th>", table.split("</thead>")[-1], re.S)
            unnamed = head is not None and head.group(1).count("<tr") == 1
            assert not (unnamed and len(firsts) > 1 and firsts == [str(i) for i in range(len(firsts))]), \
                f"{stem}.html: a table with a 0/1/2 index column"


def accuracies_without_interval(fig) -> list[str]:
    """Every accuracy curve or point of ``fig`` drawn without an error bar or an interval band of its colour."""
    from matplotlib.container import ErrorbarContainer

    missing = []
    for ax in fig.axes:
        if "accuracy" not in ax.get_ylabel().lower():
            continue
        bars = [c for c in ax.containers if isinstance(c, ErrorbarContainer) and c.lines[0] and c.lines[2]]
        with_bars = {id(line) for c in bars for line in (c.lines[0], *c.lines[1])}  # data line and caps
        bands = {tuple(round(v, 3) for v in to_rgb(c.get_facecolor()[0][:3])) for c in ax.collections
                 if len(c.get_facecolor())}
        for line in ax.lines:
            if line.get_marker() in (None, "None", "", "*") or id(line) in with_bars:
                continue  # a reference line, a frontier, or the chosen model's star over a point with its bar
            if tuple(round(v, 3) for v in to_rgb(line.get_color())) not in bands:
                missing.append(f"{ax.get_ylabel()}: {line.get_label()}")
    return missing


@pytest.mark.slow
def test_every_plotted_accuracy_carries_its_interval(smoke_study):
    """The study's accuracy figures, drawn again from its own outputs, show an interval for every accuracy."""
    from effnb.report.plots import (
        plot_accuracy_vs_compute,
        plot_learning_curves,
        plot_resolution_sweep,
        plot_selection,
    )
    from effnb.study.ablation import PHI_RECORD, phi_decision, phi_points
    from effnb.study.compute import compute_points
    from effnb.study.selection import Rung, Selection

    matplotlib.use("Agg")
    artifacts = smoke_study / "artifacts"
    finetune = read_output(artifacts, "finetune")
    baselines = read_output(artifacts, "baselines")
    figures = {
        "compute": plot_accuracy_vs_compute(compute_points(artifacts)),
        "learning curves": plot_learning_curves(list(baselines["results"].values())),
        "sweep, same images": plot_resolution_sweep({"unchanged": finetune["unchanged_sweep"],
                                                     "recalibrated": finetune["recalibrated_sweep"]},
                                                    finetune["k_train"], finetune["k_test"]),
        "sweep, fine-tuned": plot_resolution_sweep(finetune["curves"], finetune["k_train"], finetune["k_test"]),
    }
    for name in ("baselines", "grid"):  # the selection figures, from the rungs each output records
        rungs = read_output(artifacts, name)["selection"]["rungs"]
        selection = Selection(tuple(Rung(r["rung"] - 1, r["epochs"], r["results"], tuple(r["promoted"]))
                                    for r in rungs), decision=None)
        figures[name] = plot_selection(selection.table())
    if PHI_RECORD.is_file():
        record = json.loads(PHI_RECORD.read_text())
        figures["phi"] = plot_accuracy_vs_compute(phi_points(record, 1000, phi_decision(record).chosen), named=True)
    for name, fig in figures.items():
        assert not accuracies_without_interval(fig), (name, accuracies_without_interval(fig))
        matplotlib.pyplot.close(fig)
    # the check itself can fail: a bare accuracy curve is caught
    bare, ax = matplotlib.pyplot.subplots()
    ax.plot([1, 2], [60, 62], marker="o")
    ax.set_ylabel("held-out accuracy (%)")
    assert accuracies_without_interval(bare)
    matplotlib.pyplot.close(bare)
