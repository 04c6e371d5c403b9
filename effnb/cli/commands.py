"""The ``effnb`` command line: ``study``, ``train``, ``evaluate``, ``predict``, ``export``, ``bench``, ``export-split``."""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import warnings
from contextlib import nullcontext
from pathlib import Path

from effnb.cli.options import data_args, non_negative_float, positive_float, positive_int, print_json
from effnb.cli.train import TRAIN_PRECEDENCE, add_train_args, cmd_train

__all__ = ["TRAIN_PRECEDENCE", "build_parser", "main", "positive_float", "positive_int", "print_json"]

DEBUG_ENV = "EFFNB_DEBUG"


def cmd_study(args: argparse.Namespace) -> int:
    from effnb.report import render_reports, run_study

    if args.render_only:
        for path in render_reports(args.artifacts_dir, args.reports_dir):
            print(path)
    else:
        run_study(args.profile, args.data_dir, args.artifacts_dir, args.reports_dir, args.seed, only=args.only,
                  budget_minutes=args.budget_minutes, plan=args.plan)
    published = Path(args.reports_dir) / "models" / "final.json"
    if args.readme and published.is_file():
        from effnb.report.readme import update_readme

        ablations = [Path(args.reports_dir) / f"{name}.json" for name in ("ablation", "ablation-phi", "ablation-final")]
        print(update_readme(args.readme, json.loads(published.read_text()),
                            *(json.loads(path.read_text()) if path.is_file() else None for path in ablations)))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from effnb.cli.evaluate import evaluate_checkpoint

    result = evaluate_checkpoint(args.checkpoint, args.data_dir, args.k_test, device=args.device,
                                 progress=not args.json, tta=args.tta)
    if args.json:
        print_json(result)
    else:
        print(f"accuracy {100 * result['accuracy']:.2f} %  loss {result['loss']:.4f}  images {result['images']}  "
              f"skipped {result['skipped']}  at {result['k_test']} px (image {result['k_image_test']} px)")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    import time

    from tqdm.auto import tqdm

    from effnb.cli.paths import escape_path, refuse_overlap
    from effnb.cli.predict import predict_paths

    if args.csv:
        refuse_overlap(args.csv, [args.checkpoint, *args.paths], "--csv")  # before the CSV truncates an input
    settings, stream = predict_paths(args.checkpoint, args.paths, args.k_test, args.device, args.batch_size)
    classes = settings["classes"]
    done, failed = [], []
    try:
        # surrogateescape: a file name that is not UTF-8 is written back as its own bytes, never a crash
        csv_file = open(args.csv, "w", newline="", errors="surrogateescape") if args.csv else nullcontext()
    except OSError as exc:
        raise ValueError(f"cannot write {args.csv}: {exc.strerror}") from None
    with csv_file, \
            tqdm(total=settings["files"], unit="img", desc="predict", disable=True if args.json else None) as bar:
        writer = csv.writer(csv_file) if args.csv else None
        if writer:
            writer.writerow(["path", "class", "probability", *(f"p_{c}" for c in classes), "error"])
        start = time.perf_counter()
        for pred in stream:
            bar.update()
            if pred.error is not None:
                failed.append(pred)
                tqdm.write(f"effnb predict: cannot read {escape_path(pred.path)}: {pred.error}", file=sys.stderr)
            else:
                done.append(pred)
                if not args.json:
                    tqdm.write(f"{escape_path(pred.path)}\t{pred.label}\t{pred.probability:.4f}", file=sys.stdout)
            if writer:
                probs = [f"{pred.probabilities[c]:.6f}" for c in classes] if pred.probabilities else [""] * len(classes)
                writer.writerow([pred.path, pred.label or "",
                                 "" if pred.probability is None else f"{pred.probability:.6f}", *probs, pred.error or ""])
    if args.json:
        print_json(settings | {
            "predicted": len(done), "failed": len(failed),
            "predictions": [{"path": p.path, "class": p.label, "probability": p.probability,
                             "probabilities": p.probabilities} for p in done],
            "errors": [{"path": p.path, "error": p.error} for p in failed]})
    if not done:
        print(f"effnb predict: error: no image could be predicted ({len(failed)} path(s) failed)", file=sys.stderr)
        return 2
    seconds = time.perf_counter() - start
    print(f"{len(done)} image(s) predicted at {settings['k_test']} px (image {settings['k_image_test']} px) in "
          f"{seconds:.1f} s ({len(done) / seconds:.0f} img/s with decoding), {len(failed)} could not be read"
          + (f"; CSV in {args.csv}" if args.csv else ""), file=sys.stderr)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    import os

    from effnb.cli.export import export_checkpoint

    images = args.images or ([os.environ["EFFNB_DATA_DIR"]] if os.environ.get("EFFNB_DATA_DIR") else None)
    if not images:
        raise ValueError("give --images PATH (real images to verify the export on) or set EFFNB_DATA_DIR")
    report = export_checkpoint(args.checkpoint, args.onnx, images, args.k_test, args.verify_images, args.repeats)
    if args.json:
        print_json(report)
        return 0
    check, k = report["verification"], report["k_test"]
    print(f"wrote {report['onnx']} ({report['bytes'] / 1e6:.2f} MB): input images [batch, 3, {k}, {k}], "
          f"outputs logits and probabilities; onnx.checker passed")
    print(f"metadata: classes {report['classes']}, k_test {k}, k_image_test {report['k_image_test']}, "
          f"ImageNet mean/std, preprocessing steps")
    print(f"verified with ONNX Runtime on {check['images']} real images: predictions equal, largest probability "
          f"difference {check['max_prob_diff']:.1e} (tolerance {check['atol']:g})")
    print(f"inference on this CPU, batch {check['images']} at {k} px incl. preprocessing, {report['threads']} thread(s), "
          f"median of {report['repeats']}:")
    for name, rate in report["speed_img_per_s"].items():
        print(f"  {name:<36} {rate:8.1f} img/s")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from effnb.cli.bench import run_bench, run_step_bench

    if args.step:
        run_step_bench(args.profile, args.artifacts_dir, args.steps, args.rounds, args.checkpoint)
    else:
        run_bench(args.data_dir, args.profile, args.artifacts_dir, args.steps, args.rounds, args.eval_images,
                  args.checkpoint)
    return 0


def cmd_ablate(args: argparse.Namespace) -> int:
    from effnb.study.ablation import check_only, run_ablation
    from effnb.study.ablation_variants import phi2_budget, planned_final_epochs
    from effnb.study.context import prepare_study
    from effnb.study.profiles import get_profile
    from effnb.train.recipes import get_recipe
    from effnb.utils.atomic import ensure_dir
    from effnb.utils.device import pick_device

    device = pick_device(args.device)  # the flags first: decoding the images takes minutes
    if args.phi and args.final:
        raise ValueError("--phi and --final are two different ablations: choose one")
    check_only(args.only, args.phi, get_recipe(get_profile(args.profile).recipe) if args.final else None)
    ensure_dir(args.reports_dir, "reports folder")
    study = prepare_study(args.profile, args.data_dir, args.artifacts_dir, args.seed)
    default = phi2_budget(study.profile) if args.phi else planned_final_epochs(study.profile) if args.final else 6
    epochs = args.epochs or default
    kind = " --phi" if args.phi else " --final" if args.final else ""
    command = (f"effnb ablate --profile {args.profile} --data-dir {args.data_dir} --artifacts-dir {args.artifacts_dir} "
               f"--seed {args.seed}{kind} --epochs {epochs:g}"
               f"{f' --train-n {args.train_n}' if args.train_n else ''} --recal-n {args.recal_n} "
               f"--reports-dir {args.reports_dir}")
    print(run_ablation(study, epochs, args.reports_dir, command, args.train_n, args.recal_n, args.only,
                       device, phi=args.phi, final=args.final))
    return 0


def cmd_export_split(args: argparse.Namespace) -> int:
    from effnb.cli.paths import refuse_overlap
    from effnb.data.download import DATA_ENV, resolve_data_dir
    from effnb.data.index import check_empty_target, link_images
    from effnb.study.context import prepare_study

    explicit = args.data_dir or os.environ.get(DATA_ENV)
    if explicit:  # a given folder: resolved without a download, checked before the images are decoded
        refuse_overlap(args.to, [resolve_data_dir(explicit)], "--to")
    check_empty_target(args.to)
    study = prepare_study(args.profile, args.data_dir, args.artifacts_dir, args.seed)
    refuse_overlap(args.to, [study.root], "--to")  # the shared or downloaded data, found by prepare_study
    rel_paths = [study.cache.paths[i] for i in study.split_indices(args.split)]
    target = link_images(study.root, rel_paths, args.to)
    print(f"{len(rel_paths)} images of split {args.split!r} linked under {target}")
    return 0


def _add_study(sub) -> None:
    p = sub.add_parser("study", help="run the six notebooks with papermill and render the HTML reports")
    data_args(p)
    p.add_argument("--reports-dir", default="reports")
    p.add_argument("--only", nargs="*", help="run only these notebooks (e.g. 01_data)")
    p.add_argument("--render-only", action="store_true", help="only render the executed notebooks to HTML again")
    p.add_argument("--readme", help="rewrite this README's generated results and profiles blocks afterwards")
    p.add_argument("--budget-minutes", type=non_negative_float, metavar="M",
                   help="plan the study to end within M minutes on this machine (default: the profile's, cpu 120; "
                        "0: the profile's fixed epochs); a plan already in --artifacts-dir is reused")
    p.add_argument("--plan", metavar="FILE", help="repeat a saved plan exactly (e.g. reports/models/plan.json)")
    p.set_defaults(func=cmd_study)


def _add_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="evaluate a checkpoint on a class-per-folder directory")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--data-dir", required=True)
    p.add_argument("--k-test", type=positive_int, help="test resolution k_test (default: the checkpoint's)")
    p.add_argument("--tta", action="store_true", help="average each image's logits with its horizontal mirror's")
    p.add_argument("--device")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_evaluate)


def _add_predict(sub) -> None:
    p = sub.add_parser("predict", help="classify image files and folders with a checkpoint")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files and/or folders (searched recursively); "
                   "images over 40 megapixels (effnb.data.decode.MAX_PIXELS) are skipped undecoded, as too large")
    p.add_argument("--k-test", type=positive_int, help="test resolution k_test (default: the checkpoint's)")
    p.add_argument("--batch-size", type=positive_int, default=100)
    p.add_argument("--device")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of one line per image")
    p.add_argument("--csv", metavar="FILE", help="also write one row per file (predictions and errors) to FILE, "
                   "which must not be, or lie in, an input")
    p.set_defaults(func=cmd_predict)


def _add_export(sub) -> None:
    p = sub.add_parser("export", help="export a checkpoint to ONNX, verified with ONNX Runtime on real images")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--onnx", required=True, metavar="OUT.onnx")
    p.add_argument("--images", nargs="+", metavar="PATH", help="real images (files/folders) to verify and time on; "
                   "default $EFFNB_DATA_DIR")
    p.add_argument("--k-test", type=positive_int, help="test resolution k_test (default: the checkpoint's)")
    p.add_argument("--verify-images", type=positive_int, default=64, help="how many of those images")
    p.add_argument("--repeats", type=positive_int, default=10, help="timed runs of each engine")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_export)


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train one experiment (resumable; a finished one is read back)",
                       epilog=TRAIN_PRECEDENCE)
    add_train_args(p)  # declared in effnb.cli.train's table, which also checks --config
    p.set_defaults(func=cmd_train)


def _add_bench(sub) -> None:
    p = sub.add_parser("bench", help="training and data-pipeline throughput on this machine")
    data_args(p)
    p.add_argument("--steps", type=positive_int, default=40, help="timed steps per measurement")
    p.add_argument("--rounds", type=positive_int, default=3, help="rounds of the interleaved comparisons (median)")
    p.add_argument("--eval-images", type=positive_int, default=1000, help="test images per evaluation measurement")
    p.add_argument("--checkpoint", help="the model to measure (default: the study's final model in --artifacts-dir)")
    p.add_argument("--step", action="store_true", help="only the training step: its profile, its variants and 2 gloo "
                   "ranks against 1 process, interleaved (no data needed)")
    p.set_defaults(func=cmd_bench)


def _add_ablate(sub) -> None:
    p = sub.add_parser("ablate", help="train each recipe variant at one fixed budget; write reports/ablation.md")
    data_args(p)
    p.add_argument("--epochs", type=positive_float, help="budget in equivalent epochs at 64 px (default 6); with --phi, "
                   "at phi = 2 (default: the minutes of the profile's final model)")
    p.add_argument("--phi", action="store_true", help="compare phi = 2, 1, 3, 0 of the study's final network at equal "
                   "minutes, with the profile's recipe (writes ablation-phi.md) instead of the recipe levers")
    p.add_argument("--final", action="store_true", help="the profile's recipe on the study's final network at the "
                   "final model's budget (default: the committed plan's epochs) and each lever changed alone on it "
                   "(writes ablation-final.md)")
    p.add_argument("--reports-dir", default="reports")
    p.add_argument("--train-n", type=positive_int, help="train on this many training images (default: all)")
    p.add_argument("--recal-n", type=positive_int, default=1000, help="images for BN recalibration at the FixRes size")
    p.add_argument("--only", nargs="*", help="only these variants")
    p.add_argument("--device")
    p.set_defaults(func=cmd_ablate)


def _add_export_split(sub) -> None:
    p = sub.add_parser("export-split", help="link one split's images into a new (or empty) class-per-folder directory")
    data_args(p)
    p.add_argument("--split", default="test2", choices=["train", "test", "test2"])
    p.add_argument("--to", required=True)
    p.set_defaults(func=cmd_export_split)


SUBCOMMANDS = (_add_study, _add_evaluate, _add_predict, _add_export, _add_train, _add_bench, _add_ablate,
               _add_export_split)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="effnb", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for add in SUBCOMMANDS:
        add(sub)
    return parser


def _one_line(exc: BaseException) -> str:
    """An exception as one line: ``path: reason`` for system errors, else its first line of text."""
    if isinstance(exc, OSError) and exc.filename is not None:
        where = exc.filename if exc.filename2 is None else f"{exc.filename} -> {exc.filename2}"
        return f"{where}: {exc.strerror or exc}"
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _known_errors() -> tuple[type[BaseException], ...]:
    """The errors reported as one line with exit 2. ``NotebookFailed`` is looked up only once ``effnb study`` has
    imported its module: importing effnb.report loads the notebooks' display libraries (IPython among them)."""
    from effnb.data.errors import DataError
    from effnb.study.outputs import OutputMissing
    from effnb.train.checkpoint import CheckpointError
    from effnb.train.fit import TrainingDiverged
    from effnb.utils.atomic import FolderBusy

    execute = sys.modules.get("effnb.report.execute")
    notebook = (execute.NotebookFailed,) if execute is not None else ()
    return (CheckpointError, DataError, TrainingDiverged, *notebook, OutputMissing, FolderBusy, ValueError, OSError)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    sys.modules.setdefault("rfc3987_syntax", None)  # 2.5 s of imports nbformat does not need (report/execute.py)
    import torch

    prefix = f"effnb {args.command}"
    with warnings.catch_warnings():
        warnings.showwarning = lambda message, *_, **__: print(f"{prefix}: warning: {message}", file=sys.stderr)
        try:
            return args.func(args)
        except KeyboardInterrupt:
            print(f"{prefix}: interrupted; finished experiments and epochs are saved", file=sys.stderr)
            return 130
        except (MemoryError, torch.cuda.OutOfMemoryError) as exc:
            print(f"{prefix}: error: out of memory ({_one_line(exc)}): try a smaller resolution", file=sys.stderr)
            return 2
        except _known_errors() as exc:  # evaluated as the error is matched, after the command ran
            print(f"{prefix}: error: {_one_line(exc)}", file=sys.stderr)
            return 2
        except Exception as exc:
            if os.environ.get(DEBUG_ENV):
                raise
            print(f"{prefix}: internal error: {type(exc).__name__}: {_one_line(exc)} "
                  f"(set {DEBUG_ENV}=1 to see the traceback)", file=sys.stderr)
            return 1


if __name__ == "__main__":
    sys.exit(main())
