"""The README's generated blocks: the answer paragraph and the accuracy-against-compute figure (from
``reports/models/compute.json`` and ``final.json``), the profiles table (from ``effnb.study.profiles``), the results
(from the published ``reports/models/final.json``), and on ``reports/recipe.md`` the recipe, phi and final-budget
ablations (from ``reports/ablation.json``, ``ablation-phi.json`` and ``ablation-final.json``), so the README quotes no
number that a command did not write.

A block sits between ``<!-- NAME:begin -->`` and ``<!-- NAME:end -->``; ``effnb study --readme README.md``
rewrites the blocks after a run (the pages' blocks in ``reports/`` beside the README), and ``tests/test_readme.py``
fails when a block differs from what the committed results and profiles give.
"""
from __future__ import annotations

import re
from pathlib import Path

from effnb import seed_study
from effnb.report.publish_compute import FIGURE, POINTS, read_compute
from effnb.study.compute import ComputePoint, answer_paragraph, chosen_row, final_rows
from effnb.study.profiles import PROFILES, Profile
from effnb.study.stats import accuracy_interval
from effnb.train.recipes import get_recipe


class ReadmeError(ValueError):
    """The README lacks a generated block's markers, or its committed results disagree with each other."""


# the blocks that live on a page under reports/ (relative to the README's folder); the others are the README's
PAGES = {"ablation": Path("reports") / "recipe.md", "ablation_phi": Path("reports") / "recipe.md",
         "ablation_final": Path("reports") / "recipe.md"}


def _images(n: int | None) -> str:
    return "all" if n is None else f"{n:,}"


def _profile_row(p: Profile) -> str:
    s, f, x = p.selection, p.final, p.fixres
    rungs = " → ".join(f"{e:g}" for e in (*s.halving_rungs, s.epochs))
    measured = "FixRes resolution after BN recalibration" if s.at_fixres else "training resolution"
    budget = (f"the epochs that fit what is left of {p.budget_minutes:g} min (planned; {f.epochs:g} with "
              f"`--budget-minutes 0`)" if p.budget_minutes else f"{f.epochs:g} epochs")
    return (f"| `{p.name}` | {p.description} | `{p.recipe}`: {get_recipe(p.recipe).about} | {_images(s.train_n)} images, epochs by rung {rungs}; measured on "
            f"{_images(s.eval_n)} `test` images at the {measured} | φ = {f.phi}, {budget} "
            f"on {_images(f.train_n)} images | {_images(x.finetune_n)} images: whole network "
            f"{x.finetune_epochs:g} epoch(s), classifier + last BN {x.head_finetune_epochs:g}; BN recalibration on "
            f"{x.bn_recal_n:,} |")


def profiles_markdown() -> str:
    """The profiles table."""
    head = ("| profile | for | recipe | selection (baselines, grid, φ curve) | final model | FixRes |\n"
            "| --- | --- | --- | --- | --- | --- |")
    return "\n".join([head, *(_profile_row(p) for p in PROFILES.values())])


def _accuracy(row: dict) -> str:
    low, high = accuracy_interval(row["accuracy"], row["n"])
    return f"{100 * row['accuracy']:.2f} % [{100 * low:.1f}, {100 * high:.1f}]"


def results_markdown(final: dict) -> str:
    """The results section's numbers, from the published ``final.json``."""
    run, lines = final.get("run", {}), []
    lines.append("Run: " + "; ".join(f"{k} {v}" for k, v in run.items() if v is not None) + ".")
    prov = final.get("provenance")
    if prov:
        code = prov["code"]
        lines.append(f"Code: commit `{code['commit']}`{' (with local changes)' if code['modified'] else ''}; "
                     f"profile and recipe hash `{prov['profile_recipe_hash']}`.")
    else:
        lines.append("This `final.json` records no code version, profile or recipe (it predates the provenance "
                     "record); the next `make study` writes them.")
    decisions = final.get("decisions", {})
    if decisions:
        lines += ["", "**Decisions** (each rule was printed in its notebook before the results):", "",
                  "| question | chosen | why |", "| --- | --- | --- |"]
        lines += [f"| {d['rule']['question']} | {d['chosen']} | {d['sentence']} |" for d in decisions.values()]
    lines += ["", f"**Final table on `test2`** ({final['test2_images']:,} images, read by notebook 06 after every choice of its run was fixed; accuracy with its "
                  "95 % Wilson interval):", "", "| model | test res (px) | loss | accuracy | extra CPU s |",
              "| --- | --- | --- | --- | --- |"]
    for r in final["rows"]:
        extra = f"{r['extra_seconds']:.0f}" if "extra_seconds" in r else "–"
        lines.append(f"| {r['label']} | {r['k_test']} | {r['loss']:.4f} | {_accuracy(r)} | {extra} |")
    if "tta" in final:
        r = final["tta"]
        lines.append(f"| {r['label']} | {r['k_test']} | {r['loss']:.4f} | {_accuracy(r)} | {r['extra_seconds']:.0f} |")
    trained, tuned = final["rows"][0], final["rows"][-1]
    seed_study_rows = [seed_study.FINAL["without fine-tuning"], seed_study.FINAL["with fine-tuning"]]
    lines += ["", "Beside the seed (its φ = 4; this run's profile above):", "",
              "| | seed loss | seed acc | this run loss | this run acc |", "| --- | --- | --- | --- | --- |"]
    lines += [f"| {s.name} | {s.loss:.4f} | {100 * s.accuracy:.2f} % | {r['loss']:.4f} | {_accuracy(r)} |"
              for s, r in zip(seed_study_rows, (trained, tuned))]
    chosen = chosen_row(final)
    lines += ["", f"The study's model is “{chosen['label']}”. To check its published checkpoint against the report:",
              "", "```bash",
              ".venv/bin/effnb export-split --profile cpu --data-dir ../shared/data/PetImages --split test2 --to /tmp/test2",
              f".venv/bin/effnb evaluate --checkpoint reports/{chosen['published_checkpoint']} --k-test {chosen['k_test']} "
              f"--data-dir /tmp/test2{' --tta' if final.get('chosen_tta') else ''} --json",
              "```", "", f"It should print accuracy {chosen['accuracy']!r} and loss {chosen['loss']:.5f} on "
              f"{chosen['n']:,} images at {chosen['k_test']} px (the loss's last digits depend on the CPU)."]
    return "\n".join(lines)


def check_points(final: dict, points: list[ComputePoint]) -> None:
    """Fail unless ``points``' ``test2`` models are ``final``'s rows (label, accuracy, images, the chosen one)."""
    got = [(p.model, p.accuracy, p.n, p.chosen) for p in points if p.group == "final"]
    chosen = chosen_row(final)
    want = [(r["label"], r["accuracy"], r["n"], r is chosen) for r in final_rows(final)]
    if got != want:
        raise ReadmeError(f"reports/{POINTS.as_posix()} is not from the run of reports/models/final.json (its test2 "
                          f"points {got} against final.json's rows {want}): run `effnb study --render-only --readme "
                          "README.md` on that run's artifacts")


def answer_markdown(final: dict, points: list[ComputePoint] | None) -> str:
    """The answer paragraph and the figure's link, from the published ``compute.json`` points and ``final``; where
    the run published no points, a plain note that the next study run writes them, and the chosen model's row."""
    if points is None:
        chosen = chosen_row(final)
        return (f"*The answer paragraph and the accuracy-against-compute figure are generated by the next study run* "
                f"(`make study` writes `reports/{POINTS.as_posix()}` and `reports/{FIGURE.as_posix()}`; the committed "
                f"run predates them). Its chosen model, “{chosen['label']}”, scores {_accuracy(chosen)} on "
                f"`test2` ({chosen['n']:,} held-out images).")
    check_points(final, points)
    return (f"{answer_paragraph(final, points, final['run']['machine'])}\n\n"
            f"![Accuracy against training compute, one point per trained model](reports/{FIGURE.as_posix()})\n\n"
            f"One point per trained model (`reports/{POINTS.as_posix()}`): baselines and grid candidates on the `test` "
            "decision images, the final model and its FixRes steps on `test2`; the dashed steps are the best accuracy "
            "each budget buys.")


def _versus(row: dict, key: str) -> str:
    result = row.get(f"{key}_vs_reference")
    if result is None:  # the reference row itself
        return "reference"
    if "p_value" not in result:  # the first ablation.json's shorter record
        return f"{result['p']:.2g} (+{result['only_this']}/−{result['only_reference']})"
    return (f"{100 * result['difference']:+.2f} [{100 * result['difference_low']:+.1f}, "
            f"{100 * result['difference_high']:+.1f}], p = {result['p_value']:.2g}"
            + (f", Holm p = {result['adjusted_p']:.2g}" if result.get("adjusted_p") is not None else "")
            + f" (+{result['only_challenger']}/−{result['only_incumbent']})")


def ablation_markdown(ablation: dict) -> str:
    """An ablation's table, from ``reports/ablation.json``, ``ablation-phi.json`` or ``ablation-final.json`` (``effnb
    ablate``), with the decision rules the record states before it and their decisions after it."""
    lines = ["```bash", ablation["command"], "```", ""]
    for rule in ablation.get("rules", ()):
        lines += [rule, ""]
    if "what" not in ablation:  # one budget for every row
        lines += [f"Budget {ablation['budget']:g} equivalent epochs for every row; reference `{ablation['reference']}`; "
                  "p: exact McNemar test against it on the same `test` images (+a/−b: images only this row / only "
                  "the reference got right).", "",
                  "| variant | what changed | acc @k_train [95 % CI] | acc @FixRes + BN recal [95 % CI] | p (k_train) | "
                  "p (FixRes) |", "| --- | --- | --- | --- | --- | --- |"]
    else:
        lines += [f"{ablation['what']}. Against `{ablation['reference']}` on the same `test` images: the difference in "
                  "points with its paired bootstrap 95 % interval, the exact McNemar p, its Holm adjustment over the "
                  "challengers declared, and +a/−b, the images only this row / only the reference got right.", "",
                  "| variant | what changed | budget | train min | acc @k_train [95 % CI] | acc @FixRes + BN recal "
                  "[95 % CI] | vs reference @k_train | vs reference @FixRes |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in ablation["rows"]:
        cost = f"{r['budget']} | {r['train min']} | " if "what" in ablation else ""
        lines.append(f"| {r['variant']} | {r['what changed']} | {cost}{r['acc @k_train [95 % CI]']} | "
                     f"{r['acc @FixRes + BN recal [95 % CI]']} | {_versus(r, 'train_res')} | {_versus(r, 'fixres')} |")
    after = list(ablation.get("decisions", {}).values())
    if ablation.get("not_run"):
        where = (f"finished rows are read back from `reports/{ablation['kept']}/`" if ablation.get("kept") else
                 "the finished rows' summaries were kept only in the artifacts folder of the machine that ran them, so "
                 "in a fresh checkout it runs every row again, with the recipe of today")
        after.append(f"Not run yet: {', '.join(f'`{n}`' for n in ablation['not_run'])} (the command above runs them; "
                     f"{where}).")
    return "\n".join([*lines, *(f"\n{line}" for line in after)])


def blocks(final: dict, ablation: dict | None = None, phi_ablation: dict | None = None,
           points: list[ComputePoint] | None = None, final_ablation: dict | None = None) -> dict[str, str]:
    """Every generated block of the README and its pages, by name (an ablation's only when it is given)."""
    out = {"answer": answer_markdown(final, points), "profiles": profiles_markdown(), "results": results_markdown(final)}
    if ablation is not None:
        out["ablation"] = ablation_markdown(ablation)
    if phi_ablation is not None:
        out["ablation_phi"] = ablation_markdown(phi_ablation)
    if final_ablation is not None:
        out["ablation_final"] = ablation_markdown(final_ablation)
    return out


def _pattern(name: str) -> re.Pattern:
    return re.compile(rf"(<!-- {name}:begin -->)(.*?)(<!-- {name}:end -->)", re.S)


def read_block(text: str, name: str) -> str:
    """The current content of block ``name`` in README ``text``."""
    match = _pattern(name).search(text)
    if match is None:
        raise ReadmeError(f"the README has no generated block {name!r} (<!-- {name}:begin --> ... <!-- {name}:end -->)")
    return match.group(2).strip("\n")


def update_readme(readme: str | Path, final: dict, ablation: dict | None = None,
                  phi_ablation: dict | None = None, final_ablation: dict | None = None) -> Path:
    """Rewrite the generated blocks of the README and of its pages under ``reports/`` beside it (see ``PAGES``) from
    ``final``, the published compute points there, the profiles and (if given) the ablations."""
    readme = Path(readme)
    texts: dict[Path, str] = {}
    points = read_compute(readme.parent / "reports")
    for name, body in blocks(final, ablation, phi_ablation, points, final_ablation).items():
        path = readme.parent / PAGES[name] if name in PAGES else readme
        if path not in texts:
            if not path.is_file():
                raise ReadmeError(f"{path}, the page of the generated block {name!r}, is not there")
            texts[path] = path.read_text()
        try:
            read_block(texts[path], name)  # the markers must be there
        except ReadmeError as error:
            raise ReadmeError(f"{path}: {error}") from None
        texts[path] = _pattern(name).sub(lambda m, body=body: f"{m.group(1)}\n{body}\n{m.group(3)}", texts[path])
    for path, text in texts.items():
        path.write_text(text)
    return readme
