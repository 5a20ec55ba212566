"""Environment overrides of the settings: they reach every key. Sections are
``GATEWAY_DATABASE__URL``, ``GATEWAY_SMTP__PASSWORD``, ...; mailboxes are addressed by name or
position: ``GATEWAY_MAILBOXES__CARE__PASSWORD`` or ``GATEWAY_MAILBOXES__0__PASSWORD``. A value
that starts with ``[`` or ``{`` is read as JSON (``GATEWAY_REFERENCE__OLD_SECRETS='["k1"]'``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from gateway.errors import ConfigError

ENV_PREFIX = "GATEWAY_"
CONFIG_ENV = "GATEWAY_CONFIG"


def apply_environment(data: dict[str, Any], env: Mapping[str, str]) -> None:
    """Put every ``GATEWAY_<SECTION>__<KEY>`` of ``env`` into the settings' raw ``data``."""
    for name, raw in sorted(env.items()):
        if not name.startswith(ENV_PREFIX) or name == CONFIG_ENV or "__" not in name:
            continue
        parts = [p.lower() for p in name[len(ENV_PREFIX):].split("__")]
        value: Any = _env_value(raw)
        if parts[0] == "mailboxes" and len(parts) == 3:
            _set_mailbox_key(data, parts[1], parts[2], value, name)
        elif len(parts) == 2:
            section = data.setdefault(parts[0], {})
            if not isinstance(section, dict):
                raise ConfigError(parts[0], f"is not a table, cannot apply {name}")
            section[parts[1]] = value
        else:
            raise ConfigError(name, "environment override must be GATEWAY_<SECTION>__<KEY>")


def _set_mailbox_key(data: dict[str, Any], which: str, key: str, value: Any, name: str) -> None:
    boxes = data.setdefault("mailboxes", [])
    if which.isdigit() and int(which) < len(boxes):
        boxes[int(which)][key] = value
        return
    for box in boxes:
        if str(box.get("name", "")).lower() == which:
            box[key] = value
            return
    raise ConfigError(name, f"no mailbox named or numbered {which!r} in the config file")


def _env_value(raw: str) -> Any:
    if raw[:1] in "[{":
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            return raw
    return raw
