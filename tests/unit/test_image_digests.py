"""Images pinned by digest: the catalog carries `digest: sha256:<64 hex>` per version (refused otherwise, naming the
version), the charts then pull `repository:tag@digest` everywhere the image appears, and the Kubernetes adapter still
recognises the component's container in a pinned reference (a registry port is not a tag)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml

from toolkit import catalog
from toolkit.catalog import repository_of

DIGEST = "sha256:" + hashlib.sha256(b"an image manifest").hexdigest()


@pytest.mark.parametrize(
    ("image", "repository"),
    [
        ("docker.io/apache/kafka:4.1.0", "docker.io/apache/kafka"),
        (f"docker.io/apache/kafka:4.1.0@{DIGEST}", "docker.io/apache/kafka"),
        (f"registry.local:5000/toolkit-worker:0.2.0@{DIGEST}", "registry.local:5000/toolkit-worker"),
        ("registry.local:5000/toolkit-worker", "registry.local:5000/toolkit-worker"),
        ("toolkit-worker", "toolkit-worker"),
    ],
)
def test_repository_of_a_reference(image: str, repository: str) -> None:
    assert repository_of(image) == repository


def _catalog_with(tmp_path: Path, digest: str) -> Path:
    data = yaml.safe_load(catalog.CATALOG_FILE.read_text())
    data["components"]["workers"]["versions"]["0.2.0"]["digest"] = digest
    path = tmp_path / f"catalog-{hashlib.sha256(digest.encode()).hexdigest()[:8]}.yaml"  # load() caches by path
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_digest_pins_the_reference_and_a_malformed_one_is_refused(tmp_path: Path) -> None:
    pinned = catalog.load(_catalog_with(tmp_path, DIGEST)).component("workers")
    assert pinned.image_ref("0.2.0") == f"toolkit-worker:0.2.0@{DIGEST}"
    assert pinned.image_values("0.2.0") == {"repository": "toolkit-worker", "tag": "0.2.0", "digest": DIGEST}
    assert pinned.image_ref("0.1.0") == "toolkit-worker:0.1.0"  # no digest known: the tag alone
    with pytest.raises(ValueError, match="digest"):
        catalog.load(_catalog_with(tmp_path, "sha256:abc"))


def test_the_charts_pull_every_image_by_digest_when_the_catalog_has_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from toolkit.config.environments import resolve
    from toolkit.provision.deploy import render_platform

    data = yaml.safe_load(catalog.CATALOG_FILE.read_text())
    for component in data["components"].values():
        if "image" not in component:  # Kubernetes itself: no image the toolkit deploys
            continue
        for version, info in component["versions"].items():
            info["digest"] = "sha256:" + hashlib.sha256(f"{component['image']}:{version}".encode()).hexdigest()
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump(data))
    pinned = catalog.load(path)
    monkeypatch.setattr(catalog, "load", lambda path=path: pinned)
    rendered = render_platform(resolve("eu-west-1"), tmp_path / "render")
    images = []
    for manifest in (Path(f) for f in rendered.files if not f.endswith(".values.yaml")):
        for doc in yaml.safe_load_all(manifest.read_text()):
            template = ((doc or {}).get("spec") or {}).get("template") or {}
            pod = template.get("spec") or {}
            images += [c["image"] for c in pod.get("containers", []) + pod.get("initContainers", [])]
    assert images and all("@sha256:" in image for image in images), images
    for image in images:
        repository = repository_of(image)
        tag = image.split("@")[0].rsplit(":", 1)[1]
        expected = next(c for c in pinned.components.values() if c.image == repository).versions[tag].digest
        assert image.endswith(f"@{expected}")
