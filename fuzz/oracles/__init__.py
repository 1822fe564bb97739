"""Oracles: the properties users rely on, checked after every step."""
