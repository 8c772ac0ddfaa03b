"""The Kubernetes side of a real target, one module per job, all through the official `kubernetes` client.

- `client`: API clients (kubeconfig or in-cluster), retries, the real clock and the pod watch that wakes it;
- `workloads`: the platform's workloads and pods observed into the model, and the engine's actions on them;
- `lease`: the environment's lease, and the ConfigMap of run requests and restart budgets;
- `audit`: the append-only audit trail in ConfigMaps;
- `status`: the run's status ConfigMap and its Events;
- `target`: all of the above composed with a data plane into the engine's `Target`;
- `nodes`: Kubernetes itself (nodes, their pods and PDBs, the control plane) and the node actions of a roll;
- `certs`: the platform's Secrets and a certificate rotation's progress record.
Import names from the module that defines them; this package re-exports nothing.
"""
