"""plantmrv.simulators: physical plant models, ground truth, fault injection, OPC UA/MQTT serving.

Plant models (pure numpy, one module per plant type; fields exactly as docs/data-model.md)
------------------------------------------------------------------------------------------
``pump``, ``vsd``, ``ubcf``, ``wte``, ``pv``: each has ``MEASUREMENT``, ``FIELDS``
(field -> (unit, description)), ``METERS``, a frozen params dataclass with defaults and a
``source`` note (``PumpParams``, ``VsdParams``, ``UbcfParams``, ``WteParams``, ``PvParams``) and
``model(ts_ns, rng, params=None) -> dict[str, np.ndarray]``. Same seed and timestamps give the
same output, and the value at a timestamp does not depend on the grid (noise is hashed from
absolute time, :mod:`.signals`). Meters are registers (:mod:`.meters`): monotonic, roll over
at ``meter.rollover``, restart at 0 on ``meter.replacements``.

Registry and helpers (:mod:`.plants`)::

    from plantmrv.simulators.plants import PLANT_TYPES, generate, to_batch, make_params
    PLANT_TYPES["pump"]            # PlantType: .measurement, .model, .params_cls, .fields,
                                   # .units (field -> unit), .meters, .default_site/.default_asset
    measurement, model, params_cls, units = PLANT_TYPES["pump"]   # unpacks as a 4-tuple
    fields = generate("pump", ts_ns, seed_or_rng, params=None, **overrides)
    batch = to_batch("danang", "pump1", "pump", ts_ns, fields, quality=None)  # SampleBatch
    batch = simulate_batch("pump", ts_ns, seed, faults=[Fault(...)])  # faults + quality applied
    params = make_params("pump", {"eta_pump_bep": 0.84, "meter": {"rollover": 1e6}})

Default sites: danang (pump), hcmc (vsd), haiphong (ubcf), yangon (wte), binhduong (pv).

Ground truth (:mod:`.truth`)::

    from plantmrv.simulators.truth import truth
    t = truth("vsd", "2026-07-01T00:00:00Z", "2026-08-01T00:00:00Z", rng=seed, params=None)
    t.inputs   # {"project_energy_kwh", "operating_hours_h", "baseline_power_kw", ...}
    t.integrals  # every integrated rate (kWh, m3, t, kg, h); equals the meter differences
    config_truth(start, end, plants=["pump"], config_file=None, scale=1, seed=0)  # per served asset

Faults (:mod:`.faults`): ``Fault``, ``fault_schedule(seed, start_ns, end_ns, assets, ...)``,
``apply_faults(faults, site, asset, ts_ns, fields) -> (fields, quality)``, ``apply_dropout``,
``with_meter_resets``, ``FaultLog`` (JSONL).

Serving (:mod:`.server`, :mod:`.cli`): ``plantmrv simulate`` / ``python -m plantmrv.simulators``;
see ``--help``. Tests start it with ``tests/sim_fixtures.py`` (``simulator`` fixture,
``start_simulator(args, tmp_path) -> SimHandle``). ``server.ensure_certificate(dir, name,
app_uri, client=True)`` makes self-signed certificates for OPC UA test clients.
"""
