"""`GET /v1/models` lists between the OpenAI and Anthropic shapes.

OpenAI: {"object": "list", "data": [{"id", "object": "model", "created", "owned_by"}]}
(created: Unix seconds). Anthropic: {"data": [{"type": "model", "id", "display_name",
"created_at"}], "has_more", "first_id", "last_id"} (created_at: RFC 3339).

With a model map (client name -> upstream name), each upstream model is listed under the
client names that map to it (sorted), then under its own id, which also works because
names not in the map pass unchanged. An OpenAI list has no pagination: an Anthropic
upstream's `has_more` page is translated as it is (ask upstream for a large `limit`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

_EPOCH = "1970-01-01T00:00:00Z"


def openai_models_to_anthropic(
    body: Mapping[str, Any], model_map: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """An OpenAI model list as an Anthropic model list."""
    data = []
    for model in _items(body):
        created = model.get("created")
        created_at = _EPOCH
        if isinstance(created, int) and not isinstance(created, bool):
            created_at = datetime.fromtimestamp(created, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        for name in _names(model["id"], model_map):
            data.append({"type": "model", "id": name, "display_name": name,
                         "created_at": created_at})
    return {
        "data": data,
        "has_more": False,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
    }


def anthropic_models_to_openai(
    body: Mapping[str, Any], model_map: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """An Anthropic model list as an OpenAI model list (owned_by "anthropic")."""
    data = []
    for model in _items(body):
        created = 0
        if isinstance(model.get("created_at"), str):
            try:
                created = int(datetime.fromisoformat(model["created_at"]).timestamp())
            except ValueError:
                created = 0
        for name in _names(model["id"], model_map):
            data.append({"id": name, "object": "model", "created": created,
                         "owned_by": "anthropic"})
    return {"object": "list", "data": data}


def _items(body: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    data = body.get("data")
    if not isinstance(data, list):
        return []
    return [m for m in data if isinstance(m, Mapping) and isinstance(m.get("id"), str)]


def _names(upstream_id: str, model_map: Mapping[str, str] | None) -> list[str]:
    aliases = sorted(k for k, v in (model_map or {}).items() if v == upstream_id)
    return [*aliases, upstream_id] if upstream_id not in aliases else aliases
