"""Pool configs: the YAML file that lists a live pool's models (endpoint, key variable, prices, tier), read and
validated into `ModelSpec`s by `load_pool_config`; `ConfigError` names the file, entry and field of every problem.

    python -m xrouter_lite example-pool --out pool.yaml   # the shipped example; keep the models you have keys for
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Callable

from xrouter_lite.pool.core import TIERS, ModelSpec


class ConfigError(ValueError):
    """An invalid pool config; the message names the file, entry index and field of every problem."""


def _is_text(v) -> bool:
    return isinstance(v, str) and v.strip() != ""


def _is_price(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0


_FIELDS: dict[str, tuple[Callable[[object], bool], str]] = {  # field -> (check, what it must be)
    "id": (_is_text, "a non-empty string (the model id routers and tables use)"),
    "provider": (_is_text, "a non-empty string, e.g. openai, openrouter, together, vllm"),
    "base_url": (lambda v: isinstance(v, str) and re.fullmatch(r"https?://\S+", v) is not None,
                 "an http(s):// URL of an OpenAI-compatible API, e.g. https://api.openai.com/v1"),
    "api_key_env": (lambda v: v is None or (isinstance(v, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", v) is not None),
                    "the NAME of an environment variable holding the key (null for a local server without auth)"),
    "model_name": (_is_text, "a non-empty string (the provider's name for the model)"),
    "price_in": (_is_price, "a number >= 0 (USD per 1M input tokens)"),
    "price_out": (_is_price, "a number >= 0 (USD per 1M output tokens)"),
    "tier": (lambda v: v in TIERS, f"one of {', '.join(TIERS)}"),
    "context": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0, "a positive integer (tokens)"),
}
_OPTIONAL = {"description": (lambda v: isinstance(v, str), "a string")}


def _entry_errors(entry: object, where: str) -> list[str]:
    """Every problem of one config entry, each naming the entry and field."""
    if not isinstance(entry, dict):
        return [f"{where}: expected a mapping of fields, got {type(entry).__name__}"]
    errors = [f"{where}: missing field {f!r} ({what})" for f, (_, what) in _FIELDS.items() if f not in entry]
    for f, v in entry.items():
        check = _FIELDS.get(f) or _OPTIONAL.get(f)
        if check is None:
            errors.append(f"{where}: unknown field {f!r} (allowed: {', '.join([*_FIELDS, *_OPTIONAL])})")
        elif not check[0](v):
            # never echo api_key_env's value: a common mistake is pasting the key itself there
            shown = "a value that is not a variable name (not shown: it may be a secret)" if f == "api_key_env" else repr(v)
            errors.append(f"{where}: field {f!r} must be {check[1]}; got {shown}")
    return errors


def load_pool_config(path: str | os.PathLike) -> list[ModelSpec]:
    """Read and validate a YAML pool config (a list of models, or a mapping with `models:`)."""
    import yaml

    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: pool config not found") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    entries = doc.get("models") if isinstance(doc, dict) else doc
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{path}: expected a non-empty list of models (top-level `models:`), got {type(entries).__name__}")
    errors, seen = [], {}
    for i, entry in enumerate(entries):
        where = f"{path}: models[{i}]" + (f" ({entry['id']})" if isinstance(entry, dict) and _is_text(entry.get("id")) else "")
        errors += _entry_errors(entry, where)
        if isinstance(entry, dict) and _is_text(entry.get("id")):
            if entry["id"] in seen:
                errors.append(f"{where}: field 'id' duplicates models[{seen[entry['id']]}]")
            seen.setdefault(entry["id"], i)
    if errors:
        raise ConfigError(f"invalid pool config ({len(errors)} problem{'s' * (len(errors) > 1)}):\n  " + "\n  ".join(errors))
    return [ModelSpec(**entry) for entry in entries]
