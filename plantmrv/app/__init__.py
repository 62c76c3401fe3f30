"""The application: the one layer that sees every service.

plantmrv is layered so that a change stays where it belongs:

- the core (``plantmrv/`` outside this package and ``plantmrv/api/``): data model, config
  loading, line protocol, the InfluxDB client, logs, exit codes; it imports no service;
- the services (``plantmrv.gateway``, ``.ingest``, ``.analytics``, ``.dashboards``,
  ``.simulators``, and the verifier API ``plantmrv.api``): each imports the core and, where it
  builds on one, another service (the API reads the analytics' results), never this package;
- this package: the root config schema (:mod:`.config`: every service's section), the
  ``plantmrv`` command that mounts every service's commands (:mod:`.cli`) and the demo, which
  runs them all together (:mod:`.demo`). Nothing imports it but the entry points
  (``plantmrv``, ``python -m plantmrv``).

``tests/test_layers.py`` walks the import graph and fails on an import against these layers
or on any import cycle.
"""
