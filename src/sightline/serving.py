"""Serving-engine and GPU metric names (vLLM, TGI, NVIDIA DCGM exporter) and shared aliases.

Sightline stores each under a shared name too, so the server-side TTFT/TPOT/throughput of any
engine sits beside the client-side figures under one name.

The engine names are those the engines document: vLLM's ``/metrics`` (``vllm:*``), Text
Generation Inference's (``tgi_*``) and the DCGM exporter's default counters (``DCGM_FI_*``).
Counters are named with their ``_total`` sample suffix, as they appear in the exposition text.
Depends on nothing, like :mod:`sightline.semconv`.
"""

from __future__ import annotations

import dataclasses

__all__ = ["SERVING_ALIASES", "SERVING_METRICS", "ServingMetric", "alias_of"]


@dataclasses.dataclass(frozen=True, slots=True)
class ServingMetric:
    """One engine metric and the shared name it is stored under (``alias``)."""

    name: str
    alias: str
    engine: str
    unit: str
    description: str


def _m(engine: str, name: str, alias: str, unit: str, description: str) -> ServingMetric:
    return ServingMetric(name, alias, engine, unit, description)


SERVING_METRICS: dict[str, ServingMetric] = {
    m.name: m
    for m in (
        # vLLM (docs.vllm.ai, "Production Metrics")
        _m("vllm", "vllm:time_to_first_token_seconds", "serving_ttft_seconds", "s",
           "Time to first token, server side (histogram)."),
        _m("vllm", "vllm:time_per_output_token_seconds", "serving_tpot_seconds", "s",
           "Time per output token, server side (histogram)."),
        _m("vllm", "vllm:inter_token_latency_seconds", "serving_tpot_seconds", "s",
           "Inter-token latency (newer vLLM name of TPOT; histogram)."),
        _m("vllm", "vllm:e2e_request_latency_seconds", "serving_e2e_latency_seconds", "s",
           "End-to-end request latency (histogram)."),
        _m("vllm", "vllm:request_queue_time_seconds", "serving_queue_time_seconds", "s",
           "Time a request waited in the queue (histogram)."),
        _m("vllm", "vllm:request_prefill_time_seconds", "serving_prefill_seconds", "s",
           "Prefill phase time (histogram)."),
        _m("vllm", "vllm:request_decode_time_seconds", "serving_decode_seconds", "s",
           "Decode phase time (histogram)."),
        _m("vllm", "vllm:num_requests_running", "serving_requests_running", "1",
           "Requests being processed (gauge)."),
        _m("vllm", "vllm:num_requests_waiting", "serving_requests_waiting", "1",
           "Requests waiting to be processed (gauge)."),
        _m("vllm", "vllm:gpu_cache_usage_perc", "serving_kv_cache_usage_ratio", "ratio",
           "KV-cache usage, 0-1 (gauge)."),
        _m("vllm", "vllm:kv_cache_usage_perc", "serving_kv_cache_usage_ratio", "ratio",
           "KV-cache usage, 0-1 (newer vLLM name; gauge)."),
        _m("vllm", "vllm:prompt_tokens_total", "serving_prompt_tokens", "1",
           "Prefill (prompt) tokens processed (counter)."),
        _m("vllm", "vllm:generation_tokens_total", "serving_generation_tokens", "1",
           "Generation tokens produced (counter)."),
        _m("vllm", "vllm:request_success_total", "serving_requests_succeeded", "1",
           "Requests finished (counter)."),
        # Text Generation Inference (huggingface.co/docs/text-generation-inference, "Metrics")
        _m("tgi", "tgi_request_duration", "serving_e2e_latency_seconds", "s",
           "End-to-end request latency (histogram)."),
        _m("tgi", "tgi_request_queue_duration", "serving_queue_time_seconds", "s",
           "Time a request waited in the queue (histogram)."),
        _m("tgi", "tgi_request_inference_duration", "serving_inference_seconds", "s",
           "Inference time of a request (histogram)."),
        _m("tgi", "tgi_request_validation_duration", "serving_validation_seconds", "s",
           "Validation time of a request (histogram)."),
        _m("tgi", "tgi_request_mean_time_per_token_duration", "serving_tpot_seconds", "s",
           "Mean time per output token of a request (histogram)."),
        _m("tgi", "tgi_request_input_length", "serving_request_input_tokens", "1",
           "Input tokens per request (histogram)."),
        _m("tgi", "tgi_request_generated_tokens", "serving_request_output_tokens", "1",
           "Generated tokens per request (histogram)."),
        _m("tgi", "tgi_request_count_total", "serving_requests", "1",
           "Requests received (counter)."),
        _m("tgi", "tgi_request_success_total", "serving_requests_succeeded", "1",
           "Requests finished successfully (counter)."),
        _m("tgi", "tgi_request_failure_total", "serving_requests_failed", "1",
           "Requests failed (counter)."),
        _m("tgi", "tgi_queue_size", "serving_requests_waiting", "1",
           "Requests waiting in the queue (gauge)."),
        _m("tgi", "tgi_batch_current_size", "serving_requests_running", "1",
           "Requests in the current batch (gauge)."),
        _m("tgi", "tgi_batch_current_max_tokens", "serving_batch_max_tokens", "1",
           "Maximum tokens of the current batch (gauge)."),
        _m("tgi", "tgi_batch_forward_duration", "serving_batch_forward_seconds", "s",
           "Forward pass time of a batch; label method=prefill|decode (histogram)."),
        _m("tgi", "tgi_batch_inference_duration", "serving_batch_inference_seconds", "s",
           "Batch inference time; label method=prefill|decode (histogram)."),
        # NVIDIA DCGM exporter (default-counters.csv)
        _m("dcgm", "DCGM_FI_DEV_GPU_UTIL", "gpu_utilization_percent", "%",
           "GPU utilisation, 0-100 (gauge)."),
        _m("dcgm", "DCGM_FI_PROF_SM_ACTIVE", "gpu_sm_active_ratio", "ratio",
           "Share of cycles an SM has at least one warp assigned, 0-1 (gauge)."),
        _m("dcgm", "DCGM_FI_PROF_GR_ENGINE_ACTIVE", "gpu_engine_active_ratio", "ratio",
           "Share of time the graphics engine is active, 0-1 (gauge)."),
        _m("dcgm", "DCGM_FI_DEV_FB_USED", "gpu_memory_used_mib", "MiB",
           "Framebuffer memory used (gauge)."),
        _m("dcgm", "DCGM_FI_DEV_FB_FREE", "gpu_memory_free_mib", "MiB",
           "Framebuffer memory free (gauge)."),
        _m("dcgm", "DCGM_FI_DEV_MEM_COPY_UTIL", "gpu_memory_copy_utilization_percent", "%",
           "Memory bandwidth utilisation, 0-100 (gauge)."),
        _m("dcgm", "DCGM_FI_DEV_POWER_USAGE", "gpu_power_watts", "W",
           "Power draw (gauge)."),
    )
}  # fmt: skip
"""Engine metric name -> its mapping."""

SERVING_ALIASES: dict[str, str] = {
    **{m.alias: m.unit for m in SERVING_METRICS.values()},
    "serving_capacity_ratio": "ratio",
}
"""Every shared name and its unit. ``serving_capacity_ratio`` is computed by the scraper:
generation tokens per second over a target's declared ``capacity_tokens_per_s``."""


def alias_of(name: str) -> str | None:
    """The shared name of an engine metric, or None."""
    m = SERVING_METRICS.get(name)
    return m.alias if m is not None else None
