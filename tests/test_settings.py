"""Clinic settings: the reference's defaults, a TOML file over them, and refusals naming the key."""

import pytest

from devicelog.clinic.records import DeviceKind
from devicelog.settings import Settings, SettingsError, load_settings, parse_settings


def test_defaults_are_the_clinical_reference():
    s = Settings()
    assert s.refill_margin_days == 7
    assert [(c.day, c.window_start_day, c.window_end_day) for c in s.wound_checks][0] == (10, 7, 14)
    assert s.discrepancy_limit_ml(20) == 1.0 and s.discrepancy_limit_ml(40) == 2.0
    assert (s.impedance_open_ohm, s.impedance_short_ohm) == (4000, 250)
    assert s.oral_to_it_morphine_ratio == 300
    assert s.region == "EU" and s.consensus_limits is True


def test_a_30_ml_reservoir_takes_the_stricter_limit():
    # 30 mL lies between the 20 mL (1.0 mL) and 40 mL (2.0 mL) rows: the largest size not
    # above 30 mL is 20 mL, so 1.0 mL, the safe side.
    assert Settings().discrepancy_limit_ml(30) == 1.0
    assert Settings().discrepancy_limit_ml(16) == 1.0


def test_one_follow_up_interval_keeps_the_others(tmp_path):
    path = tmp_path / "settings.toml"
    path.write_text('refill_margin_days = 10\n[follow_up_days]\nspinal_cord_stimulator = 365\n')
    s = load_settings(path)
    assert s.refill_margin_days == 10
    assert s.follow_up_days[DeviceKind.spinal_cord_stimulator] == 365
    assert s.follow_up_days[DeviceKind.intrathecal_pump] == Settings().follow_up_days[DeviceKind.intrathecal_pump]


@pytest.mark.parametrize(
    "text, key, value",
    [
        ("refill_margin_days = 14", "refill_margin_days", "14"),
        ("refill_margin_days = 2", "refill_margin_days", "2"),
        ('region = "JP"', "region", "'JP'"),
        ('ziconotide_region = "JP"', "region", "'JP'"),  # the earlier name, still read
        ("implausible_factor = 100", "implausible_factor", "100"),
        ("impedance_open_ohm = 100", "impedance_open_ohm", "100"),
        ("no_such_setting = 1", "no_such_setting", "1"),
    ],
)
def test_out_of_range_values_are_refused_naming_key_and_value(text, key, value):
    with pytest.raises(SettingsError) as info:
        parse_settings(text, "clinic.toml")
    assert "clinic.toml" in str(info.value) and key in str(info.value) and value in str(info.value)


def test_bad_toml_and_missing_file_are_refused(tmp_path):
    with pytest.raises(SettingsError, match="not valid TOML"):
        parse_settings("refill_margin_days = ", "x.toml")
    with pytest.raises(SettingsError, match="does not exist"):
        load_settings(tmp_path / "missing.toml")


def test_cli_refuses_a_bad_settings_file_at_start(tmp_path, capsys):
    from devicelog.cli import main

    path = tmp_path / "s.toml"
    path.write_text("refill_margin_days = 30\n")
    assert main(["--db", str(tmp_path / "c.db"), "--settings", str(path), "due"]) == 2
    assert "refill_margin_days = 30" in capsys.readouterr().err


def test_a_folder_as_settings_file_is_refused_in_one_line(tmp_path):
    # Issue 19: `--settings` pointing at a folder gave an IsADirectoryError traceback.
    with pytest.raises(SettingsError) as info:
        load_settings(tmp_path)
    assert str(info.value) == f"settings file {tmp_path} is a folder: give the TOML file inside it"


def test_dates_and_age_limits_are_settings(tmp_path):
    path = tmp_path / "settings.toml"
    path.write_text("earliest_date = 1880-01-01\nplanned_years_ahead = 3\nmax_age_years = 110\n")
    s = load_settings(path)
    assert (str(s.earliest_date), s.planned_years_ahead, s.max_age_years) == ("1880-01-01", 3, 110)
