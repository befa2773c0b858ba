"""Shipped example flows and the tools that make them run (simulators, model generators)."""
