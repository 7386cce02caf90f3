"""Messaging layer: reminder planning, the outbox, dispatch and delivery status callbacks."""
