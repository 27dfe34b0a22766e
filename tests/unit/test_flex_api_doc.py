"""docs/FLEX_API.md tells integrators to check their webhook code against Flex's published
test vector: the values printed there must really recompute, byte for byte."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "FLEX_API.md"


def vector() -> dict[str, str]:
    rows = re.findall(r"^\| (?:→ )?([a-z ]+) \| `(.+)` \|$", DOC.read_text(), re.MULTILINE)
    return dict(rows)


def test_the_documented_webhook_test_vector_recomputes():
    v = vector()
    content_hash = base64.b64encode(hashlib.sha512(v["body"].encode()).digest()).decode()
    message = f"POST\n{v['nonce']};{v['date']};{v['host']};{content_hash}"
    signature = hmac.new(base64.b64decode(v["subscriber key"]), message.encode(),
                         hashlib.sha512).digest()
    assert content_hash == v["content hash"]
    assert base64.b64encode(signature).decode() == v["signature"]
