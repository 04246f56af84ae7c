"""Reusable release steps, one class each."""
