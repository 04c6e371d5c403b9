"""The network: MBConv stages described by self-labelling rows, the seed study's baselines, compound scaling, FLOPs."""
from effnb.nn.flops import count_flops, count_params, scaling_table
from effnb.nn.model import BASELINES, EffNet, NetSpec, Scaling, StageSpec
from effnb.nn.scaling import constraint, scale

__all__ = ["BASELINES", "EffNet", "NetSpec", "Scaling", "StageSpec", "constraint", "count_flops", "count_params",
           "scale", "scaling_table"]
