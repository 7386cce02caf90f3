"""Symptom check-ins by SMS and by signed link."""
