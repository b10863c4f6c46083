"""Prometheus scraping of serving engines: recorded vLLM, TGI and DCGM exposition text, served
by a local HTTP server, scraped by a real `sightline serve`."""

from __future__ import annotations

import re
import textwrap
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from _alerting import wait_for
from _helpers import Server, start_server
from sightline.errors import ConfigError
from sightline.ingest._scrape import ScrapeTarget, parse_exposition, parse_scrape_targets
from sightline.serving import SERVING_METRICS

DATA = Path(__file__).parent / "data"
_CUMULATIVE = re.compile(r"^(\S+?(?:_bucket|_count|_sum|_total)(?:\{[^}]*\})?) (\S+)$")


def _scaled(text: str, k: int) -> str:
    """The exposition after ``k`` times the recorded traffic: cumulative samples times k."""
    out = []
    for line in text.splitlines():
        m = _CUMULATIVE.match(line)
        if m and not line.startswith("#"):
            line = f"{m.group(1)} {float(m.group(2)) * k}"
        out.append(line)
    return "\n".join(out) + "\n"


class Exporters:
    """A local HTTP server serving the recorded fixtures as engines would, counters growing."""

    def __init__(self) -> None:
        self.hits: dict[str, int] = {}
        self.fail: set[str] = set()
        fixtures = {n: (DATA / f"{n}.prom").read_text() for n in ("vllm", "tgi", "dcgm")}
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                name = self.path.strip("/").split("/")[0]
                if name not in fixtures or name in owner.fail:
                    self.send_response(500 if name in owner.fail else 404)
                    self.end_headers()
                    return
                k = owner.hits[name] = owner.hits.get(name, 0) + 1
                body = _scaled(fixtures[name], k).encode()
                self.send_response(200)
                self.send_header("content-type", "text/plain; version=0.0.4")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _target(name: str, **kw: Any) -> ScrapeTarget:
    return ScrapeTarget(url=f"http://127.0.0.1:1/{name}", name=name, project="p", **kw)


class TestParse:
    @pytest.mark.parametrize("engine", ["vllm", "tgi", "dcgm"])
    def test_fixture_maps_every_documented_name(self, engine: str) -> None:
        text = (DATA / f"{engine}.prom").read_text()
        rows = parse_exposition(text, project_id="p", target=_target(engine), time_ns=10**18)
        got = dict(zip(rows.cols["name"], rows.cols["alias"], strict=True))
        documented = {
            m.name: m.alias
            for m in SERVING_METRICS.values()
            if m.engine == engine and m.name in got
        }
        expected_names = {
            "vllm": {
                "vllm:time_to_first_token_seconds",
                "vllm:time_per_output_token_seconds",
                "vllm:e2e_request_latency_seconds",
                "vllm:num_requests_running",
                "vllm:num_requests_waiting",
                "vllm:gpu_cache_usage_perc",
                "vllm:prompt_tokens_total",
                "vllm:generation_tokens_total",
                "vllm:request_queue_time_seconds",
                "vllm:request_prefill_time_seconds",
                "vllm:request_decode_time_seconds",
            },
            "tgi": {
                "tgi_request_duration",
                "tgi_request_queue_duration",
                "tgi_request_inference_duration",
                "tgi_request_mean_time_per_token_duration",
                "tgi_request_input_length",
                "tgi_request_generated_tokens",
                "tgi_request_count_total",
                "tgi_queue_size",
                "tgi_batch_current_size",
                "tgi_batch_forward_duration",
            },
            "dcgm": {"DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_PROF_SM_ACTIVE", "DCGM_FI_DEV_FB_USED"},
        }[engine]
        assert expected_names <= set(documented)
        for name, alias in documented.items():
            assert got[name] == alias
        assert got.get("vllm:time_to_first_token_seconds", "serving_ttft_seconds") == (
            "serving_ttft_seconds"
        )
        assert got.get("tgi_queue_size", "serving_requests_waiting") == "serving_requests_waiting"
        assert got.get("DCGM_FI_PROF_SM_ACTIVE", "gpu_sm_active_ratio") == "gpu_sm_active_ratio"

    def test_histogram_buckets_become_per_bucket_counts(self) -> None:
        text = (DATA / "vllm.prom").read_text()
        rows = parse_exposition(text, project_id="p", target=_target("vllm"), time_ns=10**18)
        i = rows.cols["name"].index("vllm:time_to_first_token_seconds")
        assert rows.cols["type"][i] == "histogram"
        assert rows.cols["bounds"][i] == [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25,
                                          0.5, 1.0]  # fmt: skip
        assert rows.cols["bucket_counts"][i] == [0, 0, 0, 4, 36, 80, 100, 80, 100, 16, 4, 0]
        assert rows.cols["count"][i] == 420 and rows.cols["sum"][i] == pytest.approx(33.6)
        attrs = rows.cols["attributes"][i]
        assert (
            '"model_name":"meta-llama/Llama-3.1-8B-Instruct"' in attrs and '"job":"vllm"' in attrs
        )
        j = rows.cols["name"].index("vllm:generation_tokens_total")
        assert (rows.cols["type"][j], rows.cols["monotonic"][j]) == ("sum", True)

    def test_bad_config_and_text(self) -> None:
        with pytest.raises(ConfigError, match="url"):
            parse_scrape_targets([{"url": "file:///etc/passwd"}], default_project="p")
        with pytest.raises(ConfigError, match="project is required"):
            parse_scrape_targets([{"url": "http://127.0.0.1:1/m"}], default_project=None)
        with pytest.raises(ConfigError, match="interval"):
            parse_scrape_targets([{"url": "http://x/m", "interval": "soon"}], default_project="p")
        with pytest.raises(ConfigError, match="list"):
            parse_scrape_targets({"url": "http://x/m"}, default_project="p")
        [t] = parse_scrape_targets(
            [{"url": "http://x/m", "interval": "1m", "labels": {"cluster": "a"}}],
            default_project="p",
        )
        assert (t.interval, t.project, t.labels) == (60.0, "p", {"cluster": "a"})
        with pytest.raises(ConfigError, match="invalid exposition"):
            parse_exposition("metric{ 1", project_id="p", target=t, time_ns=1)


@pytest.fixture(scope="module")
def exporters() -> Iterator[Exporters]:
    e = Exporters()
    yield e
    e.close()


@pytest.fixture(scope="module")
def scraping(tmp_path_factory: pytest.TempPathFactory, exporters: Exporters) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("scrape")
    alerts = tmp / "sightline.yaml"
    alerts.write_text(
        f"""
scrape:
  - {{url: "{exporters.url}/vllm", name: vllm, interval: 0.5s, labels: {{cluster: eu-1}},
     service: llama-vllm, capacity_tokens_per_s: 1000000000}}
  - {{url: "{exporters.url}/tgi", name: tgi, interval: 0.5}}
  - {{url: "{exporters.url}/dcgm", name: dcgm, interval: 0.5}}
  - {{url: "{exporters.url}/broken", name: broken, interval: 0.5}}
rules:
  - name: vllm-queue-deep
    metric: serving_requests_waiting
    agg: max
    op: ">"
    threshold: 5
    window: 1m
    filter: {{job: vllm}}
    severity: P2
  - name: tgi-queue-raw-name
    metric: "otel:tgi_queue_size"
    agg: max
    op: ">="
    threshold: 3
    window: 1m
    severity: P3
"""
    )
    srv = start_server(tmp, args=["--alerts", str(alerts), "--monitor-interval", "1"])
    yield srv
    srv.stop()


def _firing(srv: Server) -> set[str]:
    with srv.client() as c:
        r = c.get("/api/v1/alerts", params={"status": "firing"})
    assert r.status_code == 200, r.text
    return {a["rule"] for a in r.json()["data"]}


class TestScrapeServe:
    def test_alerts_fire_on_scraped_metrics(self, scraping: Server) -> None:
        """A user rule on a scraped metric, one on a raw engine name, and the default GPU and
        capacity rules (SM active 0.962/0.978 > 95%; throughput far under the capacity)."""
        want = {"vllm-queue-deep", "tgi-queue-raw-name", "gpu-sm-saturated",
                "serving-throughput-low"}  # fmt: skip
        wait_for(lambda: want <= _firing(scraping), timeout_s=30)
        assert "gpu-sm-underused" not in _firing(scraping)

    def test_scraped_histogram_percentile_from_the_window_increase(
        self, scraping: Server, exporters: Exporters
    ) -> None:
        """Between two scrapes the counts grow by the recorded histogram (k x fixture), so the
        window's TTFT p50 is the fixture's: rank 210 of 420 falls in (0.06, 0.08] holding 100
        after 120 below -> 0.06 + 0.02 * (210 - 120) / 100 = 0.078 s."""
        wait_for(lambda: exporters.hits.get("vllm", 0) >= 3, timeout_s=30)
        with scraping.client() as c:

            def p50() -> Any:
                since = str(time.time() - 300)
                q = {"name": "serving_ttft_seconds", "agg": "p50", "from": since}
                r = c.get("/api/v1/metrics", params=q)
                assert r.status_code == 200, r.text
                return r.json()["series"][0]["points"][0]["value"] if r.json()["series"] else None

            wait_for(lambda: p50() is not None, timeout_s=20)
            assert p50() == pytest.approx(0.078)
            q = {"name": "vllm:num_requests_waiting", "agg": "max",
                 "from": str(time.time() - 300), "group_by": "cluster"}  # fmt: skip
            r = c.get("/api/v1/metrics", params=q)
            assert r.json()["series"][0]["group"] == {"cluster": "eu-1"}
            assert r.json()["series"][0]["points"][0]["value"] == 9.0
            names = {m["name"]: m for m in c.get("/api/v1/otel-metrics").json()["data"]}
            assert names["DCGM_FI_PROF_SM_ACTIVE"]["alias"] == "gpu_sm_active_ratio"
            assert names["DCGM_FI_PROF_SM_ACTIVE"]["source"] == "scrape"
            assert names["tgi_request_duration"]["type"] == "histogram"

    def test_a_failing_target_does_not_stop_the_others(
        self, scraping: Server, exporters: Exporters
    ) -> None:
        # this test may be the first to run against the server (pytest-xdist spreads the
        # class over workers): wait for a scrape of the broken target rather than assume one
        wait_for(lambda: "scrape_failed" in scraping.log() and "broken" in scraping.log(),
                 timeout_s=30)  # fmt: skip
        # and the other targets go on being scraped after the failure
        seen = exporters.hits.get("vllm", 0)
        wait_for(lambda: exporters.hits.get("vllm", 0) >= seen + 2, timeout_s=30)
        with scraping.client() as c:
            assert c.get("/readyz").status_code == 200


def test_serve_refuses_a_bad_scrape_section(tmp_path: Path) -> None:
    alerts = tmp_path / "a.yaml"
    alerts.write_text("scrape:\n  - {url: 'ftp://x/metrics'}\n")
    with pytest.raises(RuntimeError, match="url must be an http"):
        start_server(tmp_path, args=["--alerts", str(alerts)])
    time.sleep(0)


def test_the_serving_docs_config_is_valid() -> None:
    from sightline.alerts import parse_alerts_file

    text = (DATA.parent.parent.parent / "docs" / "serving.md").read_text()
    block = re.search(r"```yaml\n(.*?)```", text, re.S)
    assert block is not None
    parsed = parse_alerts_file(textwrap.dedent(block.group(1)))
    targets = parse_scrape_targets(parsed.scrape, default_project="p")
    assert [t.job for t in targets] == ["vllm", "dcgm"]
    assert targets[0].capacity_tokens_per_s == 2500 and targets[0].interval == 15
    assert {r.name for r in parsed.rules} == {"vllm-queue-deep", "kv-cache-nearly-full"}
