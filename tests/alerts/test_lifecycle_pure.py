"""The pure lifecycle: the same observations give the same states and notifications."""

from __future__ import annotations

import dataclasses
import itertools
from datetime import UTC, datetime, timedelta

from sightline.alerts import Observation, RuleInfo, advance
from sightline.alerts._lifecycle import matching_silence
from sightline.model import Alert, Silence

T = datetime(2026, 1, 1, tzinfo=UTC)
RULE = RuleInfo("r", 1, "threshold", "P2", for_s=0, repeat_s=3600, window="5m", labels={})
_ids = (f"a{i}" for i in itertools.count())


def _step(prior: Alert | None, breach: bool | None, at: datetime, silenced: bool = False):  # type: ignore[no-untyped-def]
    obs = None if breach is None else Observation({}, 5.0, 1.0, breach)
    return advance(
        RULE,
        prior,
        obs,
        at,
        project_id="p",
        group_key="",
        silenced=silenced,
        new_id=lambda: next(_ids),
    )


def test_repeat_interval_and_acknowledgement_expiry() -> None:
    s = _step(None, True, T)
    assert s.notify == "firing" and s.alert is not None
    a = s.alert
    assert _step(a, True, T + timedelta(minutes=59)).notify is None
    s = _step(a, True, T + timedelta(hours=1))
    assert s.notify == "firing" and [k for k, _ in s.events] == ["repeat"]
    a = dataclasses.replace(
        s.alert,  # type: ignore[arg-type]
        acknowledged_at=T + timedelta(hours=1),
        ack_expires_at=T + timedelta(hours=3),
    )
    assert _step(a, True, T + timedelta(hours=2, minutes=30)).notify is None
    assert _step(a, True, T + timedelta(hours=3)).notify == "firing"  # the ack expired


def test_no_data_resolves_and_a_silenced_resolution_is_not_sent() -> None:
    a = _step(None, True, T).alert
    s = _step(a, None, T + timedelta(minutes=1))
    assert s.alert is not None and s.alert.status == "resolved" and s.notify == "resolved"
    assert s.events == (("resolved", "no data in the window"),)
    s = _step(a, False, T + timedelta(minutes=1), silenced=True)
    assert s.alert is not None and s.alert.status == "resolved" and s.notify is None
    # an alert that fired silenced never told anyone: its resolution is not sent either
    muted = _step(None, True, T, silenced=True).alert
    assert muted is not None and muted.last_notified_at is None
    assert _step(muted, False, T + timedelta(minutes=1)).notify is None


def test_silence_matching() -> None:
    s = Silence(
        project_id="p",
        silence_id="s",
        matchers={"rule": "r", "model": "gpt-4o"},
        starts_at=T,
        ends_at=T + timedelta(hours=1),
        created_at=T,
    )
    labels = {"rule": "r", "severity": "P2", "model": "gpt-4o"}
    assert matching_silence([s], labels, T + timedelta(minutes=5)) is s
    assert matching_silence([s], {**labels, "model": "claude"}, T) is None
    assert matching_silence([s], labels, T + timedelta(hours=1)) is None  # expired
    assert matching_silence([s], labels, T - timedelta(seconds=1)) is None  # not started
