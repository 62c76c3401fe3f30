"""Mapped device JSON for ingest (``ingest.device_json``): the shared :mod:`plantmrv.devicejson`.

Ingest routes each message on a mapped topic through :class:`DeviceJsonRouter`; a refused value
(:class:`FieldReject`) becomes part of the message's dead-letter reason, a
:class:`JsonDecodeError` dead-letters the whole payload.
"""

from plantmrv.devicejson import (  # noqa: F401  (re-exported for plantmrv.ingest)
    DecodedJson,
    DeviceJsonMapping,
    DeviceJsonRouter,
    DeviceJsonTopic,
    FieldMap,
    FieldReject,
    JsonDecodeError,
    TimestampConfig,
    check_topic_filter,
    topic_matches,
)
