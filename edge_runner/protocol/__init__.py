"""What the platform and a managed runner agree on: the signed snapshot manifest
(``manifest``) and the link's messages (``link``). Pure: no I/O, no runtime, no Django; the
platform signs with these functions and the runner verifies with the same ones (one format,
one implementation). The prose version is docs/device-protocol.md."""
