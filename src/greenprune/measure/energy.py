"""Energy and CO2 through codecarbon's offline tracker (no network; the country sets the carbon intensity).

Without RAPL or a GPU, codecarbon estimates CPU power from CPU load and the processor's TDP; the method it used is
recorded beside every number so nobody mistakes an estimate for a reading.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

DEFAULT_COUNTRY = os.environ.get("GREENPRUNE_COUNTRY", "USA")


@dataclass
class EnergyReading:
    energy_kwh: float = 0.0
    co2_kg: float = 0.0
    seconds: float = 0.0


@dataclass
class EnergyTracker:
    """One codecarbon tracker for a whole measurement, with named tasks that accumulate (interleaving-friendly)."""

    country: str = DEFAULT_COUNTRY
    enabled: bool = True
    method: str = ""
    readings: dict[str, EnergyReading] = field(default_factory=dict)
    _tracker: Any = None

    def __enter__(self) -> EnergyTracker:
        if not self.enabled:
            self.method = "disabled"
            return self
        try:
            from codecarbon import OfflineEmissionsTracker

            logging.getLogger("codecarbon").setLevel(logging.ERROR)  # after the import, which sets its own level

            self._tracker = OfflineEmissionsTracker(
                country_iso_code=self.country,
                save_to_file=False,
                log_level="error",
                tracking_mode="process",
                output_dir=tempfile.gettempdir(),
                allow_multiple_runs=True,
            )
            self._tracker.start()
            hardware = ", ".join(str(h) for h in getattr(self._tracker, "_hardware", []))
            self.method = f"codecarbon offline ({self.country}), process mode: {hardware}"
        except Exception as exc:
            self._tracker = None
            self.method = f"unavailable: {type(exc).__name__}: {exc}"
        return self

    @contextlib.contextmanager
    def task(self, name: str) -> Iterator[None]:
        """Attribute the energy of the enclosed block to `name` (blocks with one name add up)."""
        if self._tracker is None:
            yield
            return
        self._tracker.start_task(name)
        try:
            yield
        finally:
            data = self._tracker.stop_task()
            reading = self.readings.setdefault(name, EnergyReading())
            reading.energy_kwh += float(data.energy_consumed or 0.0)
            reading.co2_kg += float(data.emissions or 0.0)
            reading.seconds += float(data.duration or 0.0)

    def __exit__(self, *exc: object) -> None:
        if self._tracker is not None:
            with contextlib.suppress(Exception):
                self._tracker.stop()

    def get(self, name: str) -> EnergyReading | None:
        return self.readings.get(name) if self._tracker is not None else None
