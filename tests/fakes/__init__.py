"""Test doubles that run for real: fake_twilio.FakeTwilio is a loopback Twilio server."""
