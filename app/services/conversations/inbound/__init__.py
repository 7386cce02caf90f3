"""Inbound SMS: store, interpret, act and answer."""
