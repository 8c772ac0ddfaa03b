"""The `local` target: a real Kubernetes v1.20.2 control plane on loopback, a node agent instead of kubelets.

`up(state_dir) -> LocalCluster`, `down(state_dir)` and `status(state_dir)` are what `cluster up|down|status
--env local` calls; `ControlPlane`, `nodeagent.NodeAgent` and `peeroperator.PeerOperator` (the Kafka and
Elasticsearch of every platform namespace) are the parts, for tests that need finer control.
Binaries come from scripts/local-control-plane.sh (built once, cached under ~/.cache/toolkit). Importing this
package does not import the kubernetes client (only `nodeagent` and a running `PeerOperator` do).
"""

from toolkit.targets.local.cluster import EnvironmentStatus, down, status, up
from toolkit.targets.local.controlplane import (
    ClusterStatus,
    ControlPlane,
    ControlPlaneError,
    LocalCluster,
    MissingBinariesError,
    default_state_dir,
    missing_binaries,
)

__all__ = [
    "ClusterStatus",
    "ControlPlane",
    "ControlPlaneError",
    "EnvironmentStatus",
    "LocalCluster",
    "MissingBinariesError",
    "default_state_dir",
    "down",
    "missing_binaries",
    "status",
    "up",
]
