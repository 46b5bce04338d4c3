"""What never leaves a run in the clear: values under secret-looking keys and passwords in URLs,
in the run directory's recipe.toml and environment.json, in W&B's config and in ``reasonlab show``."""

from __future__ import annotations

import re

REDACTED = "***redacted***"
# *_key, token / *_token / token_*, *secret*, password/passwd, authorization, credentials. "*_env" names a
# variable, not a value, and plural "tokens" is a count (max_completion_tokens), never a secret.
_SECRET_KEY = re.compile(r"((^|_)key$|api_?key|(^|_)token($|_)|secret|passw(or)?d|authori[sz]ation|credential)",
                         re.IGNORECASE)
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^/@:\s]*):(?P<password>[^/@\s]+)@",
                              re.IGNORECASE)


def redact(value):
    """Replace the values of secret-looking keys (api_key, token, ...) in nested data and k=v strings."""
    if isinstance(value, dict):
        return {k: REDACTED if _SECRET_KEY.search(str(k)) and not str(k).endswith("_env") else redact(v)
                for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    if isinstance(value, str):
        value = _URL_CREDENTIALS.sub(lambda m: f"{m['scheme']}{m['user']}:{REDACTED}@", value)
        key, eq, _ = value.partition("=")
        if eq and _SECRET_KEY.search(key) and not key.endswith("_env"):
            return f"{key}={REDACTED}"
    return value


def secret_values(value) -> set[str]:
    """The values stored under secret-looking keys, to scrub from anything else we record."""
    found: set[str] = set()
    if isinstance(value, dict):
        for k, v in value.items():
            if _SECRET_KEY.search(str(k)) and not str(k).endswith("_env") and isinstance(v, str) and v:
                found.add(v)
            else:
                found |= secret_values(v)
    elif isinstance(value, list):
        for v in value:
            found |= secret_values(v)
    return found
