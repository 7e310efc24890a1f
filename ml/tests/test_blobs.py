"""join_uri: folder URIs end with "/", file URIs never do (docs/architecture.md "Blob URIs").

The cases are shared with the TypeScript joinUri (test/api/fixtures/join_uri_cases.json; the
TypeScript test also runs this function on them and compares).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from medloop_ml.blobs import BlobUriError, join_uri, uri_to_path

CASES = json.loads(
    (Path(__file__).resolve().parents[2] / "test/api/fixtures/join_uri_cases.json").read_text()
)["cases"]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c['folder']}+{c['name']}")
def test_join_uri_cases(case: dict[str, str]) -> None:
    if "expected" in case:
        assert join_uri(case["folder"], case["name"]) == case["expected"]
    else:
        with pytest.raises(BlobUriError, match=re.escape(case["error"])):
            join_uri(case["folder"], case["name"])


def test_a_joined_uri_resolves_inside_the_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEDLOOP_BLOB_ROOT", str(tmp_path))
    folder = "blob://runs/3/round-2/model/"  # as workflows/campaign.ts writes out_prefix
    assert uri_to_path(join_uri(folder)) == tmp_path / "runs/3/round-2/model"
    assert uri_to_path(join_uri(folder, "best.pt")) == tmp_path / "runs/3/round-2/model/best.pt"
    assert uri_to_path(join_uri("file:///tmp/a b", "c d.png")) == Path("/tmp/a b/c d.png")
