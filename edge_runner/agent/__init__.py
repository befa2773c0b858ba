"""Managed mode: ``edge-runner register`` and ``edge-runner run`` (docs/device-protocol.md).

The agent owns the link to the platform, the snapshot store and the engine, which it runs as a
supervised child process (``edge-runner serve``) and talks to through the engine's own Admin
API: it never imports the engine."""
