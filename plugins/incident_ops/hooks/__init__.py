"""Hooks: one thin I/O wrapper per external system."""
