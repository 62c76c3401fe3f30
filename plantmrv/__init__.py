"""plantmrv: IoT telemetry and MRV pipeline for low-carbon demonstration plants."""
__version__ = "0.1.0"
