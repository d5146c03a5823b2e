"""Monitoring: Prometheus metrics, thresholds and alerts, health, diagnostics, profiling.

::

    from agentkeel.monitoring import MetricType, get_monitoring_system

    monitoring = get_monitoring_system()
    monitoring.install()          # agentkeel's own metrics, derived from the event stream
    await monitoring.record_metric(name="cache_hit_rate", value=0.85,
                                   metric_type=MetricType.GAUGE, labels={"cache": "template"})
    text = await monitoring.export_prometheus_metrics()

``keel health``, ``keel monitor`` and ``keel serve`` are the command-line side.
Metrics and system resources need the ``monitoring`` extra
(``pip install 'agentkeel[monitoring]'``: prometheus-client and psutil); everything
else works without it.
"""

from agentkeel.monitoring._alerts import (
    Alert,
    AlertChange,
    AlertManager,
    AlertNotifier,
    AlertSeverity,
)
from agentkeel.monitoring._diagnostics import (
    AgentDiagnostics,
    CallSample,
    CheckStatus,
    DiagnosticCheck,
    DiagnosticsReport,
)
from agentkeel.monitoring._exporter import StoreExporter
from agentkeel.monitoring._health import ComponentHealth, HealthStatus
from agentkeel.monitoring._healthcheck import HealthCheck, HealthReport, run_health_check
from agentkeel.monitoring._http import MetricsServer
from agentkeel.monitoring._metrics import MetricType
from agentkeel.monitoring._monitor import (
    MonitoringSystem,
    get_monitoring_system,
    set_monitoring_system,
)
from agentkeel.monitoring._profiling import ProfiledFunction, Profiler, ProfileReport, profile_call
from agentkeel.monitoring._reporting import PipelineStatsReporter, report_pipeline_stats
from agentkeel.monitoring._sink import MetricsSink, StoreFeed
from agentkeel.monitoring._system import ResourceSampler, SystemResources, system_resources
from agentkeel.monitoring._thresholds import Measurements, MetricRule, MonitoringThresholds

__all__ = [
    "AgentDiagnostics",
    "Alert",
    "AlertChange",
    "AlertManager",
    "AlertNotifier",
    "AlertSeverity",
    "CallSample",
    "CheckStatus",
    "ComponentHealth",
    "DiagnosticCheck",
    "DiagnosticsReport",
    "HealthCheck",
    "HealthReport",
    "HealthStatus",
    "Measurements",
    "MetricRule",
    "MetricType",
    "MetricsServer",
    "MetricsSink",
    "MonitoringSystem",
    "MonitoringThresholds",
    "PipelineStatsReporter",
    "ProfileReport",
    "ProfiledFunction",
    "Profiler",
    "ResourceSampler",
    "StoreExporter",
    "StoreFeed",
    "SystemResources",
    "get_monitoring_system",
    "profile_call",
    "report_pipeline_stats",
    "run_health_check",
    "set_monitoring_system",
    "system_resources",
]
