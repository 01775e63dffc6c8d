"""The redis-py peer of the events benchmark (host/benches/events.rs): a consumer-group loop
as a competent Python user writes it — XREADGROUP COUNT 256, a trivial handler, one XACK per
batch in a pipeline (with `--kv`, an INCR per event in the same MULTI/EXEC as the XACK, the
equivalent of our effect committed with the ack). The stream is filled beforehand by the
bench; this prints one JSON line: events handled and seconds from the first read to the
last ack."""

import json
import sys
import time

import redis


def main() -> None:
    port, stream, group, total = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    with_kv = "--kv" in sys.argv
    r = redis.Redis(host="127.0.0.1", port=int(port))
    try:
        r.xgroup_create(stream, group, id="0", mkstream=True)
    except redis.ResponseError as e:
        if "BUSYGROUP" not in str(e):
            raise
    done = 0
    started = None
    while done < total:
        reply = r.xreadgroup(group, "py", {stream: ">"}, count=256, block=1000)
        if not reply:
            continue
        if started is None:
            started = time.perf_counter()
        ids = []
        pipe = r.pipeline(transaction=with_kv)
        for _, entries in reply:
            for entry_id, fields in entries:
                # The handler: read a field, as any handler would.
                _ = fields.get(b"seq")
                if with_kv:
                    pipe.incr("py:count")
                ids.append(entry_id)
        pipe.xack(stream, group, *ids)
        pipe.execute()
        done += len(ids)
    elapsed = time.perf_counter() - started
    print(json.dumps({"events": done, "seconds": elapsed, "redis_py": redis.__version__}))


if __name__ == "__main__":
    main()
