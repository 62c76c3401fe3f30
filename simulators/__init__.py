"""plantmrv.simulators"""
