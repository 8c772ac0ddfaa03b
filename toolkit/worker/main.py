"""`toolkit-worker receiver|indexer [--config FILE]`: validate the configuration, then run one role.

Exit status: 0 after a clean stop (SIGTERM/SIGINT drained), 2 when the configuration is invalid (every problem
printed on stderr, nothing started), 1 when the role failed to start (for example a port already in use).
`--check-config` validates everything that can be checked without the network (files opened, secret files read),
prints the effective settings one `name=value` a line with every secret shown as `<hidden>`, and exits 0 (or 2).
"""

from __future__ import annotations

import argparse
import logging
import sys

from toolkit.worker.config import ConfigProblems, Role, load_config_from_process
from toolkit.worker.observability import configure_json_logging


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="toolkit-worker",
        description="Ingestion worker: syslog receiver (-> Kafka) or indexer (Kafka -> Elasticsearch). "
        "Settings come from TOOLKIT_WORKER_* variables over an optional YAML file.",
    )
    parser.add_argument("role", choices=("receiver", "indexer"))
    parser.add_argument("--config", help="YAML file of settings (or TOOLKIT_WORKER_CONFIG_FILE)")
    parser.add_argument(
        "--check-config",
        action="store_true",
        help="validate the configuration, print it (secrets hidden), exit",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    arguments = _parser().parse_args(argv)
    role: Role = arguments.role
    try:
        config = load_config_from_process(role, arguments.config)
    except ConfigProblems as problems:
        print(problems.render(), file=sys.stderr)
        return 2
    if arguments.check_config:
        # every file was opened and every secret file read by load_config; secrets are shown as <hidden>
        for name, value in config.shown().items():
            print(f"{name}={'' if value is None else value}")
        print(f"configuration valid for the {role}", file=sys.stderr)
        return 0
    configure_json_logging(config.log_level)
    try:
        if role == "receiver":
            from toolkit.worker.receiver import run_receiver

            return run_receiver(config)
        from toolkit.worker.indexer import run_indexer

        return run_indexer(config)
    except OSError as exc:
        logging.getLogger("toolkit.worker").error("could not start", extra={"role": role, "error": str(exc)})
        return 1


def run() -> None:
    try:
        code = main()
    except ImportError as exc:  # an installation without the worker extra (pip install 'toolkit[worker]')
        from toolkit.errors import missing_extra

        missing = missing_extra(exc, f"toolkit-worker {' '.join(sys.argv[1:2])}".strip())
        if missing is None:
            raise
        print(f"toolkit-worker: {missing}", file=sys.stderr)
        code = 2
    sys.exit(code)
