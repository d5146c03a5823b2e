"""record_metric: prometheus metrics of our own registry, validated, cached, cheap."""

from __future__ import annotations

import asyncio
import math
import timeit

import pytest
from prometheus_client import REGISTRY, CollectorRegistry, Counter
from prometheus_client.parser import text_string_to_metric_families

from agentkeel import ConfigurationError
from agentkeel.monitoring import MetricType, MonitoringSystem


@pytest.fixture
def monitoring() -> MonitoringSystem:
    return MonitoringSystem(emit=None)


def value(m: MonitoringSystem, sample: str, **labels: str) -> float | None:
    return m.registry.get_sample_value(sample, labels)


def test_the_three_types_as_the_seed_records_them(monitoring: MonitoringSystem) -> None:
    async def record() -> None:
        await monitoring.record_metric(
            name="template_load_duration_ms",
            value=45.2,
            metric_type=MetricType.HISTOGRAM,
            labels={"template_type": "EFFECT"},
            help_text="Template load duration in milliseconds",
        )
        await monitoring.record_metric(
            name="cache_hit_rate",
            value=0.85,
            metric_type=MetricType.GAUGE,
            labels={"cache": "template"},
            help_text="Template cache hit rate",
        )
        for _ in range(3):
            await monitoring.record_metric(
                name="generation_count",
                value=1,
                metric_type=MetricType.COUNTER,
                labels={"node_type": "EFFECT"},
            )

    asyncio.run(record())
    assert value(monitoring, "cache_hit_rate", cache="template") == 0.85
    assert value(monitoring, "generation_count_total", node_type="EFFECT") == 3
    assert value(monitoring, "template_load_duration_ms_count", template_type="EFFECT") == 1
    assert value(monitoring, "template_load_duration_ms_sum", template_type="EFFECT") == 45.2
    # Milliseconds get millisecond buckets: 45.2 lands in the 50 ms bucket, not +Inf.
    assert (
        value(monitoring, "template_load_duration_ms_bucket", template_type="EFFECT", le="50.0")
        == 1
    )


def test_sync_twin_and_strings_for_types(monitoring: MonitoringSystem) -> None:
    monitoring.record_metric_sync(name="queue_depth", value=3, metric_type="gauge")
    monitoring.record_metric_sync(name="queue_depth", value=5, metric_type="GAUGE")
    assert value(monitoring, "queue_depth") == 5


def test_export_is_prometheus_text_that_its_parser_reads(monitoring: MonitoringSystem) -> None:
    monitoring.record_metric_sync(
        name="jobs", value=2, metric_type=MetricType.COUNTER, labels={"kind": "a"}
    )
    text = asyncio.run(monitoring.export_prometheus_metrics())
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["jobs"].type == "counter"
    assert [s.value for s in families["jobs"].samples if s.name == "jobs_total"] == [2.0]
    # agentkeel's own families are declared even before any event arrives
    assert "agentkeel_alerts_active" in families


def test_registry_is_our_own_not_the_global_one(monitoring: MonitoringSystem) -> None:
    monitoring.record_metric_sync(name="private_metric", value=1, metric_type=MetricType.GAUGE)
    assert REGISTRY.get_sample_value("private_metric") is None
    other = CollectorRegistry()
    given = MonitoringSystem(registry=other, emit=None)
    given.record_metric_sync(name="in_given", value=1, metric_type=MetricType.GAUGE)
    assert other.get_sample_value("in_given") == 1


def test_two_systems_on_one_registry_is_a_clear_error() -> None:
    shared = CollectorRegistry()
    _ = MonitoringSystem(registry=shared, emit=None).registry
    with pytest.raises(ConfigurationError, match="its own registry"):
        _ = MonitoringSystem(registry=shared, emit=None).registry


@pytest.mark.parametrize("name", ["1bad", "has space", "dash-ed", "", "é"])
def test_invalid_metric_names(monitoring: MonitoringSystem, name: str) -> None:
    with pytest.raises(ConfigurationError, match="invalid metric name"):
        monitoring.record_metric_sync(name=name, value=1, metric_type=MetricType.GAUGE)


def test_our_prefix_is_reserved(monitoring: MonitoringSystem) -> None:
    with pytest.raises(ConfigurationError, match="reserved"):
        monitoring.record_metric_sync(
            name="agentkeel_tool_calls", value=1, metric_type=MetricType.COUNTER
        )


@pytest.mark.parametrize("label", ["1x", "__x", "le", "a-b"])
def test_invalid_label_names(monitoring: MonitoringSystem, label: str) -> None:
    with pytest.raises(ConfigurationError, match="invalid label name"):
        monitoring.record_metric_sync(
            name="m", value=1, metric_type=MetricType.GAUGE, labels={label: "v"}
        )


def test_changing_type_or_labels_says_what_was_registered(monitoring: MonitoringSystem) -> None:
    monitoring.record_metric_sync(
        name="m", value=1, metric_type=MetricType.COUNTER, labels={"a": "1"}
    )
    with pytest.raises(
        ConfigurationError, match=r"first recorded as a counter with labels \['a'\]"
    ):
        monitoring.record_metric_sync(
            name="m", value=1, metric_type=MetricType.GAUGE, labels={"a": "1"}
        )
    with pytest.raises(ConfigurationError, match="one set of label names"):
        monitoring.record_metric_sync(
            name="m", value=1, metric_type=MetricType.COUNTER, labels={"b": "1"}
        )
    # label order does not matter
    monitoring.record_metric_sync(
        name="m2", value=1, metric_type=MetricType.COUNTER, labels={"a": "1", "b": "2"}
    )
    monitoring.record_metric_sync(
        name="m2", value=1, metric_type=MetricType.COUNTER, labels={"b": "2", "a": "1"}
    )
    assert value(monitoring, "m2_total", a="1", b="2") == 2


def test_a_name_clashing_with_a_counter_suffix(monitoring: MonitoringSystem) -> None:
    monitoring.record_metric_sync(name="jobs", value=1, metric_type=MetricType.COUNTER)
    with pytest.raises(ConfigurationError, match="already uses that name"):
        monitoring.record_metric_sync(name="jobs_total", value=1, metric_type=MetricType.GAUGE)


@pytest.mark.parametrize(
    ("kind", "bad"),
    [
        (MetricType.COUNTER, -1),
        (MetricType.COUNTER, math.nan),
        (MetricType.COUNTER, "x"),
        (MetricType.HISTOGRAM, math.nan),
        (MetricType.GAUGE, "x"),
    ],
)
def test_bad_values_first_and_cached(
    monitoring: MonitoringSystem, kind: MetricType, bad: object
) -> None:
    with pytest.raises(ConfigurationError, match="cannot record"):
        monitoring.record_metric_sync(name="v", value=bad, metric_type=kind)  # type: ignore[arg-type]
    monitoring.record_metric_sync(name="v", value=1, metric_type=kind)
    with pytest.raises(ConfigurationError, match="cannot record"):  # the cached fast path too
        monitoring.record_metric_sync(name="v", value=bad, metric_type=kind)  # type: ignore[arg-type]

    async def record() -> None:
        await monitoring.record_metric(name="v", value=bad, metric_type=kind)  # type: ignore[arg-type]

    with pytest.raises(ConfigurationError, match="cannot record"):
        asyncio.run(record())


def test_unknown_metric_type(monitoring: MonitoringSystem) -> None:
    with pytest.raises(ConfigurationError, match="unknown metric type 'summary'"):
        monitoring.record_metric_sync(name="x", value=1, metric_type="summary")


def test_buckets_are_fixed_by_the_first_recording(monitoring: MonitoringSystem) -> None:
    monitoring.record_metric_sync(
        name="size_bytes", value=10, metric_type=MetricType.HISTOGRAM, buckets=[1, 100]
    )
    assert value(monitoring, "size_bytes_bucket", le="100.0") == 1
    with pytest.raises(ConfigurationError, match="buckets are fixed"):
        monitoring.record_metric_sync(
            name="size_bytes", value=10, metric_type=MetricType.HISTOGRAM, buckets=[1, 1000]
        )
    with pytest.raises(ConfigurationError, match="increasing"):
        monitoring.record_metric_sync(
            name="other", value=1, metric_type=MetricType.HISTOGRAM, buckets=[5, 1]
        )
    with pytest.raises(ConfigurationError, match="only histograms"):
        monitoring.record_metric_sync(
            name="g", value=1, metric_type=MetricType.GAUGE, buckets=[1, 2]
        )


def test_record_metric_costs_no_more_than_prometheus_own_call(
    monitoring: MonitoringSystem,
) -> None:
    """The acceptance bound, in one process: at most 1.5x ``labels().inc()``."""
    peer = Counter("peer_calls", "calls", ["tool", "status"], registry=CollectorRegistry())
    labels = {"tool": "weather", "status": "ok"}
    counter = MetricType.COUNTER

    def direct() -> None:
        peer.labels(tool="weather", status="ok").inc()

    def ours() -> None:
        monitoring.record_metric_sync(name="calls", value=1, metric_type=counter, labels=labels)

    async def ours_async(n: int) -> None:
        for _ in range(n):
            await monitoring.record_metric(
                name="calls", value=1, metric_type=counter, labels=labels
            )

    ours()
    n = 20_000
    peer_s = min(timeit.repeat(direct, number=n, repeat=5))
    sync_s = min(timeit.repeat(ours, number=n, repeat=5))
    async_s = min(timeit.repeat(lambda: asyncio.run(ours_async(n)), number=1, repeat=5))
    assert sync_s <= 1.5 * peer_s, (sync_s, peer_s)
    assert async_s <= 1.5 * peer_s, (async_s, peer_s)
