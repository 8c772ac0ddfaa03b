"""A real Kafka and Elasticsearch client with hostname verification ON, run from the root network namespace or as a
pod's container. Argument: a JSON file of settings. Prints one JSON line per check: {"check", "ok", "detail"}, and
exits 0 only when every check passed.

Settings: kafka_bootstrap, topic, es_url, ca, cert, key (client certificate; "" for none), timeout.
"""

from __future__ import annotations

import json
import sys
import time
import uuid


def kafka_round_trip(settings: dict) -> tuple[bool, str]:
    from confluent_kafka import Consumer, Producer

    errors: list[str] = []
    common = {
        "bootstrap.servers": settings["kafka_bootstrap"],
        "security.protocol": "SSL",
        "ssl.ca.location": settings["ca"],
        "ssl.endpoint.identification.algorithm": "https",
        "error_cb": lambda error: errors.append(str(error)),
    }
    if settings.get("cert"):
        common.update({"ssl.certificate.location": settings["cert"], "ssl.key.location": settings["key"]})
    value = uuid.uuid4().hex
    delivered: list[str] = []
    producer = Producer({**common, "acks": "all", "message.timeout.ms": int(settings["timeout"] * 1000)})
    producer.produce(settings["topic"], value.encode(), on_delivery=lambda e, m: delivered.append(str(e or "ok")))
    producer.flush(settings["timeout"] + 2)
    if delivered != ["ok"]:
        return False, f"produce: delivery {delivered or 'never reported'}; client errors: {errors[-3:]}"
    consumer = Consumer({**common, "group.id": f"tls-{value}", "auto.offset.reset": "earliest"})
    consumer.subscribe([settings["topic"]])
    deadline = time.monotonic() + settings["timeout"]
    try:
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None and message.value() == value.encode():
                return True, f"produced and consumed {value} through {settings['kafka_bootstrap']}"
    finally:
        consumer.close()
    return False, f"consume: {value} not read within {settings['timeout']} s; client errors: {errors[-3:]}"


def elasticsearch_round_trip(settings: dict) -> tuple[bool, str]:
    from elasticsearch import Elasticsearch

    options = {"ca_certs": settings["ca"], "verify_certs": True, "basic_auth": ("elastic", "any")}
    if settings.get("cert"):
        options.update({"client_cert": settings["cert"], "client_key": settings["key"]})
    client = Elasticsearch(settings["es_url"], request_timeout=settings["timeout"], max_retries=0, **options)
    try:
        info = client.info()
        client.index(index="tls-check", document={"at": time.time()}, refresh=True)
        return True, f"Elasticsearch {info['version']['number']} at {settings['es_url']}"
    except Exception as error:
        causes = []
        cause: BaseException | None = error
        while cause is not None and len(causes) < 4:
            causes.append(repr(cause))
            cause = cause.__cause__ or cause.__context__
        return False, " <- ".join(causes)
    finally:
        client.close()


def main() -> int:
    with open(sys.argv[1]) as handle:
        settings = json.load(handle)
    all_ok = True
    for check, run in (("kafka", kafka_round_trip), ("elasticsearch", elasticsearch_round_trip)):
        if check not in settings.get("checks", ["kafka", "elasticsearch"]):
            continue
        try:
            ok, detail = run(settings)
        except Exception as error:
            ok, detail = False, f"{type(error).__name__}: {error}"
        all_ok &= ok
        print(json.dumps({"check": check, "ok": ok, "detail": detail}), flush=True)
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
