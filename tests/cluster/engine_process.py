"""An orchestrator process for the cluster tier: the engine + a LocalTarget, run as its own OS process.

    python tests/cluster/engine_process.py --env NAME --to kafka=4.1.0 [--kill-after-restarts K]

With `--kill-after-restarts K` the process sends itself SIGKILL right after the K-th pod restart it issued (a
deterministic crash point: no cleanup, no lease release, exactly like a killed orchestrator). It prints the run's
result as one JSON line. Environment: TOOLKIT_ENVIRONMENTS_DIR / TOOLKIT_STATE_DIR name the environment and state.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys

from toolkit.catalog import load
from toolkit.config.environments import resolve
from toolkit.engine.executor import Executor
from toolkit.model import UpgradeSettings
from toolkit.operations import parse_component_versions
from toolkit.targets.real import open_real_target


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--env", required=True)
    parser.add_argument("--to", action="append", default=[])
    parser.add_argument("--kill-after-restarts", type=int, default=0)
    parser.add_argument("--poll", type=float, default=0.5)
    args = parser.parse_args()
    env = resolve(args.env)
    settings = UpgradeSettings(
        poll_interval=args.poll, confirm_seconds=1.0, step_timeout=30.0, gate_timeout=60.0, restart_budget=2
    )
    with open_real_target(env) as target:
        if args.kill_after_restarts:
            restart = target.workloads.restart_pod
            issued = [0]

            def restart_then_maybe_die(pod: str) -> None:
                restart(pod)
                issued[0] += 1
                if issued[0] >= args.kill_after_restarts:
                    print(json.dumps({"killed_after": pod}), flush=True)
                    os.kill(os.getpid(), signal.SIGKILL)

            target.workloads.restart_pod = restart_then_maybe_die  # type: ignore[method-assign]
        result = Executor(target, load(), parse_component_versions(args.to), settings).run()
    print(
        json.dumps(
            {
                "outcome": result.outcome,
                "reason": result.reason,
                "rule": result.rule,
                "simulated": result.simulated,
                "steps": [s.as_dict() for s in result.steps],
            }
        ),
        flush=True,
    )
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
