"""The study: its context and profiles, selection by declared rules, statistics, the test2 guard, ablations, analysis."""
from effnb.study.analysis import describe_hardest, image_statistics, predict_models
from effnb.study.budget import final_time_limit, fix_final_epochs
from effnb.study.context import (
           FIXRES_STEPS,
           Study,
           open_study,
           prepare_study,
)
from effnb.study.holdout import provenance, read_test2
from effnb.study.outputs import (
           NOTEBOOKS,
           BaselinesOutput,
           FinetuneOutput,
           OutputMissing,
           read_output,
)
from effnb.study.plan import describe_plan, planned_against_actual, read_plan
from effnb.study.profiles import PROFILES, Profile, get_profile
from effnb.study.selection import measure_candidate, measurement, select
from effnb.study.stats import (
           TTA_RULE,
           CostOrderedRule,
           DecisionRule,
           accuracy_interval,
           compare_paired,
           decide_tta,
           format_accuracy,
)

__all__ = ["FIXRES_STEPS", "NOTEBOOKS", "PROFILES", "TTA_RULE", "BaselinesOutput", "CostOrderedRule", "DecisionRule", "FinetuneOutput",
           "OutputMissing", "Profile",
           "Study", "accuracy_interval", "compare_paired", "decide_tta", "describe_hardest", "describe_plan", "final_time_limit", "fix_final_epochs", "format_accuracy", "get_profile",
           "image_statistics", "measure_candidate", "measurement", "open_study", "planned_against_actual", "predict_models", "prepare_study",
           "provenance", "read_output", "read_plan", "read_test2", "select"]
