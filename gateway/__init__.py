"""plantmrv.gateway"""
