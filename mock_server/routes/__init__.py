"""Thin async handlers: parse the request, call store and lifecycle, return JSON."""
