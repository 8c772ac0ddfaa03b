"""The `toolkit` command line: parse, call `toolkit.operations`, print. Heavy imports stay inside command bodies."""
