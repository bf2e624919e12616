"""The secret search (tests/support/secrets.py) finds a secret literal, in base64 at any alignment inside longer base64
text (a Docker ``auth`` of ``user:password``), and URL-encoded; it reports names, never values."""

from __future__ import annotations

import base64
import json
import urllib.parse

import pytest

from ansible_collections.dockhand.registry.tests.support.secrets import find, forms

SECRET = "s3cret/pa ss+wörd"


@pytest.mark.parametrize("prefix", ["", "a", "ab", "alice:", "bob:", "user-name:"])
def test_base64_inside_a_longer_base64_text_is_found_at_every_alignment(prefix):
    auth = base64.b64encode((prefix + SECRET + "@tail").encode()).decode()
    log = json.dumps({"auths": {"registry:5000": {"auth": auth}}})
    assert find({"pw": SECRET}, log), (prefix, auth)


@pytest.mark.parametrize("encode", [lambda v: urllib.parse.quote(v, safe=""), urllib.parse.quote_plus, lambda v: v])
def test_url_encoded_and_literal_forms_are_found(encode):
    assert find({"pw": SECRET}, "GET https://host/v2/?token=%s HTTP/1.1" % encode(SECRET))


def test_reports_names_never_values_and_no_false_alarm():
    found = find({"registry password": SECRET, "empty": ""}, "user:" + SECRET)
    assert found == ["registry password (literal)"]
    assert SECRET not in " ".join(found)
    assert find({"pw": SECRET}, base64.b64encode(b"something else entirely, long enough").decode()) == []
    assert set(forms("plain")) == {"literal", "base64#0", "base64#1", "base64#2"}
