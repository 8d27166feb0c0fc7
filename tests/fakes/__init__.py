"""Loopback fakes of external services for tests."""
