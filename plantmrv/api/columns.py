"""Machine keys of the exports' tables: the CSV's column headings and the xlsx key rows.

They are the same in every language of an export (``lang``): a program reads a table by these
keys, a person by the headings above them in the export's language (docs/verifier.md).
"""

from __future__ import annotations

PARAMETER_COLUMNS = ["symbol", "description", "value", "unit", "option", "kind", "source", "measurement_method", "frequency", "comments"]
POINT_COLUMNS = ["symbol", "description", "measurement", "site", "asset", "field", "unit", "option", "measurement_method", "frequency", "meter"]
RAW_COLUMNS = ["measurement", "site", "asset", "field", "ts_ns", "value", "time_utc"]
CHECK_COLUMNS = ["code", "count", "first_utc", "message"]
EVENT_COLUMNS = ["time_utc", "ts_ns", "source", "kind", "detail", "duration_s", "amount", "counted"]
GAP_COLUMNS = ["start_utc", "end_utc", "completeness", "gap_filled_s", "filled_by"]
META_COLUMNS = ["key", "value"]
