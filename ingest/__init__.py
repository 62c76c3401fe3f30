"""plantmrv.ingest"""
