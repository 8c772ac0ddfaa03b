"""The version catalog: components, their versions and images, upgrade rules and upgrade order.

`catalog.yaml` beside this module is the single source of every version and image the toolkit knows.
`load()` validates it once and caches it; callers get plain, frozen data.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from toolkit.errors import UsageError

CATALOG_FILE = Path(__file__).with_name("catalog.yaml")
COMPONENTS = ("kafka", "elasticsearch", "workers")
TOOLKIT_IMAGE_UID = 10001  # the user of the toolkit's own images (Dockerfile `useradd --uid`)


def parse_version(text: str) -> tuple[int, int, int]:
    """'8.19.3' -> (8, 19, 3); a Kubernetes minor '1.34' -> (1, 34, 0). Raises ValueError naming the text when it is
    neither MAJOR.MINOR.PATCH nor MAJOR.MINOR."""
    parts = text.strip().split(".")
    if len(parts) not in (2, 3) or not all(p.isdigit() for p in parts):
        raise ValueError(
            f"version {text!r} is not of the form MAJOR.MINOR.PATCH (e.g. 8.19.3) or MAJOR.MINOR (a Kubernetes minor, "
            "e.g. 1.34)"
        )
    major, minor, patch = (int(p) for p in [*parts, "0"][:3])
    return major, minor, patch


def repository_of(image: str) -> str:
    """'docker.io/apache/kafka:4.1.0@sha256:...' -> 'docker.io/apache/kafka' (a registry port is not a tag)."""
    name = image.split("@", 1)[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    return name[:colon] if colon > slash else name


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class VersionInfo(_Frozen):
    metadata_version: str | None = None
    # Kafka's feature level of that metadata.version (MetadataVersion.featureLevel: what UpdateFeatures and
    # ApiVersions carry on the wire; the release string is what people and kafka-features.sh say)
    metadata_level: int | None = None
    kraft: bool = True
    # The image's content digest (`sha256:<64 hex>`, from the registry: `crane digest IMAGE:TAG`, `docker buildx
    # imagetools inspect`): when present, every chart pulls the image by digest (the tag stays for people).
    digest: str | None = Field(None, pattern=r"^sha256:[0-9a-f]{64}$")
    # Kubernetes: how many minors a kubelet may be older than the control plane at this version (the skew policy)
    kubelet_skew: int | None = None
    # Kubernetes: the EKS add-on version this minor gets (None: not confirmed, the add-on is left as it runs)
    addons: dict[str, str | None] = Field(default_factory=dict)


class UpgradeRules(_Frozen):
    # "4": "3.3.0" -> reaching major 4 needs a source of at least 3.3.0
    min_source_for_major: dict[str, str] = Field(default_factory=dict)
    # "9.1": "8.19.0" -> reaching 9.1.x needs a source of at least 8.19.0
    min_source_for_minor: dict[str, str] = Field(default_factory=dict)
    # at most this many minors per upgrade (Kubernetes' control plane: 1), None = no such limit
    max_minor_step: int | None = None


class ComponentSpec(_Frozen):
    chart: str = ""  # "" = not deployed by the toolkit (Kubernetes itself)
    image: str = ""
    default: str
    rules: UpgradeRules = Field(default_factory=UpgradeRules)
    versions: dict[str, VersionInfo]

    @field_validator("versions")
    @classmethod
    def _versions_parse(cls, value: dict[str, VersionInfo]) -> dict[str, VersionInfo]:
        for v in value:
            parse_version(v)
        return value

    def image_ref(self, version: str) -> str:
        digest = self.versions[version].digest if version in self.versions else None
        return f"{self.image}:{version}" + (f"@{digest}" if digest else "")

    def image_values(self, version: str) -> dict[str, str]:
        """The chart values of this component's image at `version` (repository, tag, digest when known)."""
        info = self.versions[version]
        return {"repository": self.image, "tag": version, "digest": info.digest or ""}

    def sorted_versions(self) -> list[str]:
        return sorted(self.versions, key=parse_version)


class Catalog(_Frozen):
    schema_version: int
    upgrade_order: tuple[str, ...]
    orchestrator_image: str
    components: dict[str, ComponentSpec]

    def orchestrator_ref(self) -> str:
        """The toolkit's own image at the installed toolkit's version (what `toolkit upgrade job` runs)."""
        from importlib.metadata import version

        return f"{self.orchestrator_image}:{version('toolkit')}"

    def component(self, name: str) -> ComponentSpec:
        try:
            return self.components[name]
        except KeyError:
            known = ", ".join(self.components)
            raise UnknownComponentError(
                f"unknown component {name!r}: the catalog knows {known} (toolkit/catalog/catalog.yaml)"
            ) from None

    def metadata_levels(self) -> dict[str, int]:
        """Kafka's metadata.version releases the catalog knows -> their feature levels."""
        return {
            info.metadata_version: info.metadata_level
            for info in self.component("kafka").versions.values()
            if info.metadata_version and info.metadata_level is not None
        }

    def has_version(self, component: str, version: str) -> bool:
        return version in self.component(component).versions

    def charted(self) -> tuple[str, ...]:
        """Components the toolkit deploys with a chart, in upgrade order (Kubernetes itself has none)."""
        return tuple(c for c in self.upgrade_order if self.components[c].chart)


class UnknownComponentError(UsageError):
    """A component name the catalog does not know."""


@cache
def load(path: Path = CATALOG_FILE) -> Catalog:
    data = yaml.safe_load(path.read_text())
    catalog = Catalog.model_validate(data)
    missing = set(catalog.upgrade_order) ^ set(catalog.components)
    if missing:
        raise ValueError(f"catalog {path}: upgrade_order and components differ on {sorted(missing)}")
    for name, spec in catalog.components.items():
        if spec.default not in spec.versions:
            raise ValueError(f"catalog {path}: {name}.default {spec.default} is not one of its versions")
        for version, info in spec.versions.items():
            if info.kraft and info.metadata_version and info.metadata_level is None:
                raise ValueError(
                    f"catalog {path}: {name} {version} names metadata.version {info.metadata_version} without its "
                    "metadata_level (Kafka's MetadataVersion feature level, which the wire carries)"
                )
    return catalog
