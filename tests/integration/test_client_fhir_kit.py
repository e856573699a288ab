"""Node's fhir-kit-client, unchanged, against a real ``dmp serve`` (tests/node/fhir_kit_scenario.mjs).

search and ``nextPage`` to the end, POST ``_search``, read, vread, an ITI-65 transaction, a JSON
Patch, and an unknown read answered by an OperationOutcome. Skipped where Node or the package is
missing (``scripts/test`` installs it with ``npm ci``), except under CI=true where it fails.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from helpers import one_doc_bundle

from conftest import LiveRecord

NODE_DIR = Path(__file__).parent.parent / "node"


def _node() -> str:
    node = shutil.which("node")
    missing = (
        "Node.js est absent" if node is None
        else "fhir-kit-client n'est pas installé (npm ci dans tests/node)"
        if not (NODE_DIR / "node_modules" / "fhir-kit-client").is_dir() else None
    )
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(missing)
        pytest.skip(missing)
    assert node is not None
    return node


def test_fhir_kit_client_scenario(live: Any, live_record: LiveRecord, tmp_path: Path) -> None:
    node = _node()
    bundle, _ = one_doc_bundle(live_record.ident)
    (tmp_path / "bundle.json").write_text(json.dumps(bundle))
    env = {
        **os.environ,
        "DMP_FHIR": live.fhir,
        "DMP_TOKEN": live.token,
        "DMP_IDENTIFIER": live_record.identifier,
        "DMP_BUNDLE_FILE": str(tmp_path / "bundle.json"),
    }
    run = subprocess.run(  # noqa: S603 (our own script)
        [node, str(NODE_DIR / "fhir_kit_scenario.mjs")], env=env, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["total"] == 5
    assert report["pageSizes"] == [2, 2, 1]  # nextPage stops when the server gives no `next`
    assert len(set(report["ids"])) == 5
    assert report["postedTotal"] == 5
    assert report["readId"] == report["ids"][0]
    assert report["vreadSameDocument"] is True
    assert report["transactionType"] == "transaction-response"
    assert report["transactionStatuses"] and all(s.startswith("201") for s in report["transactionStatuses"])
    assert report["patchedStatus"] == "entered-in-error"
    assert report["patchedVersion"] == "2"
    assert report["unknown"] == {"status": 404, "type": "OperationOutcome"}
