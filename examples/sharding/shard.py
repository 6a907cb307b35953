"""Which stream an event goes to when genonaut shards its route analytics stream.

genonaut's middleware calls stream_for(request_id, n) before its XADD. The shard is
CRC-32 (zlib) of the request id modulo n, and the key carries the shard number as a hash
tag, so Redis Cluster spreads the n streams over its slots and each stream's default
dead-letter stream ("<key>:dead") lands in the same slot. rollupd runs one instance per
shard (systemd: rollupd@<i>.service, redis.stream = "genonaut:route_analytics:stream:{<i>}").

    python3 shard.py N ID...   prints "<shard> <key>" for each id
"""
import sys
import zlib

PREFIX = "genonaut:route_analytics:stream"


def shard_of(request_id: str, n: int) -> int:
    return zlib.crc32(request_id.encode("utf-8")) % n


def stream_for(request_id: str, n: int) -> str:
    return "%s:{%d}" % (PREFIX, shard_of(request_id, n))


if __name__ == "__main__":
    n = int(sys.argv[1])
    for rid in sys.argv[2:] if len(sys.argv) > 2 else (line.strip() for line in sys.stdin):
        print(shard_of(rid, n), stream_for(rid, n))
