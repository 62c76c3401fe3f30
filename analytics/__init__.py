"""plantmrv.analytics"""
