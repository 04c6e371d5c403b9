"""OpenMP environment settings against the default, for today's training step of one checkpoint's network.

    .venv/bin/python tools/omp_env_bench.py CHECKPOINT [--rounds 5] [--steps 40]

libgomp reads its settings once, when torch loads, so each setting runs in a fresh process (the step of
``effnb bench``, 2 threads, the recipe's batch 32), the settings taking turns round by round; prints each
setting's median images/s and its ratio to the default in the same round (median, lowest-highest).
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys

SETTINGS = {
    "default": {},
    "OMP_WAIT_POLICY=ACTIVE": {"OMP_WAIT_POLICY": "ACTIVE"},
    "OMP_WAIT_POLICY=PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"},
    "OMP_PROC_BIND=close, OMP_PLACES=cores": {"OMP_PROC_BIND": "close", "OMP_PLACES": "cores"},
}


def worker(checkpoint: str, steps: int) -> None:
    """Time today's step in this process and print images/s."""
    from effnb.cli.bench import StepVariant, step_runner
    from effnb.train.checkpoint import load_checkpoint

    run = step_runner(load_checkpoint(checkpoint)[0].spec, StepVariant(), 32)
    run(3)
    print(run(steps))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.checkpoint, args.steps)
    rates: dict[str, list[float]] = {name: [] for name in SETTINGS}
    for r in range(args.rounds):
        for name, setting in SETTINGS.items():
            env = {k: v for k, v in os.environ.items() if not k.startswith("OMP_")} | setting
            out = subprocess.run([sys.executable, __file__, args.checkpoint, "--steps", str(args.steps), "--worker"],
                                 env=env, capture_output=True, text=True, check=True)
            rates[name].append(float(out.stdout.split()[-1]))
        print(f"round {r + 1}: " + ", ".join(f"{n} {v[-1]:.1f}" for n, v in rates.items()), flush=True)
    for name, values in rates.items():
        ratios = [a / b for a, b in zip(values, rates["default"])]
        print(f"{name:<40} {statistics.median(values):7.1f} img/s  {statistics.median(ratios):.2f}x "
              f"[{min(ratios):.2f}-{max(ratios):.2f}]")


if __name__ == "__main__":
    main()
