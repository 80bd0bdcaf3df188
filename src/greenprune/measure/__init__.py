"""The measurement spine: cost records for one model, interleaved comparisons for two, all as typed records."""

from greenprune.measure.compare import compare, cost_ratios, ratio_interval
from greenprune.measure.cost import measure_cost, model_inputs, static_cost
from greenprune.measure.energy import EnergyTracker
from greenprune.measure.flops import analytic_flops, count_flops, flop_counter
from greenprune.measure.memory import TensorMemoryTracker, peak_forward_memory
from greenprune.measure.meter import CostMeter, MeterReading
from greenprune.measure.records import Comparison, CostRecord, ResultRecord, load_json, save_json
from greenprune.measure.size import checkpoint_bytes, count_parameters

__all__ = [
    "Comparison", "CostMeter", "CostRecord", "EnergyTracker", "MeterReading", "ResultRecord", "TensorMemoryTracker",
    "analytic_flops", "checkpoint_bytes", "compare", "cost_ratios", "count_flops", "count_parameters", "flop_counter",
    "load_json", "measure_cost", "model_inputs", "peak_forward_memory", "ratio_interval", "save_json", "static_cost",
]
