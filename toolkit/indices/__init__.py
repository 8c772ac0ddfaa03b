"""Index management logic, one owner: the template, the rollover policy and the shard-sizing plan (pure data
and arithmetic; `toolkit.targets.es_indices` applies it to a cluster, the indexer reads it back)."""

from toolkit.indices.sizing import IndexPlan, IndexPlanInputs, PlanRefused, plan_indices
from toolkit.indices.template import (
    DEFAULT_WRITE_ALIAS,
    IndexLayout,
    RolloverMode,
    RolloverPolicy,
    first_index_name,
    ilm_policy_body,
    index_template_body,
    policy_name,
    rollover_from_meta,
    template_name,
)

__all__ = [
    "DEFAULT_WRITE_ALIAS",
    "IndexLayout",
    "IndexPlan",
    "IndexPlanInputs",
    "PlanRefused",
    "RolloverMode",
    "RolloverPolicy",
    "first_index_name",
    "ilm_policy_body",
    "index_template_body",
    "plan_indices",
    "policy_name",
    "rollover_from_meta",
    "template_name",
]
