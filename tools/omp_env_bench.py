"""OpenMP environment settings against the default, for today's training step of one checkpoint's network.

    .venv/bin/python tools/omp_env_bench.py CHECKPOINT [--rounds 5] [--steps 40]

libgomp reads its settings once, when torch loads, so each setting runs in a fresh process (the step of
``effnb bench``, 2 threads, the recipe's batch 32), the settings taking turns round by round
(``effnb.cli.timing``); prints each setting's median images/s and its ratio to the default in the same round
(median, lowest-highest).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys

from effnb.cli.timing import interleaved_ratios

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
    def rate(setting: dict[str, str]) -> float:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OMP_")} | setting
        out = subprocess.run([sys.executable, __file__, args.checkpoint, "--steps", str(args.steps), "--worker"],
                             env=env, capture_output=True, text=True, check=True)
        return float(out.stdout.split()[-1])

    measured = interleaved_ratios({name: (lambda s=setting: rate(s)) for name, setting in SETTINGS.items()},
                                  {name: "default" for name in SETTINGS}, args.rounds)
    for name, (median, ratio, low, high) in measured.items():
        print(f"{name:<40} {median:7.1f} img/s  {ratio:.2f}x [{low:.2f}-{high:.2f}]")

if __name__ == "__main__":
    main()
