"""The `toolkit-worker` process: the syslog receiver (wire -> Kafka) and the indexer (Kafka -> Elasticsearch).

Modules: `framing` (RFC 6587/5425 stream framing a hostile sender cannot trick, and the Kafka key), `syslog`
(RFC 5424/3164 parsing, done once, in the indexer), `ecs` (Elastic Common Schema documents and bulk lines),
`delivery` (retry classification, backoff, the index lease that keeps redeliveries exactly-once), `config`
(TOOLKIT_WORKER_* settings), `observability` (metrics, probes, JSON logs), `receiver`, `indexer`, `main` (the
command line). Only this package and `toolkit/targets` import the Kafka and Elasticsearch clients.
"""
