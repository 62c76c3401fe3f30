"""plantmrv.dashboards"""
