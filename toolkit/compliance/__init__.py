"""Compliance rules over what the Pulumi program declares: plain data in (`DeclaredResource`), violations out.

`resources.py` holds the data and the graph look-ups; `rules.py` the rules. Nothing here imports Pulumi: the
resources are captured by `toolkit.provision.pulumi.capture_region` and handed over as data.
"""

from toolkit.compliance.resources import DeclaredResource, ResourceGraph
from toolkit.compliance.rules import RULES, Violation, evaluate

__all__ = ["RULES", "DeclaredResource", "ResourceGraph", "Violation", "evaluate"]
