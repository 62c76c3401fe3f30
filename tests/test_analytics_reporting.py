"""Period reports: JCM flooring at the period total only, fiscal years, Japan's share, roll-ups."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plantmrv.analytics.reporting import (
    allocate_credits,
    calendar_year,
    japanese_fiscal_year,
    period_report,
    portfolio_rollup,
    reports_by,
    round_reported_t_co2,
)

S = 1_000_000_000


def ns(iso):
    return int(np.datetime64(iso, "ns").astype(np.int64))


def test_rounding_floors_only_the_period_total():
    # 8,760 hourly reductions of 1,043.712 / 8,760: flooring each hour would give 0
    hourly = np.full(8760, 1043.712 / 8760)
    ts = ns("2024-01-01T00:00") + np.arange(8760, dtype=np.int64) * 3600 * S
    r = period_report("hcmc-vsd", "MP1", ts, 3600, hourly, np.zeros(8760))
    assert r.reduction_t_co2 == pytest.approx(1043.712)
    assert r.reported_t_co2 == 1043


def test_rounding_scheme_is_a_setting():
    assert round_reported_t_co2(10.9, "jcm") == 10
    assert round_reported_t_co2(10.9, "j-credit") == 10
    assert round_reported_t_co2(10.9, "none") == 10.9
    with pytest.raises(ValueError, match="rounding scheme 'cdm' unknown"):
        round_reported_t_co2(1.0, "cdm")


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(-50, 50, allow_nan=False), min_size=1, max_size=50))
def test_reported_reductions_never_negative(values):
    r = period_report("p", "MP", np.arange(len(values), dtype=np.int64) * 3600 * S, 3600, np.array(values), np.zeros(len(values)))
    assert r.reported_t_co2 >= 0
    assert r.reported_t_co2 <= max(r.reduction_t_co2, 0) + 1e-9


def test_japanese_fiscal_year_runs_april_to_march_in_jst():
    ts = np.array([ns("2024-03-31T14:59"), ns("2024-03-31T15:00"), ns("2025-03-31T14:00")])  # UTC
    np.testing.assert_array_equal(japanese_fiscal_year(ts), [2023, 2024, 2024])
    np.testing.assert_array_equal(calendar_year(ts), [2024, 2024, 2025])


def test_reports_by_fiscal_and_calendar_year_partition_the_total():
    ts = ns("2024-01-01T00:00") + np.arange(0, 8784 + 8760, dtype=np.int64) * 3600 * S
    er = np.full(len(ts), 0.01)
    fy = reports_by("fiscal_year", "p", ts, 3600, er, np.zeros(len(ts)))
    cy = reports_by("calendar_year", "p", ts, 3600, er, np.zeros(len(ts)))
    assert [r.period for r in fy] == ["FY2023", "FY2024", "FY2025"]
    assert [r.period for r in cy] == ["CY2024", "CY2025"]
    assert sum(r.reduction_t_co2 for r in fy) == pytest.approx(er.sum())
    assert sum(r.reduction_t_co2 for r in cy) == pytest.approx(er.sum())


def test_japan_share_allocation():
    assert allocate_credits(1043.0, 0.5) == (521.0, 522.0)
    assert allocate_credits(1043.0, None) == (None, None)
    with pytest.raises(ValueError, match="japan_share"):
        allocate_credits(10.0, 1.5)


def test_ex_ante_and_ex_post_side_by_side_and_portfolio_rollup():
    ts = np.arange(10, dtype=np.int64) * 3600 * S
    a = period_report("a", "MP1", ts, 3600, np.full(10, 1.05), np.zeros(10), ex_ante_t_co2=12.0, japan_share=0.5, city="Da Nang", country="VN")
    b = period_report("b", "MP1", ts, 3600, np.full(10, 2.05), np.zeros(10), ex_ante_t_co2=20.0, japan_share=0.5, city="Ho Chi Minh City", country="VN")
    c = period_report("c", "MP1", ts, 3600, np.full(10, 1.0), np.zeros(10), credited=False, city="Hai Phong", country="VN")
    assert (a.ex_ante_t_co2, a.reported_t_co2) == (12.0, 10.0)
    roll = portfolio_rollup([a, b, c], by="country")
    assert len(roll) == 1 and roll[0]["reported_t_co2"] == 10 + 20  # not floor(10.5 + 20.5) = 31
    assert roll[0]["reduction_t_co2"] == pytest.approx(41.0)  # U-BCF KPI is in the unrounded sum only
    assert roll[0]["ex_ante_t_co2"] == 32.0
    assert {g["city"] for g in portfolio_rollup([a, b, c], by="city")} == {"Da Nang", "Ho Chi Minh City", "Hai Phong"}
    assert c.reported_t_co2 == 0 and c.japan_t_co2 is None


@pytest.mark.parametrize("zone,offset_h", [("Asia/Ho_Chi_Minh", 7), ("Asia/Yangon", 6.5), ("America/Santiago", -3), ("UTC", 0)])
def test_calendar_years_cut_exactly_at_local_midnight_for_many_years(zone, offset_h):
    """Hourly (half-hourly where the zone needs it) intervals around every New Year 2026-2045:
    the first interval starting at local midnight is the new year's, the one before the old year's
    (daylight-saving zones included: Santiago is UTC-3 in January)."""
    from zoneinfo import ZoneInfo

    step = 1800 if offset_h % 1 else 3600
    for year in range(2026, 2046):
        boundary = int(np.datetime64(f"{year}-01-01T00:00", "ns").astype(np.int64)) - int(offset_h * 3600) * S
        ts = boundary + np.arange(-3, 3, dtype=np.int64) * step * S
        np.testing.assert_array_equal(calendar_year(ts, ZoneInfo(zone)), [year - 1] * 3 + [year] * 3, err_msg=f"{zone} {year}")


def test_japanese_fiscal_years_start_at_00_00_jst_on_1_april_for_many_years():
    for year in range(2026, 2046):
        boundary = int(np.datetime64(f"{year}-03-31T15:00", "ns").astype(np.int64))
        ts = boundary + np.arange(-2, 2, dtype=np.int64) * 3600 * S
        np.testing.assert_array_equal(japanese_fiscal_year(ts), [year - 1, year - 1, year, year], err_msg=str(year))


def test_fiscal_year_reports_of_hourly_intervals_split_exactly_at_the_boundary():
    # 2027-03-31T12:00Z .. 18:00Z: three hours before 00:00 JST, three after
    t0 = int(np.datetime64("2027-03-31T12:00", "ns").astype(np.int64))
    ts = t0 + np.arange(6, dtype=np.int64) * 3600 * S
    er = np.array([1.0, 2.0, 3.0, 10.0, 20.0, 30.0])
    fy = reports_by("fiscal_year", "p", ts, 3600, er, np.zeros(6))
    assert [(r.period, r.reduction_t_co2) for r in fy] == [("FY2026", 6.0), ("FY2027", 60.0)]
