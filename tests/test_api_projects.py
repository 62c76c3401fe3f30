"""The API's view of configured projects: every monitoring role is described, KH_AM002 shows its day rule."""

from __future__ import annotations

from plantmrv.analytics import registry
from plantmrv.analytics.config import AnalyticsConfig, AssetFields
from plantmrv.api.projects import project_from_analytics


def _pv_project(**extra):
    project = {
        "id": "kh-pv", "site": "phnom-penh", "plant_type": "pv", "timezone": "Asia/Phnom_Penh",
        "assets": [{"measurement": "pv", "asset": "inv1", "fields": {"export_meter": "export_energy_kwh", **extra.pop("fields", {})}}],
        "methodology": {"id": extra.pop("methodology_id", "VN_AM007"), "version": "1.0"},
        "monitoring_period": {"start": "2026-01-01T00:00:00Z", "end": "2027-01-01T00:00:00Z"},
        "grid_ef": {"value": 0.6, "unit": "tCO2/MWh", "source": "test grid EF", "kind": "national"},
        **extra,
    }
    return AnalyticsConfig.model_validate({"projects": [project]}).projects[0]


def test_every_asset_field_role_has_a_symbol_description_and_unit():
    roles = set(AssetFields.model_fields) - {"quality_pairs"}
    assert roles == set(registry.ROLES), roles ^ set(registry.ROLES)
    for r in registry.ROLES.values():
        assert r.symbol and r.description and r.unit, r


def test_kh_am002_project_lists_its_grid_flag_and_the_day_category_rule():
    project = _pv_project(
        fields={"grid_available": "grid_ok"}, methodology_id="KH_AM002", day_category={"utc_offset_h": 7},
        parameters={"ef_diesel_t_co2_per_mwh": {"value": 0.8, "unit": "tCO2/MWh", "source": "test diesel EF"}},
    )
    detail = project_from_analytics(project)
    points = {p.field: p for p in detail.monitoring_points}
    assert points["grid_ok"].symbol == "GA_d" and points["grid_ok"].unit == "0/1"
    assert "EF_RE,d" in [f.symbol for f in detail.methodology.formulas]


def test_projects_without_day_category_do_not_show_the_day_rule():
    detail = project_from_analytics(_pv_project())
    assert "EF_RE,d" not in [f.symbol for f in detail.methodology.formulas]
    # the API shows the very formulas the registry's methodology computes with
    assert [f.expression for f in detail.methodology.formulas] == [f.expression for f in registry.get("pv").formulas]
    assert [p.symbol for p in detail.monitoring_points] == ["EG"]
