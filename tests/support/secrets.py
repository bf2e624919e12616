"""Search text (a ``-vvv`` log, a module result) for secrets in every form a leak takes: the literal value, base64 (also
inside a longer base64 text, as in a Docker ``auth`` of ``user:password``, at each of the three byte alignments) and
URL-encoding (``quote`` and ``quote_plus``). Standard library only; reports the secrets' names, never their values.
"""

from __future__ import annotations

import base64
import urllib.parse


def base64_cores(value: str) -> list[str]:
    """Substrings that every base64 text of data containing ``value`` holds, one per byte alignment (the characters
    that also depend on the neighbouring bytes are cut off)."""
    data = value.encode()
    cores = []
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + data).decode().rstrip("=")
        start = (offset * 4 + 2) // 3  # characters touched by the padding bytes in front
        usable = (offset + len(data)) * 4 // 3  # characters made only of whole 6-bit groups of the data
        core = encoded[start:usable]
        if len(core) >= 4:
            cores.append(core)
    return cores


def forms(value: str) -> dict[str, str]:
    """``{form name: text}`` of ``value``: literal, base64 (three alignments), URL-encoded; duplicates dropped."""
    found = {"literal": value}
    for number, core in enumerate(base64_cores(value)):
        found["base64#%d" % number] = core
    found["url-encoded"] = urllib.parse.quote(value, safe="")
    found["url-encoded+"] = urllib.parse.quote_plus(value)
    unique: dict[str, str] = {}
    for name, text in found.items():
        if text and (name == "literal" or text != value) and text not in unique.values():
            unique[name] = text
    return unique


def find(secrets: dict[str, str], text: str) -> list[str]:
    """``"<secret name> (<form>)"`` for each secret found in ``text`` in any form."""
    return ["%s (%s)" % (name, form) for name, value in secrets.items() if value for form, shown in forms(str(value)).items() if shown in text]
