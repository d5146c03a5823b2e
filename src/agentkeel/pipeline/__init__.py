"""The event pipeline: a cheap hot path and a background writer that batches to sinks."""

from agentkeel.pipeline._pipeline import OverflowPolicy, Pipeline, PipelineStats, Sink

__all__ = ["OverflowPolicy", "Pipeline", "PipelineStats", "Sink"]
