"""Energy and CO2 through codecarbon's offline tracker (no network; the country sets the carbon intensity).

Without RAPL or a GPU, codecarbon estimates CPU power from CPU load and the processor's TDP; the method it used is
recorded beside every number so nobody mistakes an estimate for a reading.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import importlib.util
import json
import logging
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from greenprune.errors import GreenpruneError

DEFAULT_COUNTRY = os.environ.get("GREENPRUNE_COUNTRY", "USA")
# where codecarbon keeps the energy mix of every country it knows (inside its package)
ENERGY_MIX_FILE = Path("data", "private_infra", "global_energy_mix.json")
log = logging.getLogger(__name__)


class CountryError(GreenpruneError, ValueError):
    """A country code codecarbon has no carbon intensity for (it would silently use the world average)."""


def energy_mix_path() -> Path | None:
    """codecarbon's energy-mix file, located without importing codecarbon (slow, pulls pandas); None if absent."""
    spec = importlib.util.find_spec("codecarbon")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / ENERGY_MIX_FILE
    return path if path.is_file() else None


@functools.lru_cache(maxsize=1)
def known_countries() -> dict[str, str]:
    """ISO 3166-1 alpha-3 code → country name, for every country codecarbon's offline tracker has data for."""
    path = energy_mix_path()
    if path is None:
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    return {code: str(entry.get("country_name", code)) for code, entry in data.items()}


def check_country(code: str, what: str = "country") -> str:
    """The canonical (upper-case) code for `code`, or a CountryError saying how to find a valid one.

    codecarbon looks a code up as given and, when it is missing (a typo, a 2-letter code, lower case), logs a
    warning and computes CO2 with the world-average intensity, which would then be stored under the requested
    name. Without codecarbon there is nothing to look up (energy is reported unavailable), so any code passes.
    """
    known = known_countries()
    if not known:
        return code
    canonical = code.strip().upper()
    if canonical in known:
        return canonical
    typed = code.strip().lower()
    by_name = {name.lower(): iso for iso, name in known.items()}
    guesses = [by_name[typed]] if typed in by_name else []  # a country name instead of its code
    guesses += difflib.get_close_matches(canonical, list(known), n=3, cutoff=0.6)
    guesses += [by_name[n] for n in difflib.get_close_matches(typed, list(by_name), n=2, cutoff=0.75)]
    hint = ", ".join(f"{iso} ({known[iso]})" for iso in dict.fromkeys(guesses))
    raise CountryError(
        f"{what} {code!r}: codecarbon has no carbon intensity for this country code"
        + (f" (did you mean {hint}?)" if hint else "")
        + f". Use an ISO 3166-1 alpha-3 code such as USA, FRA, DEU or IND; the {len(known)} known codes are the "
        f"keys of {energy_mix_path()}"
    )


def offline_tracker(
    country: str, *, log_folder: str | os.PathLike[str] | None = None, log_file: str = "emissions.csv",
    project_name: str | None = None,
) -> Any:
    """A started codecarbon offline tracker, set up the one way greenprune uses codecarbon.

    Process mode (this process's CPU share, not the machine's), quiet, several trackers allowed at once; with
    `log_folder` it also appends its emissions log there (`log_file`), otherwise it writes nothing.
    Raises whatever codecarbon raises when it cannot start (callers record energy as unavailable).
    """
    from codecarbon import OfflineEmissionsTracker

    logging.getLogger("codecarbon").setLevel(logging.ERROR)  # after the import, which sets its own level
    where: dict[str, Any] = (
        {"output_dir": str(log_folder), "output_file": log_file, "save_to_file": True} if log_folder is not None
        else {"output_dir": tempfile.gettempdir(), "save_to_file": False}
    )
    if project_name is not None:
        where["project_name"] = project_name
    tracker = OfflineEmissionsTracker(country_iso_code=country, log_level="error", tracking_mode="process",
                                      allow_multiple_runs=True, **where)
    tracker.start()
    return tracker


@contextlib.contextmanager
def emissions_log(folder: str | os.PathLike[str], *, country: str, project_name: str, enabled: bool = True,
                  log_file: str = "emissions.csv") -> Iterator[None]:
    """codecarbon's emissions log of the enclosed block, appended to `folder/log_file` (a resumed run adds rows).

    Best effort: without codecarbon (or when it cannot start) the block runs untracked, with a warning.
    """
    if not enabled:
        yield
        return
    try:
        tracker = offline_tracker(country, log_folder=folder, log_file=log_file, project_name=project_name)
    except Exception as exc:
        log.warning("codecarbon unavailable for %s: %s", project_name, exc)
        tracker = None
    try:
        yield
    finally:
        if tracker is not None:
            with contextlib.suppress(Exception):
                tracker.stop()


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

    def __post_init__(self) -> None:
        if self.enabled:  # before any work: an unknown code would silently get the world-average intensity
            self.country = check_country(self.country)

    def __enter__(self) -> EnergyTracker:
        if not self.enabled:
            self.method = "disabled"
            return self
        try:
            self._tracker = offline_tracker(self.country)
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
