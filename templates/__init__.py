"""Jinja2 templates rendered by dmd.generator (shipped as package data)."""
