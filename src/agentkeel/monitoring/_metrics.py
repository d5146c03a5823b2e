"""Metrics the application records itself: ``record_metric`` on a prometheus registry.

Each (name, labels) pair is resolved to its prometheus child once; later calls find
the child's bound method in a dict and call it, which is cheaper than prometheus's
own ``metric.labels(...).inc()`` (that validates and locks on every call). The first
recording of a name fixes its type and label names, as Prometheus requires; a later
call that disagrees gets a ConfigurationError saying what was registered.
"""

from __future__ import annotations

import enum
import itertools
import math
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agentkeel._errors import ConfigurationError
from agentkeel.monitoring._deps import require_prometheus

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

_METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
RESERVED_PREFIX = "agentkeel_"
# Names that say they are in milliseconds get buckets in milliseconds: prometheus's
# defaults are seconds, which would put every observation in the top bucket.
MS_BUCKETS = (1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0)
# A runaway label (a user ID, a URL) must not grow the cache without bound; when it
# is full it is cleared and refilled from prometheus on the next calls.
MAX_CACHED_CHILDREN = 50_000


class MetricType(enum.StrEnum):
    """The kind of a metric, as Prometheus knows it."""

    COUNTER = "counter"
    GAUGE = "gauge"
    HISTOGRAM = "histogram"

    @classmethod
    def parse(cls, value: object) -> MetricType:
        """Accept a MetricType or its name in any case."""
        if isinstance(value, MetricType):
            return value
        if isinstance(value, str):
            try:
                return cls(value.strip().lower())
            except ValueError:
                pass
        names = ", ".join(t.value for t in cls)
        raise ConfigurationError(f"unknown metric type {value!r}: use one of {names}")


@dataclass(frozen=True, slots=True)
class MetricDefinition:
    """What the first recording of a metric fixed: its type, label names and buckets."""

    name: str
    metric_type: MetricType
    labelnames: tuple[str, ...]
    help_text: str
    buckets: tuple[float, ...] | None = None


# (name, ((label, value), ...)) -> (type, the function that records one value)
ChildCache = dict[tuple[str, tuple[tuple[str, Any], ...]], tuple[str, Callable[[float], None]]]


def check_metric_name(name: object) -> str:
    if not isinstance(name, str) or not _METRIC_NAME.match(name):
        raise ConfigurationError(
            f"invalid metric name {name!r}: Prometheus names are letters, digits, '_' and "
            "':' and do not start with a digit, e.g. 'template_load_duration_ms'"
        )
    if name.startswith(RESERVED_PREFIX):
        raise ConfigurationError(
            f"metric name {name!r} starts with {RESERVED_PREFIX!r}, which is reserved for "
            "agentkeel's own metrics: choose another prefix (e.g. your application's name)"
        )
    return name


def check_label_names(labels: Mapping[str, Any]) -> tuple[str, ...]:
    for label in labels:
        if (
            not isinstance(label, str)
            or not _LABEL_NAME.match(label)
            or label.startswith("__")
            or label in {"le", "quantile"}
        ):
            raise ConfigurationError(
                f"invalid label name {label!r}: use letters, digits and '_', not starting "
                "with a digit or '__' ('le' and 'quantile' are reserved by Prometheus)"
            )
    return tuple(sorted(labels))


class MetricsRecorder:
    """Creates and caches the prometheus metrics behind ``record_metric``."""

    def __init__(self, registry: Callable[[], CollectorRegistry], children: ChildCache) -> None:
        self._registry = registry
        self._children = children
        self._definitions: dict[str, tuple[MetricDefinition, Any]] = {}
        self._lock = threading.Lock()

    def definitions(self) -> list[MetricDefinition]:
        with self._lock:
            return [definition for definition, _ in self._definitions.values()]

    def record(
        self,
        *,
        name: str,
        value: float,
        metric_type: MetricType | str,
        labels: Mapping[str, Any] | None,
        help_text: str,
        buckets: Sequence[float] | None,
    ) -> None:
        """The slow path: validate, create or find the child, cache it, record."""
        kind = MetricType.parse(metric_type)
        check_metric_name(name)
        labels = dict(labels) if labels else {}
        labelnames = check_label_names(labels)
        if buckets is not None and kind is not MetricType.HISTOGRAM:
            raise ConfigurationError(
                f"buckets were given for {kind} {name!r}: only histograms have buckets"
            )
        fixed_buckets = _check_buckets(buckets, name) if buckets is not None else None
        with self._lock:
            known = self._definitions.get(name)
            if known is None:
                definition = MetricDefinition(
                    name=name,
                    metric_type=kind,
                    labelnames=labelnames,
                    help_text=help_text or f"{name} (recorded with agentkeel record_metric)",
                    buckets=(fixed_buckets or _default_buckets(name))
                    if kind is MetricType.HISTOGRAM
                    else None,
                )
                metric = self._create(definition)
                self._definitions[name] = (definition, metric)
            else:
                definition, metric = known
                _check_same(definition, kind, labelnames, fixed_buckets)
            child = (
                metric.labels(**{k: str(v) for k, v in labels.items()}) if labelnames else metric
            )
            record = _recording_function(kind, child)
            if len(self._children) >= MAX_CACHED_CHILDREN:
                self._children.clear()
            self._children[(name, tuple(labels.items()))] = (kind.value, record)
        try:
            record(value)
        except (TypeError, ValueError) as exc:
            raise bad_value(name, kind.value, value) from exc

    def _create(self, definition: MetricDefinition) -> Any:
        prometheus = require_prometheus()
        factory = {
            MetricType.COUNTER: prometheus.Counter,
            MetricType.GAUGE: prometheus.Gauge,
            MetricType.HISTOGRAM: prometheus.Histogram,
        }[definition.metric_type]
        extra: dict[str, Any] = {}
        if definition.buckets is not None:
            extra["buckets"] = definition.buckets
        try:
            return factory(
                definition.name,
                definition.help_text,
                definition.labelnames,
                registry=self._registry(),
                **extra,
            )
        except ValueError as exc:
            raise ConfigurationError(
                f"cannot register metric {definition.name!r}: {exc}. Another metric in this "
                "registry already uses that name (counters also own NAME_total and "
                "NAME_created): choose another name"
            ) from exc

    def samples(self, name: str) -> tuple[MetricDefinition, list[Any]] | None:
        """The definition and current prometheus samples of a recorded metric."""
        with self._lock:
            known = self._definitions.get(name)
        if known is None:
            return None
        definition, metric = known
        samples: list[Any] = []
        for family in metric.collect():
            samples.extend(family.samples)
        return definition, samples


def bad_value(name: str, metric_type: str, value: object) -> ConfigurationError:
    rule = {
        "counter": "a counter only goes up: give a finite number >= 0",
        "gauge": "give a number",
        "histogram": "give a number (not NaN)",
    }[metric_type]
    return ConfigurationError(f"cannot record {value!r} in {metric_type} {name!r}: {rule}")


def _recording_function(kind: MetricType, child: Any) -> Callable[[float], None]:
    if kind is MetricType.GAUGE:
        setter: Callable[[float], None] = child.set
        return setter
    if kind is MetricType.COUNTER:
        inc = child.inc

        def count(value: float) -> None:
            if not value >= 0:  # also refuses NaN, which would poison the counter forever
                raise ValueError(value)
            inc(value)

        return count
    observe = child.observe

    def observe_value(value: float) -> None:
        if math.isnan(value):  # NaN lands in no bucket and turns the sum into NaN
            raise ValueError(value)
        observe(value)

    return observe_value


def _default_buckets(name: str) -> tuple[float, ...]:
    if name.endswith(("_ms", "_milliseconds")):
        return MS_BUCKETS
    prometheus = require_prometheus()
    return tuple(b for b in prometheus.Histogram.DEFAULT_BUCKETS if math.isfinite(b))


def _check_buckets(buckets: Sequence[float], name: str) -> tuple[float, ...]:
    values = tuple(float(b) for b in buckets if not (isinstance(b, float) and math.isinf(b)))
    if not values or any(b2 <= b1 for b1, b2 in itertools.pairwise(values)):
        raise ConfigurationError(
            f"buckets of histogram {name!r} must be increasing numbers, got {list(buckets)!r}"
        )
    return values


def _check_same(
    definition: MetricDefinition,
    kind: MetricType,
    labelnames: tuple[str, ...],
    buckets: tuple[float, ...] | None,
) -> None:
    if definition.metric_type is not kind or definition.labelnames != labelnames:
        raise ConfigurationError(
            f"metric {definition.name!r} was first recorded as a {definition.metric_type} "
            f"with labels {list(definition.labelnames)}, now as a {kind} with labels "
            f"{list(labelnames)}: a metric keeps one type and one set of label names "
            "(use another name for the new one)"
        )
    if buckets is not None and buckets != definition.buckets:
        raise ConfigurationError(
            f"histogram {definition.name!r} already has buckets {list(definition.buckets or ())}"
            f", not {list(buckets)}: buckets are fixed when a histogram is first recorded"
        )
