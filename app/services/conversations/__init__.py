"""Conversations layer: inbound SMS (the triage pipeline), check-ins, nurse replies, the triage inbox."""
