"""``effnb evaluate`` on folders and checkpoints the test makes, and its errors for bad input."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from synthetic import TINY_SPEC, make_image_folder, run_cli

from effnb.cli.commands import main
from effnb.data.cache import build_cache
from effnb.nn.model import BASELINES, EffNet, Scaling
from effnb.nn.scaling import scale
from effnb.train.checkpoint import load_checkpoint, save_checkpoint
from effnb.train.feed import Feed
from effnb.train.inference import evaluate

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def lowercase_folder(tmp_path_factory):
    root = make_image_folder(tmp_path_factory.mktemp("eval"), per_class=12, seed=5,
                             class_names={"Cat": "cat", "Dog": "DOG"})
    (root / "cat" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return root


def test_evaluate_reports_accuracy_loss_count_and_skipped(checkpoint, lowercase_folder, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    code, out, _ = run_cli(capsys, "evaluate", "--checkpoint", str(checkpoint), "--data-dir", str(lowercase_folder), "--json")
    assert code == 0
    result = json.loads(out)
    assert result["images"] == 24 and result["skipped"] == 1
    assert (result["k_test"], result["k_image_test"]) == (40, 45)
    # the same numbers as evaluating the model directly with the checkpoint's preprocessing
    cache = build_cache(lowercase_folder, tmp_path / "direct", side=64)
    model = torch.load(checkpoint, weights_only=True)
    net = EffNet(TINY_SPEC)
    net.load_state_dict(model["state_dict"])
    expected = evaluate(net, Feed(cache, np.arange(len(cache)), 40, "eval", 45), progress=False)
    assert result["accuracy"] == pytest.approx(expected["accuracy"])
    assert result["loss"] == pytest.approx(expected["loss"], rel=1e-5)


def test_evaluate_at_another_k_test(checkpoint, lowercase_folder, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    code, out, _ = run_cli(capsys, "evaluate", "--checkpoint", str(checkpoint), "--data-dir", str(lowercase_folder),
                       "--k-test", "64", "--json")
    assert code == 0 and json.loads(out)["k_test"] == 64 and json.loads(out)["k_image_test"] == 72


def test_evaluate_with_flip_tta_matches_the_mirrored_average(checkpoint, lowercase_folder, capsys, tmp_path,
                                                             monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    net, meta = load_checkpoint(checkpoint)
    torch.manual_seed(0)
    with torch.no_grad():  # large random weights, so a mirrored image gets clearly other logits
        for param in net.parameters():
            if param.dim() > 1:
                param.normal_(std=2 / param[0].numel() ** 0.5)
    checkpoint = save_checkpoint(tmp_path / "asymmetric.pt", net, TINY_SPEC, meta["classes"], meta["preprocessing"])
    code, out, _ = run_cli(capsys, "evaluate", "--checkpoint", str(checkpoint), "--data-dir", str(lowercase_folder),
                           "--tta", "--json")
    result = json.loads(out)
    assert code == 0 and result["tta"] is True
    cache = build_cache(lowercase_folder, tmp_path / "direct", side=64)
    order = {c.lower(): i for i, c in enumerate(meta["classes"])}  # the folders' classes in the checkpoint's order
    cache.labels = np.array([order[c.lower()] for c in cache.classes])[np.asarray(cache.labels)]
    expected = evaluate(net, Feed(cache, np.arange(24), 40, "eval", 45), progress=False, tta=True)
    assert result["loss"] == pytest.approx(expected["loss"], rel=1e-5)
    capsys.readouterr()  # the direct cache's own lines
    plain = json.loads(run_cli(capsys, "evaluate", "--checkpoint", str(checkpoint), "--data-dir",
                               str(lowercase_folder), "--json")[1])
    assert plain["tta"] is False and plain["loss"] != pytest.approx(result["loss"], rel=1e-4)


@pytest.mark.parametrize("content, message", [
    (None, "checkpoint not found"),
    (b"garbage bytes", "cannot read checkpoint"),
    ("other-format", "not an effnb checkpoint"),
    ("v1", "earlier effnb"),
])
def test_bad_checkpoints_give_one_line_errors(content, message, lowercase_folder, capsys, tmp_path):
    path = tmp_path / "bad.pt"
    if content == "other-format":
        torch.save({"weights": torch.zeros(2)}, path)
    elif content == "v1":
        torch.save({"format": "effnb-checkpoint-v1", "spec": TINY_SPEC.to_dict(), "state_dict": {}}, path)
    elif content is not None:
        path.write_bytes(content)
    code, _, err = run_cli(capsys, "evaluate", "--checkpoint", str(path), "--data-dir", str(lowercase_folder))
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1


def test_classes_that_do_not_match_are_refused(checkpoint, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    root = make_image_folder(tmp_path / "other", per_class=3, class_names={"Cat": "horse", "Dog": "zebra"})
    code, _, err = run_cli(capsys, "evaluate", "--checkpoint", str(checkpoint), "--data-dir", str(root))
    assert code == 2 and "do not match" in err


def test_missing_data_folder_is_refused(checkpoint, tmp_path, capsys):
    code, _, err = run_cli(capsys, "evaluate", "--checkpoint", str(checkpoint), "--data-dir", str(tmp_path / "nowhere"))
    assert code == 2 and "nowhere" in err


@pytest.mark.parametrize("bad", ["0", "-3", "big"])
def test_k_test_must_be_a_positive_integer(bad, checkpoint, lowercase_folder, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", "--checkpoint", str(checkpoint), "--data-dir", str(lowercase_folder), "--k-test", bad])
    assert exit_info.value.code == 2
    assert "k-test" in capsys.readouterr().err


def test_a_checkpoint_rebuilds_the_scaled_network_and_says_how_it_was_scaled(tmp_path):
    spec = scale(BASELINES["C"], 1.4, 1.05, 1.14, 1)
    torch.manual_seed(0)
    net = EffNet(spec)
    path = save_checkpoint(tmp_path / "scaled.pt", net, spec, ["Cat", "Dog"],
                           {"k_train": spec.resolution, "k_test": 90, "k_image_test": 101, "cache_side": 128})
    model, meta = load_checkpoint(path)
    assert model.spec == spec and meta["spec"]["scaling"] == {"base": "C", "alpha": 1.4, "beta": 1.05, "gamma": 1.14,
                                                              "phi": 1}
    assert model.spec.scaling == Scaling("C", 1.4, 1.05, 1.14, 1)
    x = torch.randn(2, 3, spec.resolution, spec.resolution)
    with torch.no_grad():
        assert torch.equal(model(x), net.eval()(x))


# --------------------------------------------------------------------------- bad input: one line, exit 2, early


def one_line_error(capsys, *argv) -> str:
    code, out, err = run_cli(capsys, *argv)
    assert code == 2, (out, err)
    errors = [line for line in err.splitlines() if ": error: " in line]
    assert len(errors) == 1 and "Traceback" not in err, err
    return errors[0]


def test_checkpoint_that_is_a_folder_or_incomplete(checkpoint, lowercase_folder, capsys, tmp_path):
    assert "is a folder, not a file" in one_line_error(capsys, "evaluate", "--checkpoint", str(tmp_path),
                                                       "--data-dir", str(lowercase_folder))
    data = torch.load(checkpoint, weights_only=True)
    for part in ("spec", "preprocessing", "classes"):
        broken = {k: v for k, v in data.items() if k != part}
        torch.save(broken, tmp_path / f"no-{part}.pt")
        line = one_line_error(capsys, "evaluate", "--checkpoint", str(tmp_path / f"no-{part}.pt"),
                              "--data-dir", str(lowercase_folder))
        assert f"incomplete effnb checkpoint: missing or malformed {part}" in line
    torch.save(data | {"preprocessing": {**data["preprocessing"], "cache_side": "big"}}, tmp_path / "odd.pt")
    assert "preprocessing.cache_side" in one_line_error(capsys, "evaluate", "--checkpoint", str(tmp_path / "odd.pt"),
                                                        "--data-dir", str(lowercase_folder))


def test_nan_weights_still_give_valid_json_with_a_warning(checkpoint, lowercase_folder, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("EFFNB_CACHE_DIR", str(tmp_path / "cache"))
    data = torch.load(checkpoint, weights_only=True)
    data["state_dict"] = {k: v.fill_(float("nan")) if v.is_floating_point() else v for k, v in data["state_dict"].items()}
    torch.save(data, tmp_path / "nan.pt")
    code, out, err = run_cli(capsys, "evaluate", "--checkpoint", str(tmp_path / "nan.pt"), "--data-dir",
                         str(lowercase_folder), "--json")
    assert code == 0
    assert json.loads(out)["loss"] is None
    assert "effnb evaluate: warning: checkpoint" in err and "NaN or infinite weights" in err


@pytest.mark.parametrize("device, message", [("tpu", "unknown device 'tpu'"), ("meta", "unsupported device"),
                                             ("cuda:99", "cuda:99' was forced but")])
def test_unknown_or_unavailable_device_is_refused_before_decoding(device, message, checkpoint, lowercase_folder,
                                                                   capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("EFFNB_CACHE_DIR", str(tmp_path / "cache"))
    assert message in one_line_error(capsys, "evaluate", "--checkpoint", str(checkpoint), "--data-dir",
                                     str(lowercase_folder), "--device", device)
    assert message in one_line_error(capsys, "train", "--profile", "smoke", "--data-dir", str(lowercase_folder),
                                     "--artifacts-dir", str(tmp_path / "artifacts"), "--device", device)
    monkeypatch.setenv("EFFNB_DEVICE", device)
    assert message in one_line_error(capsys, "study", "--profile", "smoke", "--data-dir", str(lowercase_folder),
                                     "--artifacts-dir", str(tmp_path / "artifacts"),
                                     "--reports-dir", str(tmp_path / "reports"))
    assert not (tmp_path / "cache").exists() and not (tmp_path / "artifacts").exists()


def test_resolution_bounded_before_decoding_and_tiny_ones_warn(checkpoint, lowercase_folder, capsys, tmp_path,
                                                               monkeypatch):
    monkeypatch.setenv("EFFNB_CACHE_DIR", str(tmp_path / "cache"))
    line = one_line_error(capsys, "evaluate", "--checkpoint", str(checkpoint), "--data-dir", str(lowercase_folder),
                          "--k-test", "100000")
    assert "above the limit of 128 px" in line and not (tmp_path / "cache").exists()
    code, out, err = run_cli(capsys, "evaluate", "--checkpoint", str(checkpoint), "--data-dir", str(lowercase_folder),
                         "--k-test", "1", "--json")
    assert code == 0 and json.loads(out)["k_test"] == 1
    assert "effnb evaluate: warning: resolution 1 px is tiny" in err


def test_unwritable_places_are_one_line_errors(checkpoint, lowercase_folder, capsys, tmp_path, monkeypatch):
    (tmp_path / "file").write_text("x")
    monkeypatch.setenv("EFFNB_CACHE_DIR", str(tmp_path / "file" / "cache"))
    line = one_line_error(capsys, "evaluate", "--checkpoint", str(checkpoint), "--data-dir", str(lowercase_folder))
    assert "cannot create evaluation cache folder" in line and "set $EFFNB_CACHE_DIR" in line
    for command in ("train", "export-split"):
        extra = ["--to", str(tmp_path / "out")] if command == "export-split" else []
        line = one_line_error(capsys, command, "--profile", "smoke", "--data-dir", str(lowercase_folder),
                              "--artifacts-dir", str(tmp_path / "file"), *extra)
        assert "artifacts folder" in line and "is a file, not a folder" in line
    read_only = tmp_path / "read-only"
    read_only.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != read_only and real_access(path, mode))
    line = one_line_error(capsys, "train", "--profile", "smoke", "--data-dir", str(lowercase_folder),
                          "--artifacts-dir", str(read_only))
    assert "is not writable" in line
    line = one_line_error(capsys, "train", "--config", str(tmp_path / "missing.json"), "--data-dir",
                          str(lowercase_folder), "--artifacts-dir", str(tmp_path / "a"))
    assert "missing.json" in line and "No such file or directory" in line


def test_export_split_refuses_a_non_empty_or_file_target(lowercase_folder, capsys, tmp_path):
    common = ["export-split", "--profile", "smoke", "--data-dir", str(lowercase_folder), "--split", "test",
              "--artifacts-dir", str(tmp_path / "artifacts")]
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "other.jpg").write_text("x")
    (tmp_path / "file").write_text("x")
    assert "is not empty" in one_line_error(capsys, *common, "--to", str(tmp_path / "full"))
    assert "is a file" in one_line_error(capsys, *common, "--to", str(tmp_path / "file"))
    assert not (tmp_path / "artifacts").exists()  # refused before any image was decoded
    code, out, _ = run_cli(capsys, *common, "--to", str(tmp_path / "split"))
    assert code == 0 and "linked under" in out
    linked = sorted(p.relative_to(tmp_path / "split").as_posix() for p in (tmp_path / "split").rglob("*.jpg"))
    assert linked and all(p.split("/")[0] in ("cat", "DOG") for p in linked)
    assert "is not empty" in one_line_error(capsys, *common, "--to", str(tmp_path / "split"))  # not twice


def test_study_with_an_unknown_notebook_runs_nothing(capsys, tmp_path):
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "index.html").write_text("the earlier index")
    line = one_line_error(capsys, "study", "--only", "01_data", "07_nope", "--artifacts-dir", str(tmp_path / "a"),
                          "--reports-dir", str(reports))
    assert "unknown notebook(s) ['07_nope']" in line
    assert (reports / "index.html").read_text() == "the earlier index" and not (tmp_path / "a").exists()


def test_a_second_study_on_the_same_artifacts_stops(capsys, tmp_path):
    from effnb.report.execute import STUDY_LOCK
    from effnb.utils.atomic import locked

    (tmp_path / "a").mkdir()
    with locked(tmp_path / "a" / STUDY_LOCK, "held by this test"):
        line = one_line_error(capsys, "study", "--only", "01_data", "--artifacts-dir", str(tmp_path / "a"),
                              "--reports-dir", str(tmp_path / "r"))
    assert "another effnb study is running on" in line


def test_unexpected_errors_are_one_line_without_traceback(checkpoint, lowercase_folder, capsys, monkeypatch):
    import effnb.cli.evaluate

    def broken(*args, **kwargs):
        raise KeyError("surprise")

    monkeypatch.setattr(effnb.cli.evaluate, "evaluate_checkpoint", broken)
    code, _, err = run_cli(capsys, "evaluate", "--checkpoint", str(checkpoint), "--data-dir", str(lowercase_folder))
    assert code == 1 and err.strip() == ("effnb evaluate: internal error: KeyError: 'surprise' "
                                         "(set EFFNB_DEBUG=1 to see the traceback)")
    monkeypatch.setenv("EFFNB_DEBUG", "1")
    with pytest.raises(KeyError):
        main(["evaluate", "--checkpoint", str(checkpoint), "--data-dir", str(lowercase_folder)])


# --------------------------------------------------------------------------- numbers: finite, checked when parsed


@pytest.mark.parametrize("bad", ["inf", "nan", "-inf", "Infinity"])
@pytest.mark.parametrize("command, flag", [("train", "--epochs"), ("train", "--lr"), ("train", "--alpha"),
                                           ("ablate", "--epochs")])
def test_infinite_or_nan_flags_are_refused_naming_the_flag(bad, command, flag, lowercase_folder, capsys, tmp_path,
                                                           monkeypatch):
    monkeypatch.setenv("EFFNB_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--profile", "smoke", "--data-dir", str(lowercase_folder),
              "--artifacts-dir", str(tmp_path / "artifacts"), f"{flag}={bad}"])  # = so that -inf is a value
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert f"effnb {command}: error: argument {flag}: must be a finite number, got {bad!r}" in err
    assert not (tmp_path / "cache").exists() and not (tmp_path / "artifacts").exists()


@pytest.mark.parametrize("text, value", [('{"epochs": Infinity}', "inf"), ('{"epochs": NaN}', "nan"),
                                         ('{"gamma": -Infinity}', "-inf")])
def test_infinite_or_nan_config_values_are_one_line_errors(text, value, lowercase_folder, capsys, tmp_path,
                                                           monkeypatch):
    monkeypatch.setenv("EFFNB_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "config.json").write_text(text)
    key = next(iter(json.loads(text)))
    line = one_line_error(capsys, "train", "--profile", "smoke", "--config", str(tmp_path / "config.json"),
                          "--data-dir", str(lowercase_folder), "--artifacts-dir", str(tmp_path / "artifacts"))
    assert f"--config {tmp_path / 'config.json'}: {key}: must be a finite number, got '{value}'" in line
    assert not (tmp_path / "cache").exists() and not (tmp_path / "artifacts").exists()


def test_other_number_errors_keep_their_messages(capsys):
    for argv, message in ((["--alpha", "big"], "argument --alpha: invalid float value: 'big'"),
                          (["--epochs", "big"], "argument --epochs: not a number: 'big'"),
                          (["--epochs", "0"], "argument --epochs: must be a positive number, got 0.0")):
        with pytest.raises(SystemExit) as exit_info:
            main(["train", *argv])
        assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_the_command_line_does_not_import_ipython(tmp_path):
    import subprocess
    import sys

    modules = ["effnb.cli.commands", "effnb.cli.train", "effnb.cli.evaluate", "effnb.cli.predict", "effnb.cli.export",
               "effnb.cli.bench", "effnb.study.context", "effnb.study.ablation", "effnb.train.experiments"]
    code = (f"import sys\nfor m in {modules!r}: __import__(m)\n"
            "from effnb.cli.commands import build_parser, main\nbuild_parser().parse_args(['train', '--epochs', '1'])\n"
            "assert main(['evaluate', '--checkpoint', 'missing.pt', '--data-dir', 'nowhere']) == 2\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('IPython', 'ipywidgets')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                            check=True, cwd=tmp_path)
    assert result.stdout.strip() == "[]", result.stdout
