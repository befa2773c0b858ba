"""The runner's data directory: one layout, resolved once, no fallbacks.

Everything the runner writes lives under one root (``--data-dir`` / ``--userdir``)::

    <root>/
      flows.json             the deployed flows (no credentials)
      flows_cred.json        encrypted credentials                                  secret
      .config.runtime.json   the generated credential secret                        secret
      .deploy.json           the journal of a deploy being committed (transient)
      .starting              marks flows being started (safe mode after a crash)
      context/               the ``file`` context store, one JSON file per scope
      data/                  files of file in/out nodes and user-supplied files
      models/                ONNX models by content hash
      certificates/          the runner's own certificates and keys (opcua/ ...)    secret
      outbox/                store-and-forward queues (mqtt-queue/ ...)
      historian/             the SQLite historian and its spools
      tmp/                   short-lived files (e.g. a TLS key chain being loaded)  secret

In managed mode (a device agent runs the engine) the agent keeps, beside those::

      device/                the device's identity and credential (0700)            secret
        identity.json        platform URL, device id, team, pinned keys, sealing key
        credential           the device credential (also the local Admin API token)
      agent.json             active and last good generation, handled target, min_generation
      engine.log             the supervised engine's output
      snapshots/<gen>/       manifest.json + parts of an installed target
      snapshots/.incoming/   downloads in progress (resumable)

An engine built without a ``RunnerPaths`` has no directories: a node that needs one fails with
a clear error instead of writing to the working directory, /tmp or the home directory. Tests
get an explicit throw-away layout from ``RunnerPaths.temporary()`` (``edge_runner.testing``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

FLOWS_FILE = "flows.json"
CREDENTIALS_FILE = "flows_cred.json"
RUNTIME_CONFIG_FILE = ".config.runtime.json"
JOURNAL_FILE = ".deploy.json"
STARTING_FILE = ".starting"
DEVICE_DIR = "device"
IDENTITY_FILE = "identity.json"
DEVICE_CREDENTIAL_FILE = "credential"
AGENT_STATE_FILE = "agent.json"
ENGINE_LOG_FILE = "engine.log"
SNAPSHOTS_DIR = "snapshots"
INCOMING_DIR = ".incoming"
# The documented default of ``--userdir`` / ``--data-dir``.
DEFAULT_ROOT = "~/.edge-runner"


class NoRunnerPathsError(RuntimeError):
    """Something asked for a runner directory of an engine that was built without one."""


@dataclass(frozen=True)
class RunnerPaths:
    """Every file and directory of one runner, below the absolute ``root``."""

    root: Path

    def __post_init__(self) -> None:
        if not self.root.is_absolute():
            raise ValueError(f"the runner's data directory must be absolute, got {self.root}")

    @classmethod
    def at(cls, root: str | os.PathLike[str]) -> RunnerPaths:
        """The layout under ``root`` (``~`` expanded, made absolute: resolved once, here)."""
        return cls(Path(root).expanduser().resolve())

    @classmethod
    def temporary(cls, prefix: str = "edge-runner-") -> RunnerPaths:
        """A fresh private layout for tests and tools; remove it with ``remove_all()``."""
        return cls(Path(tempfile.mkdtemp(prefix=prefix)).resolve())

    # ------------------------------------------------------------------ files
    @property
    def flows(self) -> Path:
        return self.root / FLOWS_FILE

    @property
    def credentials(self) -> Path:
        return self.root / CREDENTIALS_FILE

    @property
    def runtime_config(self) -> Path:
        """Holds the generated ``_credentialSecret`` (as Node-RED's ``.config.runtime.json``)."""
        return self.root / RUNTIME_CONFIG_FILE

    @property
    def deploy_journal(self) -> Path:
        return self.root / JOURNAL_FILE

    @property
    def starting_marker(self) -> Path:
        return self.root / STARTING_FILE

    @property
    def identity(self) -> Path:
        """The device identity written at registration (managed mode)."""
        return self.device / IDENTITY_FILE

    @property
    def device_credential(self) -> Path:
        """The device credential; also the engine's ``--admin-token-file`` in managed mode."""
        return self.device / DEVICE_CREDENTIAL_FILE

    @property
    def agent_state(self) -> Path:
        """The agent's ``agent.json``: active, last good, handled target, min_generation."""
        return self.root / AGENT_STATE_FILE

    @property
    def engine_log(self) -> Path:
        """The output of the engine a device agent supervises."""
        return self.root / ENGINE_LOG_FILE

    # ------------------------------------------------------------------ directories
    @property
    def device(self) -> Path:
        return self.root / DEVICE_DIR

    @property
    def snapshots(self) -> Path:
        return self.root / SNAPSHOTS_DIR

    @property
    def snapshots_incoming(self) -> Path:
        return self.snapshots / INCOMING_DIR

    @property
    def context(self) -> Path:
        return self.root / "context"

    @property
    def node_data(self) -> Path:
        return self.root / "data"

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def certificates(self) -> Path:
        return self.root / "certificates"

    @property
    def opcua_pki(self) -> Path:
        return self.certificates / "opcua"

    @property
    def outbox(self) -> Path:
        return self.root / "outbox"

    @property
    def mqtt_queue(self) -> Path:
        return self.outbox / "mqtt-queue"

    @property
    def historian(self) -> Path:
        return self.root / "historian"

    @property
    def temp(self) -> Path:
        return self.root / "tmp"

    def ensure(self, directory: Path) -> Path:
        """Create ``directory`` (one of ours) when missing. ``certificates``, ``tmp`` and
        ``device`` hold key material: they and everything below them are made private (0700)."""
        for private in (self.certificates, self.temp, self.device):
            if directory == private or private in directory.parents:
                private.mkdir(parents=True, exist_ok=True, mode=0o700)
                private.chmod(0o700)  # also when an older runner made it readable
                directory.mkdir(parents=True, exist_ok=True, mode=0o700)
                return directory
        directory.mkdir(parents=True, exist_ok=True)
        return directory

    def adopt_legacy_layout(self) -> list[tuple[Path, Path]]:
        """Move what earlier runners kept elsewhere under this root into its place (the MQTT
        queue, still holding undelivered messages, and the OPC-UA certificate servers already
        trust); returns the moves made. Run once at startup, before any node."""
        moves = []
        for old, new in (
            (Path("mqtt-queue"), self.mqtt_queue),
            (Path("data", "opcua", "pki"), self.opcua_pki),
        ):
            source = self.root / old
            if source.is_dir() and not new.exists():
                self.ensure(new.parent)
                source.rename(new)
                moves.append((source, new))
        return moves

    # ------------------------------------------------------------------ listings
    def secrets(self) -> tuple[Path, ...]:
        """Every file or directory that holds secret material: the credential secret, the
        encrypted credentials, the runner's certificates and keys, temporary key files and the
        device identity and credential (managed mode)."""
        return (self.runtime_config, self.credentials, self.certificates, self.temp, self.device)

    def entries(self) -> tuple[Path, ...]:
        """Everything the runner writes under ``root`` (what a decommission wipe removes)."""
        return (
            self.flows,
            self.credentials,
            self.runtime_config,
            self.deploy_journal,
            self.starting_marker,
            self.context,
            self.node_data,
            self.models,
            self.certificates,
            self.outbox,
            self.historian,
            self.temp,
            self.device,
            self.agent_state,
            self.engine_log,
            self.snapshots,
        )

    def owns(self, path: Path) -> bool:
        """Whether ``path`` is covered by ``entries()``."""
        return _covered(path, self.entries())

    def holds_secret(self, path: Path) -> bool:
        """Whether ``path`` is covered by ``secrets()``."""
        return _covered(path, self.secrets())

    def remove_all(self) -> None:
        """Delete ``root`` and everything in it (temporary layouts)."""
        shutil.rmtree(self.root, ignore_errors=True)


def _covered(path: Path, entries: tuple[Path, ...]) -> bool:
    """``path`` is one of ``entries``, inside one, or a file kept beside one
    (``flows.json.broken-<time>``, the atomic writers' ``.<name>.*.tmp``)."""
    for entry in entries:
        if path == entry or entry in path.parents:
            return True
        if path.parent == entry.parent and (
            path.name.startswith(f"{entry.name}.") or path.name.startswith(f".{entry.name}.")
        ):
            return True
    return False
