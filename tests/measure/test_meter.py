from __future__ import annotations

import pytest

from greenprune.measure import meter as meter_module
from greenprune.measure.meter import CostMeter


def test_a_tracker_that_fails_to_start_leaves_none_running(monkeypatch) -> None:
    """Entering is one ExitStack: when the memory tracker cannot start, the energy task and tracker already
    entered are exited again instead of running on."""
    exited: list[str] = []
    original_exit = meter_module.EnergyTracker.__exit__

    def energy_exit(self, *exc: object) -> None:
        exited.append("energy")
        original_exit(self, *exc)

    def memory_enter(self) -> None:
        raise RuntimeError("no allocation hook")

    monkeypatch.setattr(meter_module.EnergyTracker, "__exit__", energy_exit)
    monkeypatch.setattr(meter_module.TensorMemoryTracker, "__enter__", memory_enter)
    with pytest.raises(RuntimeError, match="no allocation hook"), CostMeter(energy=False, track_memory=True):
        pass
    assert exited == ["energy"]


def test_meter_reads_time_and_marks_energy_disabled() -> None:
    with CostMeter("block", energy=False) as meter:
        sum(range(1000))
    assert meter.reading is not None and meter.reading.label == "block" and meter.reading.seconds >= 0
    assert meter.reading.energy_method == "disabled" and meter.reading.energy_kwh is None
