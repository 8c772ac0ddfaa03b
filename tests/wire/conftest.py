"""A single-node Kafka + Elasticsearch peer (noida-db) per test module (it starts in ~0.1 s), so modules never see
each other's topics, groups or load; stopped by pid at the end."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from toolkit.targets.peer import Peer, PeerUnavailable, running_peer


@pytest.fixture(scope="module")
def peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Peer]:
    try:
        with running_peer(tmp_path_factory.mktemp("noida")) as started:
            yield started
    except PeerUnavailable as exc:
        pytest.skip(str(exc))
