"""The `toolkit` command line: parse, call `toolkit.operations`, print. Heavy imports stay inside command bodies.

Typer renders help through rich when rich is importable; that alone costs more start-up time than the whole
toolkit. Help is plain text here (set before typer is first imported); tables and the live view still use rich.
"""

import os

os.environ.setdefault("TYPER_USE_RICH", "0")
