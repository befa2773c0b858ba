"""Helpers shared by nodes, connections and historian backends.

Below everything but the contract (import-linter ``layers``): nothing here imports a node,
a connection or the runtime."""
