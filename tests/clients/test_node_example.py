"""docs/clients.md's Node example, run word for word with the machine's `node` against a real Herald."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from notifications import proofs
from notifications.models import Message
from tests.conftest import Org
from tests.servers import HeraldServer

DOC = Path(__file__).resolve().parents[2] / "docs" / "clients.md"


def _node_example() -> str:
    blocks = re.findall(r"```js\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    assert len(blocks) == 1, "docs/clients.md should hold exactly one Node (```js) example"
    return str(blocks[0])


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not on PATH (.ci/run installs Node.js)")
def test_node_example_signs_like_herald_and_sends_once(acme: Org, herald_server: HeraldServer, tmp_path: Path) -> None:
    node = shutil.which("node")
    assert node is not None
    script = tmp_path / "send.mjs"
    script.write_text(_node_example())
    secret = proofs.signing_secrets_live(acme.organization.pk)[0]
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HERALD_URL": herald_server.url,
        "HERALD_SECRET_KEY": acme.secret_key,
        "HERALD_SIGNING_SECRET": secret,
    }
    run = subprocess.run([node, str(script)], env=env, capture_output=True, text=True, timeout=60, check=False)  # noqa: S603
    assert run.returncode == 0, run.stderr
    printed = json.loads(run.stdout.strip().splitlines()[-1])
    assert printed["hash"] == proofs.subscriber_hash(secret, "u_42")
    verified = proofs.subscriber_proof_verify(
        organization_id=acme.organization.pk, subscriber_id="u_42", token=printed["token"]
    )
    assert verified is not None and verified.expires_at is not None
    assert printed["sent"]["recipients"] == 1
    with acme.activate():
        assert [str(m.id) for m in Message.objects.all()] == [printed["sent"]["id"]]
        assert Message.objects.get().title == "Hello from Node"
