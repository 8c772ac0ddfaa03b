"""The address plan never lets two regions' networks, or two subnets, overlap."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from toolkit.config.region import MAX_ZONES, SUPERNET, next_free_index, region_block, zone_subnets


@settings(max_examples=60, deadline=None)
@given(
    indices=st.lists(st.integers(min_value=0, max_value=255), min_size=20, max_size=20, unique=True),
    zone_counts=st.lists(st.integers(min_value=3, max_value=MAX_ZONES), min_size=20, max_size=20),
)
def test_twenty_regions_never_overlap(indices: list[int], zone_counts: list[int]) -> None:
    blocks = [region_block(i) for i in indices]
    subnets = []
    for index, block, zones in zip(indices, blocks, zone_counts, strict=True):
        assert block.subnet_of(SUPERNET)
        for plan in zone_subnets(index, zones):
            assert plan.private.subnet_of(block) and plan.public.subnet_of(block)
            subnets += [plan.private, plan.public]
    for a, b in itertools.combinations(blocks, 2):
        assert not a.overlaps(b)
    for a, b in itertools.combinations(subnets, 2):
        assert not a.overlaps(b)


@settings(max_examples=100, deadline=None)
@given(existing=st.sets(st.integers(min_value=0, max_value=255), max_size=40))
def test_next_free_index_allocates_twenty_distinct_blocks(existing: set[int]) -> None:
    used = set(existing)
    for _ in range(20):
        index = next_free_index(used)
        assert index not in used
        assert all(not region_block(index).overlaps(region_block(u)) for u in used)
        used.add(index)


def test_index_out_of_range_and_exhaustion_are_refused() -> None:
    with pytest.raises(ValueError, match=r"outside 0\.\.255"):
        region_block(256)
    with pytest.raises(ValueError, match="all 256 address blocks"):
        next_free_index(range(256))
    with pytest.raises(ValueError, match="zone count 7"):
        zone_subnets(0, 7)
