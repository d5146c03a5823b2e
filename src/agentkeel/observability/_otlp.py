"""An OTLP/HTTP tracer provider of our own, for exporting agentkeel's spans.

:func:`configure_otlp` builds an SDK ``TracerProvider`` with a
``BatchSpanProcessor`` and an ``OTLPSpanExporter`` over HTTP/protobuf, and returns
it. It never becomes the global provider: pass it to
:func:`~agentkeel.observability.instrument_tracing` (or to your own code). Needs the
``otel`` extra: ``pip install 'agentkeel[otel]'``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from agentkeel._errors import ConfigurationError
from agentkeel.observability._tracing import OTEL_EXTRA_HINT

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

__all__ = ["configure_otlp"]

_TRACES_PATH = "/v1/traces"


def _traces_url(endpoint: str) -> str:
    """``endpoint`` as a full traces URL: a bare ``http://host:4318`` gets ``/v1/traces``."""
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigurationError(
            f"endpoint must be an http:// or https:// URL such as "
            f"'http://127.0.0.1:4318', got {endpoint!r}"
        )
    if parts.path in ("", "/"):
        parts = parts._replace(path=_TRACES_PATH)
    return urlunsplit(parts)


def _seconds(value: float | timedelta, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | timedelta):
        raise ConfigurationError(f"{name} must be seconds or a timedelta, got {value!r}")
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if not seconds > 0:
        raise ConfigurationError(f"{name} must be a positive duration, got {value!r}")
    return seconds


def configure_otlp(
    *,
    endpoint: str | None = None,
    headers: Mapping[str, str] | None = None,
    service_name: str = "agentkeel",
    resource_attributes: Mapping[str, Any] | None = None,
    timeout: float | timedelta = 10.0,
    schedule_delay: float | timedelta = 1.0,
    max_queue_size: int = 8192,
    max_export_batch_size: int = 512,
) -> TracerProvider:
    """A new tracer provider exporting over OTLP/HTTP; never the global one.

    ``endpoint`` is the collector's URL: its base (``http://127.0.0.1:4318``, to which
    ``/v1/traces`` is added) or the full traces URL. Without it, the exporter reads the
    standard ``OTEL_EXPORTER_OTLP_*`` variables. ``headers`` go with every request
    (an API key, say). ``resource_attributes`` are added to ``service.name``. Spans
    are sent in batches, in the background, every ``schedule_delay``; call the
    provider's ``force_flush()`` to send at once, and ``shutdown()`` at exit.
    """
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:
        raise ImportError(
            "configure_otlp needs the OpenTelemetry SDK and its OTLP/HTTP exporter, "
            f"which are not installed: {OTEL_EXTRA_HINT}"
        ) from exc
    if not isinstance(service_name, str) or not service_name.strip():
        raise ConfigurationError(f"service_name must be a non-empty string, got {service_name!r}")
    for name, count in (
        ("max_queue_size", max_queue_size),
        ("max_export_batch_size", max_export_batch_size),
    ):
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ConfigurationError(f"{name} must be a positive integer, got {count!r}")
    if max_export_batch_size > max_queue_size:
        raise ConfigurationError(
            f"max_export_batch_size ({max_export_batch_size}) must not exceed "
            f"max_queue_size ({max_queue_size})"
        )
    timeout_s = _seconds(timeout, "timeout")
    delay_s = _seconds(schedule_delay, "schedule_delay")
    url = _traces_url(endpoint) if endpoint is not None else None
    attributes: dict[str, Any] = dict(resource_attributes or {})
    attributes["service.name"] = service_name
    exporter = OTLPSpanExporter(
        endpoint=url, headers=dict(headers) if headers else None, timeout=timeout_s
    )
    # The provider shuts down (exports what it holds) at exit; a TracingHandle made
    # after it hands over its spans before that, atexit hooks running last-in first.
    provider = TracerProvider(resource=Resource.create(attributes))
    provider.add_span_processor(
        BatchSpanProcessor(
            exporter,
            max_queue_size=max_queue_size,
            max_export_batch_size=max_export_batch_size,
            schedule_delay_millis=delay_s * 1000,
            export_timeout_millis=timeout_s * 1000,
        )
    )
    return provider
