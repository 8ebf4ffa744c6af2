"""Losses of method=nemgan (pure functions of network outputs)."""
