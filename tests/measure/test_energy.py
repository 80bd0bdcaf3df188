from __future__ import annotations

import pytest
from typer.testing import CliRunner

from greenprune.cli import app
from greenprune.measure.energy import CountryError, EnergyTracker, check_country, known_countries

runner = CliRunner()


def test_known_countries_come_from_codecarbons_data():
    known = known_countries()
    assert len(known) > 100 and known["FRA"] == "France" and "USA" in known


@pytest.mark.parametrize(("code", "canonical"), [("USA", "USA"), ("fra", "FRA"), (" deu ", "DEU")])
def test_known_codes_pass_in_canonical_form(code, canonical):
    assert check_country(code) == canonical


@pytest.mark.parametrize(("code", "hint"), [("XXX", None), ("France", "FRA (France)"), ("US", "USA (United States)")])
def test_unknown_country_is_refused_with_how_to_find_codes(code, hint):
    with pytest.raises(CountryError) as info:
        check_country(code, "--country")
    message = str(info.value)
    assert f"--country {code!r}" in message and "global_energy_mix.json" in message and "alpha-3" in message
    if hint:
        assert hint in message


def test_tracker_never_stores_the_world_average_under_an_unknown_name():
    # codecarbon itself only logs a warning and uses the world average for an unknown code
    with pytest.raises(CountryError, match="'XXX'"):
        EnergyTracker(country="XXX")
    assert EnergyTracker(country="XXX", enabled=False).country == "XXX"  # unused when energy is off


def test_measure_cli_refuses_an_unknown_country_before_loading(monkeypatch):
    import greenprune.models

    loads: list[str] = []
    monkeypatch.setattr(greenprune.models, "load_model", lambda spec, **_: loads.append(spec))
    result = runner.invoke(app, ["measure", "tiny-bert", "--country", "XXX", "--batches", "1", "--passes", "1"])
    assert result.exit_code == 2, result.output
    assert "--country 'XXX'" in " ".join(result.output.split())
    assert "Traceback" not in result.output
    assert loads == []


def test_emissions_log_appends_codecarbons_file_or_runs_untracked(tmp_path, monkeypatch, caplog) -> None:
    from greenprune.measure import energy

    with energy.emissions_log(tmp_path / "off", country="USA", project_name="u", enabled=False):
        pass
    assert not (tmp_path / "off").exists()
    with energy.emissions_log(tmp_path, country="USA", project_name="unit-0"):
        sum(range(10_000))
    assert "unit-0" in (tmp_path / "emissions.csv").read_text()  # codecarbon's own log, one row per session

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("no power reading")

    monkeypatch.setattr(energy, "offline_tracker", broken)
    ran = []
    with caplog.at_level("WARNING", logger=energy.__name__), energy.emissions_log(
            tmp_path, country="USA", project_name="unit-1"):
        ran.append(True)
    assert ran == [True]
    assert "codecarbon unavailable for unit-1: no power reading" in caplog.text
