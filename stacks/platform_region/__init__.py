"""The Pulumi program of one AWS region, as ComponentResources: Network, Keys, ClusterRoles, Cluster, Snapshots.

`program.declare_region(config)` declares everything for one validated `RegionConfig`; `stacks/__main__.py`
calls it for the stack being deployed, and `toolkit region check` calls it under Pulumi mocks.
"""
