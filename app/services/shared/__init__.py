"""Shared services at the bottom layer: audit, protocol and clinic settings, pagination, staff users, SMS wording."""
