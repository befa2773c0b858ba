"""Every write of snapshots and team keys, and what devices receive from them.

A snapshot is validated with the platform's validator (the runner's own) before anything is
stored: flows every device would reject are never stored, signed or rolled out. Node
credentials are split off the flows and sealed with the team's data key; only their field
names stay readable (digest, detail pages).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from django.apps import apps as django_apps
from django.db import transaction
from django.db.models import ProtectedError, Q

from apps.accounts.principal import Principal
from apps.audit.services import audit_record
from apps.core.errors import Conflict, ValidationError
from apps.core.realtime import broadcast_team_event
from apps.flows.validation import Problem, flows_valid, flows_validate
from apps.snapshots import keys, selectors
from apps.snapshots.models import ModelArtifact, Snapshot, SnapshotModel, TeamGeneration, TeamKey
from apps.teams.models import Application, Team
from edge_runner.protocol import manifest

MAX_FLOWS_BYTES = 5 * 1024 * 1024
MAX_NODES = 5000
MAX_ENV = 500
MAX_ENV_VALUE = 32 * 1024
MAX_MODEL_REFS = 64
# verify_keys accepts at most 8 keys in a list.
MAX_LISTED_KEYS = 8
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class FlowsRejected(ValidationError):  # noqa: N818  # a refusal, like ValidationError
    """The validator found errors; ``problems`` lists them (pages show them by node)."""

    code = "invalid_flows"

    def __init__(self, problems: list[Problem]) -> None:
        errors = [p for p in problems if p.severity == "error"]
        lines = [_problem_line(p) for p in errors]
        super().__init__(
            f"The flows have {len(errors)} problem(s) a runner would reject: "
            + "; ".join(lines[:5])
            + ("; ..." if len(lines) > 5 else ""),
            fields={"flows": lines},
        )
        self.problems = errors


def _problem_line(problem: Problem) -> str:
    where = problem.node_id or "flows"
    if problem.type:
        where += f" ({problem.type})"
    if problem.field:
        where += f" {problem.field}"
    return f"{where}: {problem.message}"


# ---------------------------------------------------------------------- input cleaning
def _invalid(field: str, message: str, code: str = "invalid") -> ValidationError:
    return ValidationError(message, fields={field: message}, code=code)


def _split_input(flows: Any) -> tuple[list[Any], dict[str, dict[str, Any]]]:
    """The flows array and the credentials per node id, from an export list or
    ``{"flows": [...], "credentials": {...}}``; node ``credentials`` are taken off the nodes."""
    extra: Any = {}
    if isinstance(flows, Mapping):
        unknown = set(flows) - {"flows", "credentials", "rev"}
        if "flows" not in flows or unknown:
            raise _invalid(
                "flows", 'Send a flows.json array or {"flows": [...], "credentials": {...}}.'
            )
        extra = flows.get("credentials") or {}
        flows = flows["flows"]
    if not isinstance(flows, list):
        raise _invalid("flows", "The flows must be a JSON array of nodes (a Node-RED export).")
    if len(flows) > MAX_NODES:
        raise _invalid(
            "flows", f"The flows have {len(flows)} nodes; at most {MAX_NODES}.", "too_many_nodes"
        )
    if not isinstance(extra, Mapping) or not all(isinstance(v, Mapping) for v in extra.values()):
        raise _invalid("credentials", "credentials must map node ids to {field: value} objects.")
    nodes: list[Any] = []
    credentials: dict[str, dict[str, Any]] = {}
    for node in flows:
        if isinstance(node, Mapping) and "credentials" in node:
            inline = node["credentials"]
            node = {k: v for k, v in node.items() if k != "credentials"}
            if not isinstance(inline, Mapping):
                raise _invalid("flows", f"node {node.get('id')!r}: credentials must be an object")
            if inline:
                credentials[str(node.get("id"))] = dict(inline)
        nodes.append(node)
    ids = {str(n.get("id")) for n in nodes if isinstance(n, Mapping)}
    for node_id, fields in extra.items():
        if str(node_id) not in ids:
            raise _invalid("credentials", f"credentials name node {node_id!r}, not in the flows")
        if fields:
            credentials.setdefault(str(node_id), {}).update(fields)
    return nodes, credentials


def _clean_env(env: Any) -> dict[str, str]:
    if env is None:
        return {}
    if not isinstance(env, Mapping) or len(env) > MAX_ENV:
        raise _invalid("env", f"env must be an object of at most {MAX_ENV} NAME: value pairs.")
    cleaned = {}
    for name, value in env.items():
        if not isinstance(name, str) or not ENV_NAME.match(name):
            raise _invalid("env", f"{name!r} is not a valid environment variable name.")
        if not isinstance(value, str) or len(value) > MAX_ENV_VALUE:
            raise _invalid("env", f"env {name}: the value must be a string (at most 32 KiB).")
        cleaned[name] = value
    return cleaned


def _clean_settings(runner_settings: Any) -> dict[str, Any]:
    if runner_settings is None:
        return {}
    if not isinstance(runner_settings, Mapping):
        raise _invalid("runner_settings", "runner_settings must be an object.")
    return dict(runner_settings)


def _clean_model_refs(model_refs: Any) -> list[dict[str, Any]]:
    if model_refs is None:
        return []
    if not isinstance(model_refs, list) or len(model_refs) > MAX_MODEL_REFS:
        raise _invalid("model_refs", f"model_refs must be a list of at most {MAX_MODEL_REFS}.")
    cleaned = []
    for ref in model_refs:
        ok = (
            isinstance(ref, Mapping)
            and set(ref) == {"name", "sha256", "size"}
            and isinstance(ref["name"], str)
            and 0 < len(ref["name"]) <= 200
            and isinstance(ref["sha256"], str)
            and _SHA256.match(ref["sha256"])
            and isinstance(ref["size"], int)
            and not isinstance(ref["size"], bool)
            and ref["size"] >= 0
        )
        if not ok:
            raise _invalid("model_refs", 'Each model ref is {"name", "sha256" (64 hex), "size"}.')
        cleaned.append(dict(ref))
    return cleaned


def _node_model_hash(node: Any) -> str | None:
    """The model hash an onnx-infer node names, as the runner normalises it."""
    if not isinstance(node, Mapping) or node.get("type") != "onnx-infer":
        return None
    text = str(node.get("model") or "").strip().lower()
    if text.startswith("sha256:"):
        text = text[len("sha256:") :]
    return text or None


def _resolve_models(
    team: Team, refs: list[dict[str, Any]], nodes: list[Any]
) -> tuple[list[dict[str, Any]], list[ModelArtifact]]:
    """The model refs a snapshot ships: those given (each must be a model of the team, with
    its size) plus the models onnx-infer nodes name (each must be one of the team's)."""
    wanted = {ref["sha256"] for ref in refs}
    named = {node_hash for node in nodes if (node_hash := _node_model_hash(node))}
    held = selectors.models_by_hash(team=team, hashes=wanted | named)
    for ref in refs:
        artifact = held.get(ref["sha256"])
        if artifact is None:
            raise _invalid(
                "model_refs",
                f"model_refs names {ref['sha256'][:12]}…, which is not one of this team's "
                "models: upload it first.",
                "unknown_model",
            )
        if ref["size"] != artifact.size:
            raise _invalid(
                "model_refs",
                f"model_refs {ref['sha256'][:12]}…: size {ref['size']}, the model has "
                f"{artifact.size} bytes.",
            )
    resolved = list(refs)
    for node in nodes:
        node_hash = _node_model_hash(node)
        if node_hash is None or node_hash in wanted:
            continue
        artifact = held.get(node_hash)
        if artifact is None:
            message = (
                f"node {node.get('id')!r} (onnx-infer) uses model {node_hash[:12]}…, which is "
                "not one of this team's models: upload it first."
            )
            raise ValidationError(message, fields={"flows": [message]}, code="unknown_model")
        wanted.add(node_hash)
        resolved.append({"name": artifact.name, "sha256": node_hash, "size": artifact.size})
    if len(resolved) > MAX_MODEL_REFS:
        raise _invalid("model_refs", f"A snapshot ships at most {MAX_MODEL_REFS} models.")
    return resolved, [held[ref["sha256"]] for ref in resolved]


def _clean_text(value: Any, field: str, max_length: int, required: bool) -> str:
    text = (value if isinstance(value, str) else "").strip()
    if (required and not text) or len(text) > max_length:
        lower = 1 if required else 0
        raise _invalid(field, f"The {field} must be {lower} to {max_length} characters.")
    return text


def _canonical(value: Any, field: str) -> bytes:
    try:
        return manifest.canonical_json(value)
    except (TypeError, ValueError):
        raise _invalid(field, f"The {field} must be plain JSON (no NaN or Infinity).") from None


def credential_fields(credentials: Mapping[str, Mapping[str, Any]]) -> dict[str, list[str]]:
    """Field names per node id: what may be shown and hashed (never the values)."""
    return {node: sorted(fields) for node, fields in sorted(credentials.items())}


def snapshot_digest(
    *,
    flows: list[Any],
    env: Mapping[str, str],
    runner_settings: Mapping[str, Any],
    model_refs: list[dict[str, Any]],
    fields: Mapping[str, list[str]],
) -> str:
    return manifest.sha256_hex(
        manifest.canonical_json(
            {
                "flows": flows,
                "env": dict(env),
                "settings": dict(runner_settings),
                "model_refs": model_refs,
                "credential_fields": dict(fields),
            }
        )
    )


# ---------------------------------------------------------------------- snapshots
def snapshot_create(
    *,
    principal: Principal,
    application: Application,
    name: str,
    flows: Any,
    description: str = "",
    env: Any = None,
    runner_settings: Any = None,
    parent: Snapshot | None = None,
    model_refs: Any = None,
) -> Snapshot:
    """Validate, split and seal, then store one immutable snapshot (``team.snapshot.created``)."""
    principal.require_writable("create snapshots")
    clean_name = _clean_text(name, "name", 100, required=True)
    clean_description = _clean_text(description, "description", 2000, required=False)
    nodes, credentials = _split_input(flows)
    flows_bytes = _canonical(nodes, "flows")
    if len(flows_bytes) > MAX_FLOWS_BYTES:
        raise _invalid(
            "flows",
            f"The flows are {len(flows_bytes)} bytes; at most {MAX_FLOWS_BYTES} (5 MB).",
            "too_large",
        )
    credentials_bytes = _canonical(credentials, "credentials")
    clean_env = _clean_env(env)
    clean_settings = _clean_settings(runner_settings)
    _canonical(clean_settings, "runner_settings")
    refs = _clean_model_refs(model_refs)
    if parent is not None and parent.application_id != application.pk:
        raise _invalid("parent", "The parent snapshot belongs to another application.")
    # The validator sees credentials inline, as the runner will after unsealing them.
    problems = flows_validate(
        [
            {**node, "credentials": credentials[str(node.get("id"))]}
            if isinstance(node, Mapping) and str(node.get("id")) in credentials
            else node
            for node in nodes
        ]
    )
    if not flows_valid(problems):
        raise FlowsRejected(problems)
    team = application.team
    refs, models = _resolve_models(team, refs, nodes)
    fields = credential_fields(credentials)
    team_key = keys.team_key(team) if credentials else None
    sealed = b""
    if team_key is not None:
        sealed = keys.seal(
            credentials_bytes,
            key=keys.data_key(team_key),
            team_id=team.pk,
            purpose=keys.CREDENTIALS_PURPOSE,
        )
    user = principal.user
    snapshot = Snapshot(
        team=team,
        application=application,
        name=clean_name,
        description=clean_description,
        author=user if user is not None and user.is_authenticated else None,
        author_label="" if user is not None else principal.label,
        parent=parent,
        flows=json.loads(flows_bytes),
        credentials_sealed=sealed,
        credentials_key=team_key,
        env=clean_env,
        runner_settings=clean_settings,
        model_refs=refs,
        digest=snapshot_digest(
            flows=nodes,
            env=clean_env,
            runner_settings=clean_settings,
            model_refs=refs,
            fields=fields,
        ),
    )
    with transaction.atomic():
        snapshot.save()
        SnapshotModel.objects.bulk_create(
            SnapshotModel(snapshot=snapshot, artifact=artifact) for artifact in models
        )
        audit_record(
            event="team.snapshot.created",
            principal=principal,
            team=team,
            application=application,
            target=snapshot,
            after=snapshot_summary(snapshot, fields),
        )
        broadcast_team_event(
            team.pk,
            "snapshot.created",
            snapshot_summary(snapshot, fields),
            permission="flow:read",
            application_id=application.pk,
        )
    return snapshot


def snapshot_summary(
    snapshot: Snapshot, fields: Mapping[str, list[str]] | None = None
) -> dict[str, Any]:
    """What audit rows and team events say about a snapshot (no credential values)."""
    if fields is None:
        fields = snapshot_credential_fields(snapshot)
    return {
        "id": snapshot.pk,
        "name": snapshot.name,
        "application": snapshot.application_id,
        "digest": snapshot.digest,
        "nodes": len(snapshot.flows),
        "sealed_nodes": len(fields),
    }


def snapshot_credential_fields(snapshot: Snapshot) -> dict[str, list[str]]:
    """The credential field names per node id. They are stored only inside the sealed value,
    so this opens it and keeps the names alone."""
    if not snapshot.credentials_sealed:
        return {}
    return credential_fields(snapshot_credentials(snapshot))


def snapshot_delete(*, principal: Principal, snapshot: Snapshot) -> None:
    """Delete a snapshot no device target references (409 otherwise); audited."""
    principal.require_writable("delete snapshots")
    in_use = Conflict(
        "This snapshot is a device's target; assign another snapshot before deleting it.",
        code="snapshot_in_use",
    )
    with transaction.atomic():
        if snapshot.device_targets.exists():
            raise in_use
        audit_record(
            event="team.snapshot.deleted",
            principal=principal,
            team=snapshot.team,
            application=snapshot.application,
            target=snapshot,
            before=snapshot_summary(snapshot),
        )
        try:
            with transaction.atomic():
                snapshot.delete()
        except ProtectedError:
            raise in_use from None


def snapshot_parts(snapshot: Snapshot, *, env: Mapping[str, str] | None = None) -> dict[str, bytes]:
    """The canonical bytes a device receives (credentials are sealed per device elsewhere).
    ``env``: the variables of the settings part when not the snapshot's own (a device's target
    carries the snapshot's overlaid with its groups' and its own)."""
    runner = {k: v for k, v in snapshot.runner_settings.items() if k != "health"}
    return {
        manifest.FLOWS_PART: manifest.canonical_json(snapshot.flows),
        manifest.SETTINGS_PART: manifest.canonical_json(
            {
                "env": snapshot.env if env is None else dict(env),
                "runner": runner,
                "health": snapshot.runner_settings.get("health", {}),
            }
        ),
    }


def snapshot_models(snapshot: Snapshot) -> dict[str, ModelArtifact]:
    """The models a device receives with ``snapshot``, by part name (``models/<sha>.onnx``)."""
    return {
        manifest.model_part(artifact.sha256): artifact
        for artifact in selectors.snapshot_model_list(snapshot=snapshot)
    }


def snapshot_credentials(snapshot: Snapshot) -> dict[str, dict[str, Any]]:
    """The plaintext credentials per node id. Internal use only (sealing to a device): never
    log, audit, render or answer them. A tampered value raises ``keys.KeyIntegrityError``."""
    if not snapshot.credentials_sealed:
        return {}
    key = snapshot.credentials_key
    if key is None or key.team_id != snapshot.team_id:
        raise keys.KeyIntegrityError(f"snapshot {snapshot.pk} has no usable credentials key")
    plaintext = keys.unseal(
        bytes(snapshot.credentials_sealed),
        key=keys.data_key(key),
        team_id=snapshot.team_id,
        purpose=keys.CREDENTIALS_PURPOSE,
    )
    value: dict[str, dict[str, Any]] = json.loads(plaintext)
    return value


# ---------------------------------------------------------------------- signing
def _listed_keys(team: Team) -> list[TeamKey]:
    """Active key first, then retired keys still used by a device's target (newest first).

    A retired key stays listed until no device's active or pending target was signed with it
    (docs/device-protocol.md, key rotation)."""
    active = keys.team_key(team)
    retired = list(TeamKey.objects.filter(team=team, retired_at__isnull=False).order_by("-id"))
    if not retired:
        return [active]
    device_model = django_apps.get_model("devices", "Device")
    retired_ids = [key.key_id for key in retired]
    in_use: set[str] = set()
    devices = device_model.objects.filter(team=team, decommissioned_at__isnull=True)
    for field in ("active_target", "target"):
        in_use.update(
            devices.filter(Q(**{f"{field}__envelope__key_id__in": retired_ids})).values_list(
                f"{field}__envelope__key_id", flat=True
            )
        )
    still = [key for key in retired if key.key_id in in_use]
    return [active, *still][:MAX_LISTED_KEYS]


def team_signing_keys(team: Team) -> list[bytes]:
    """Public keys devices should trust, the active one first."""
    return [bytes(key.signing_public) for key in _listed_keys(team)]


# Every link's ``welcome`` carries the signed key list: made once per team and signer, then
# reused for KEY_LIST_TTL seconds (a rotation in this process clears it at once; other processes
# pick it up within the TTL, and a device verifies every target against its pinned keys anyway).
KEY_LIST_TTL = 30.0
_key_lists: dict[tuple[int, str | None], tuple[float, dict[str, Any]]] = {}


def signed_key_list(team: Team, *, signer_key_id: str | None = None) -> dict[str, Any]:
    """``manifest.sign_keys`` of the listed keys. Signed by the active key, or by
    ``signer_key_id`` when given and still a key of the team: after a rotation a device trusts
    only the old key, so the link signs its list with the key of the device's active target."""
    cache_key = (team.pk, signer_key_id)
    cached = _key_lists.get(cache_key)
    if cached is not None and time.monotonic() - cached[0] < KEY_LIST_TTL:
        return cached[1]
    document = _sign_key_list(team, signer_key_id)
    _key_lists[cache_key] = (time.monotonic(), document)
    return document


def _sign_key_list(team: Team, signer_key_id: str | None) -> dict[str, Any]:
    listed = _listed_keys(team)
    signer = listed[0]
    if signer_key_id is not None:
        signer = TeamKey.objects.filter(team=team, key_id=signer_key_id).first() or signer
    return manifest.sign_keys(
        private_key=keys.signing_private_key(signer),
        team=str(team.pk),
        keys=[bytes(key.signing_public) for key in listed],
    )


def sign_target(
    *,
    team: Team,
    device_id: str,
    snapshot: Snapshot,
    generation: int,
    parts_table: Mapping[str, Mapping[str, Any]],
) -> dict[str, Any]:
    """The signed envelope of one target, with the team's active key."""
    if snapshot.team_id != team.pk:
        raise ValueError("the snapshot belongs to another team")
    issued = datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    return manifest.sign(
        private_key=keys.signing_private_key(keys.team_key(team)),
        team=str(team.pk),
        device=device_id,
        snapshot=str(snapshot.pk),
        generation=generation,
        issued_at=issued,
        name=snapshot.name,
        parts=parts_table,
    )


def next_generation(team: Team) -> int:
    """The team's next target generation (strictly increasing). Call inside a transaction: the
    row lock is held until it ends, so targets are issued in generation order."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("next_generation() must run inside transaction.atomic()")
    rows = TeamGeneration.objects.select_for_update()
    row = rows.filter(team=team).first()
    if row is None:
        # Two first targets racing: ON CONFLICT DO NOTHING waits for the other insert.
        TeamGeneration.objects.bulk_create([TeamGeneration(team=team)], ignore_conflicts=True)
        row = rows.get(team=team)
    row.value += 1
    row.save(update_fields=["value"])
    return int(row.value)


def team_key_rotate(*, principal: Principal, team: Team) -> TeamKey:
    """Retire the team's active key and make a new one (``team.key.rotated``): new targets
    are signed with the new key; the old one stays to verify what it signed."""
    principal.require_writable("rotate signing keys")
    with transaction.atomic():
        Team.objects.select_for_update().filter(pk=team.pk).first()
        old, new = keys.rotate_team_key(team)
        _key_lists.clear()
        audit_record(
            event="team.key.rotated",
            principal=principal,
            team=team,
            target=new,
            # Key ids under words the audit scrubber leaves readable (it hides any "key").
            before={"active": old.key_id} if old is not None else None,
            after={"active": new.key_id, "retired": old.key_id if old is not None else None},
        )
    return new
