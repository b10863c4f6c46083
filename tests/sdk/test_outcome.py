"""sightline.outcome from an app process to a running `sightline serve`."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from _helpers import API_KEY, Server

APP = textwrap.dedent("""
    import sys
    import sightline

    sightline.init(endpoint=sys.argv[1], api_key=sys.argv[2], service_name="shop")
    with sightline.trace("checkout-assistant", session_id="cart-77") as root:
        with sightline.span("chat gpt-4o-mini", kind="llm") as s:
            s.set_llm(model="gpt-4o-mini", provider="openai", output="Your cart is ready.",
                      usage={"input_tokens": 1000, "output_tokens": 10})
        trace_id = root.otel.get_span_context().trace_id
    sightline.shutdown()
    sightline.outcome(session_id="cart-77", name="converted", value=49.5,
                      metadata={"order": "o-1"}, wait=True)
    import datetime, decimal
    sightline.outcome(session_id="cart-78", name="refunded", value=0, wait=True,
                      metadata={"on": datetime.date(2026, 1, 2), "amount": decimal.Decimal("9.5")})
    t = sightline.outcome(trace_id, name="task_completed")  # in the background
    t.join(10)
    # bad input and an unreachable server: logged and dropped, never raised into the app
    sightline.outcome(session_id="cart-77", name="Not A Name!", wait=True)
    sightline.init(endpoint="http://127.0.0.1:9", api_key="x", service_name="shop")
    sightline.outcome(session_id="cart-77", name="converted", wait=True)
    print(format(trace_id, "032x"))
""")


def test_outcomes_reach_the_server_and_its_metrics(server: Server) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIGHTLINE_", "OTEL_"))}
    proc = subprocess.run(
        [sys.executable, "-c", APP, server.url, API_KEY],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    trace_id = proc.stdout.strip().splitlines()[-1]
    with server.client() as c:
        got = c.get("/api/v1/outcomes", params={"session_id": "cart-77"}).json()["data"]
        assert [(o["name"], o["value"], o["metadata"]) for o in got] == [
            ("converted", 49.5, {"order": "o-1"})
        ]
        other = c.get("/api/v1/outcomes", params={"session_id": "cart-78"}).json()["data"]
        assert [o["metadata"] for o in other] == [{"on": "2026-01-02", "amount": "9.5"}]
        by_trace = c.get("/api/v1/outcomes", params={"trace_id": trace_id}).json()["data"]
        assert [o["name"] for o in by_trace] == ["task_completed"]
        [m] = c.get("/api/v1/outcomes/metrics", params={"model": "gpt-4o-mini"}).json()["data"]
    assert m["num_units"] == 1 and m["conversion_rate"] == 1.0
    assert m["task_completion_rate"] == 1.0 and m["num_outcomes"] == 1
