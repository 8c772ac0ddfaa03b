"""What the program declared, as plain data, and the look-ups rules need over it.

A `DeclaredResource` is one resource registration as the engine would receive it: its type token, logical
name, the id it was given, its resolved inputs (camelCase keys, as on the wire), the id of the provider that
manages it, whether it is protected, and the ARN it was given (when the capture knows one). References between
resources are ids or ARNs inside inputs, so the graph resolves them by id (`by_id`), by ARN (`by_arn`) and by
what points at what (`referring`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class DeclaredResource:
    type: str
    name: str
    id: str
    inputs: Mapping[str, Any] = field(default_factory=dict)
    provider_id: str | None = None
    protect: bool = False
    arn: str | None = None

    @property
    def label(self) -> str:
        return f"{self.type} {self.name!r}"

    @property
    def tags(self) -> Mapping[str, Any]:
        tags = self.inputs.get("tags")
        return tags if isinstance(tags, Mapping) else {}


class ResourceGraph:
    def __init__(self, resources: Iterable[DeclaredResource]) -> None:
        self.resources = list(resources)
        self._by_id = {r.id: r for r in self.resources}
        self._by_arn = {r.arn: r for r in self.resources if r.arn}

    def __iter__(self) -> Iterator[DeclaredResource]:
        return iter(self.resources)

    def of_type(self, *types: str) -> list[DeclaredResource]:
        return [r for r in self.resources if r.type in types]

    def by_id(self, resource_id: Any) -> DeclaredResource | None:
        return self._by_id.get(resource_id) if isinstance(resource_id, str) else None

    def by_arn(self, arn: Any) -> DeclaredResource | None:
        return self._by_arn.get(arn) if isinstance(arn, str) else None

    def referring(self, resource_type: str, input_name: str, target_id: str) -> list[DeclaredResource]:
        """Resources of `resource_type` whose input `input_name` is (or contains) `target_id`."""
        found = []
        for resource in self.of_type(resource_type):
            value = resource.inputs.get(input_name)
            if value == target_id or (isinstance(value, list) and target_id in value):
                found.append(resource)
        return found

    def provider_of(self, resource: DeclaredResource) -> DeclaredResource | None:
        return self.by_id(resource.provider_id)
