"""Losses of method=coupled (pure functions of network outputs)."""
