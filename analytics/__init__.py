"""plantmrv.analytics: MRV methodologies (pure numpy) and the engine that runs them.

Modules (pvlib style: plain functions over numpy arrays, units in every name):

- :mod:`.energy` energy per interval from power samples (trapezoid, gaps not bridged) and from
  cumulative meters (rollover / reset safe)
- :mod:`.baselines` the five baseline models, selectable by name (``REGISTRY``)
- :mod:`.pumps`, :mod:`.vsd`, :mod:`.wte`, :mod:`.ubcf` (NOT CREDITED), :mod:`.pv` one module
  per methodology family: reference, project emissions, reductions, parameters with sources
- :mod:`.emission_factors` versioned grid-EF table with sources, TOOL07 combined margin
- :mod:`.common` emissions from energy, ER, the conservative missing-data rule
- :mod:`.reporting` JCM rounding, fiscal / calendar years, Japan's share, portfolio roll-up
- :mod:`.config` the ``analytics`` config section; :mod:`.methodologies` per-plant compute;
  :mod:`.engine` InfluxDB in / ``mrv`` out (continuous, late data, backfill); :mod:`.cli`
"""
