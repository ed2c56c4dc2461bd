"""benchmarks/batching.py: the event source mapping simulation cuts batches as Lambda does, and the
measurement counts what the real pipeline writes."""

from __future__ import annotations

from benchmod import load

batching = load("batching")


def records(arrivals: list[float], size: int = 100, keys: list[str] | None = None) -> list:
    keys = keys or [f"k{i}" for i in range(len(arrivals))]
    return [
        batching.Record("shardId-0", k, t, size, {"eventID": f"shardId-0:{i}"})
        for i, (t, k) in enumerate(zip(arrivals, keys, strict=True))
    ]


def cut(rs: list, batch_size: int, window: int, phase: float = 0.0) -> list[tuple[int, float, bool]]:
    s = batching.Setting(batch_size, window, 1)
    return [(len(b), closed, capped) for b, closed, capped in batching.batches(rs, s, phase)]


def test_a_batch_closes_when_full_at_its_last_record():
    assert cut(records([0, 1, 2, 3, 4]), batch_size=2, window=60) == [(2, 1, False), (2, 3, False), (1, 64, False)]


def test_a_batch_closes_at_its_window():
    assert cut(records([0, 5, 11, 12]), batch_size=100, window=10) == [(2, 10, False), (2, 21, False)]


def test_window_zero_closes_at_the_next_poll():
    assert cut(records([0.2, 0.7, 1.1]), batch_size=100, window=0, phase=0.0) == [(2, 1.0, False), (1, 2.0, False)]


def test_waiting_records_fill_the_next_batch_at_once():
    """Records that arrived while a batch was gathering open the next one when it closes."""
    (first, second) = cut(records([0, 1, 2, 3]), batch_size=2, window=60)[:2]
    assert first == (2, 1, False) and second == (2, 3, False)
    assert cut(records([0, 0, 0, 0]), batch_size=3, window=10) == [(3, 0, False), (1, 10, False)]


def test_the_payload_limit_cuts_a_batch():
    size = batching.PAYLOAD_LIMIT // 3
    assert cut(records([0, 0, 0, 0], size=size), batch_size=100, window=10) == [(2, 0, True), (2, 10, False)]


def test_parallelization_splits_a_shard_by_partition_key_and_keeps_order():
    rs = records([float(i) for i in range(40)], keys=[f"k{i % 7}" for i in range(40)])
    subs = batching.substreams(rs, 4)
    assert sum(len(s) for s in subs) == 40
    for s in subs:
        assert [r.arrived for r in s] == sorted(r.arrived for r in s)
    owners = {r.partition_key: i for i, s in enumerate(subs) for r in s}
    assert all(owners[r.partition_key] == i for i, s in enumerate(subs) for r in s)
    assert batching.substreams(rs, 1) == [rs]


def test_measurement_counts_the_pipeline_objects_of_the_sample():
    from dmd.generated import REGISTRY
    from dmd.ingest.config import Settings
    from dmd.ingest.envelope import decode_event
    from dmd.ingest.pipeline import parse_batch

    stream, how = batching.stream(300, rate=10, seed=3)
    assert len(stream) == 300 and how
    span = max(r.arrived for r in stream) - min(r.arrived for r in stream)
    assert 20 < span < 40  # 300 records at 10 records/second
    pipeline = batching.Pipeline("avro")
    whole = batching.measure(stream, 10, batching.Setting(10_000, 300, 1), pipeline, seed=1)
    # one batch per shard: objects = the (type, partition date) groups of each shard's records
    expected = 0
    for sub in batching.substreams(stream, 1):
        groups, errors = parse_batch(
            decode_event({"Records": [r.json for r in sub]}), registry=REGISTRY, settings=Settings()
        )
        expected += len(groups) + len(errors)
    assert (whole.batches, whole.objects) == (len(batching.substreams(stream, 1)), expected)
    small = batching.measure(stream, 10, batching.Setting(100, 0, 1), pipeline, seed=1)
    windowed = batching.measure(stream, 10, batching.Setting(100, 10, 1), pipeline, seed=1)
    assert small.objects > windowed.objects > whole.objects
    assert small.latency_mean < 1.0 < windowed.latency_mean < 10
    assert "| 10 | 100 | 0 | 1 |" in batching.table([small])
