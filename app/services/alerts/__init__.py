"""Alerts layer: alerts, the on-call rota, paging and escalation."""
