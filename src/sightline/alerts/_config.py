"""The alerts file (``sightline serve --alerts alerts.yaml``) and the shipped default pack."""

from __future__ import annotations

import dataclasses
import re
import secrets
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from sightline.alerts._notify import Channel, parse_channels
from sightline.alerts._rules import Rule, parse_rule
from sightline.config import _ENV_REF, expand_env
from sightline.errors import ConfigError

__all__ = ["AlertsFile", "default_rules", "load_alerts_file", "parse_alerts_file"]


@dataclasses.dataclass(frozen=True, slots=True)
class AlertsFile:
    """What an alerts file holds: rules, channels; drift, scrape and digest left raw.

    Drift jobs, scrape targets and the weekly digest are validated by their own stages.
    """

    rules: list[Rule]
    channels: dict[str, Channel]
    drift: list[dict[str, Any]]
    scrape: list[Any] = dataclasses.field(default_factory=list)
    digest: dict[str, Any] | None = None


def parse_alerts_file(text: str, *, where: str = "alerts file") -> AlertsFile:
    """Parse the YAML text of an alerts file; ``${VAR}`` is replaced from the environment.

    The replacement is made in the parsed values, not in the text: a secret holding ``#``,
    ``: ``, a quote or a leading ``@`` was parsed as YAML (a comment, a mapping, a broken
    string), and one reading ``yes`` or ``0123`` changed type.
    """
    # Each ${VAR} becomes a placeholder that is a plain scalar anywhere (inside {...} too);
    # the parsed strings then get the variables' values.
    tag = f"SLENV{secrets.token_hex(6)}N"
    names: list[str] = []

    def hold(m: re.Match[str]) -> str:
        names.append(m.group(0))
        return f"{tag}{len(names) - 1}E"

    held = re.compile(f"{tag}(\\d+)E")
    try:
        data = yaml.safe_load(_ENV_REF.sub(hold, text))
    except yaml.YAMLError as e:
        raise ConfigError(f"{where}: invalid YAML: {e}") from None
    data = _expand(data, lambda v: held.sub(lambda m: expand_env(names[int(m.group(1))]), v))
    data = data or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping with rules, channels and drift")
    unknown = set(data) - {"rules", "channels", "drift", "scrape", "digest"}
    if unknown:
        raise ConfigError(f"{where}: unknown section(s) {', '.join(sorted(map(str, unknown)))}")
    raw_rules = data.get("rules") or []
    if not isinstance(raw_rules, list):
        raise ConfigError(f"{where}: rules must be a list")
    try:
        channels = parse_channels(data.get("channels"))
        rules = [parse_rule(r) for r in raw_rules]
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None
    names = [r.name for r in rules]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise ConfigError(f"{where}: duplicate rule name(s) {', '.join(sorted(dup))}")
    for r in rules:
        bad = [c for c in r.notify if c not in channels]
        if bad:
            raise ConfigError(f"{where}: rule {r.name}: unknown channel(s) {', '.join(bad)}")
    drift = data.get("drift") or []
    if not isinstance(drift, list) or not all(isinstance(d, dict) for d in drift):
        raise ConfigError(f"{where}: drift must be a list of jobs")
    scrape = data.get("scrape") or []
    if not isinstance(scrape, list):
        raise ConfigError(f"{where}: scrape must be a list of targets")
    digest = data.get("digest")
    if digest is not None and not isinstance(digest, dict):
        raise ConfigError(f"{where}: digest must be a mapping")
    return AlertsFile(rules, channels, drift, scrape, digest)


def _expand(v: Any, sub: Callable[[str], str]) -> Any:
    """``sub`` applied to every string (keys included) of parsed YAML."""
    if isinstance(v, str):
        return sub(v)
    if isinstance(v, list):
        return [_expand(x, sub) for x in v]
    if isinstance(v, dict):
        return {_expand(k, sub): _expand(x, sub) for k, x in v.items()}
    return v


def load_alerts_file(path: Path) -> AlertsFile:
    """Read and parse an alerts file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot read alerts file {path}: {e}") from None
    return parse_alerts_file(text, where=str(path))


def default_rules() -> list[Rule]:
    """The shipped default rule pack (``alerts/default_rules.yaml``)."""
    text = resources.files("sightline.alerts").joinpath("default_rules.yaml").read_text("utf-8")
    return parse_alerts_file(text, where="default rule pack").rules
