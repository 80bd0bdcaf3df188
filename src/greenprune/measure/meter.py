"""`with CostMeter() as m:` — wall time, energy and CO2 (and optionally peak tensor memory) of any block of work,
such as a fine-tuning run, in the style of codecarbon's tracker."""

from __future__ import annotations

import contextlib
import time
from typing import Any

from pydantic import BaseModel, ConfigDict

from greenprune.measure.energy import DEFAULT_COUNTRY, EnergyTracker
from greenprune.measure.memory import CPU_METHOD, TensorMemoryTracker


class MeterReading(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: str
    seconds: float
    energy_kwh: float | None
    co2_kg: float | None
    energy_method: str
    peak_tensor_bytes: int | None = None  # peak bytes of tensors created inside the block (track_memory=True)
    peak_memory_method: str = ""


class CostMeter:
    """Measure a block of work. `track_memory` watches every tensor allocation (slower; off by default)."""

    def __init__(
        self, label: str = "work", *, country: str = DEFAULT_COUNTRY, energy: bool = True, track_memory: bool = False
    ) -> None:
        self.label = label
        self._energy = EnergyTracker(country=country, enabled=energy)
        self._memory = TensorMemoryTracker() if track_memory else None
        self._stack = contextlib.ExitStack()
        self._start = 0.0
        self.reading: MeterReading | None = None

    def __enter__(self) -> CostMeter:
        # one stack: whatever was entered is exited in reverse order, also when a later __enter__ fails
        with contextlib.ExitStack() as stack:
            stack.enter_context(self._energy)
            stack.enter_context(self._energy.task(self.label))
            if self._memory is not None:
                stack.enter_context(self._memory)
            self._stack = stack.pop_all()
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: Any) -> None:
        seconds = time.perf_counter() - self._start
        self._stack.__exit__(*exc)
        energy = self._energy.get(self.label)
        self.reading = MeterReading(
            label=self.label,
            seconds=seconds,
            energy_kwh=energy.energy_kwh if energy else None,
            co2_kg=energy.co2_kg if energy else None,
            energy_method=self._energy.method,
            peak_tensor_bytes=self._memory.peak if self._memory is not None else None,
            peak_memory_method=CPU_METHOD if self._memory is not None else "not tracked",
        )
