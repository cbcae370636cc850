"""latency-slo: an enricher written in Python, built with componentize-py.

Tags every LLM call with `latency_band` (fast / ok / slow) and, when it breaks the tenant's
latency objective, `slo_breach = true`. The objective is per model, with a default:

    {"default_slo_ms": 2000, "models": {"gpt-4o": 1500}, "fast_ms": 300}

The hub runs this component exactly like the Rust ones: same WIT world (hub:plugin/enricher),
same limits, same patch checks.
"""
import json

import wit_world
from componentize_py_types import Err
from wit_world.imports import types as t
from wit_world.imports import log


# componentize-py makes a new `WitWorld` object for every call: state lives at module level.
STATE = {"default_slo": 2000.0, "fast": 300.0, "models": {}}


class WitWorld(wit_world.WitWorld):

    def configure(self, config: str) -> None:
        try:
            doc = json.loads(config or "{}")
        except ValueError as e:
            raise Err(t.PluginError_BadConfig(f"not JSON: {e}"))
        if not isinstance(doc, dict):
            raise Err(t.PluginError_BadConfig("the configuration must be an object"))
        default = doc.get("default_slo_ms", 2000)
        fast = doc.get("fast_ms", 300)
        models = doc.get("models", {})
        for name, value in [("default_slo_ms", default), ("fast_ms", fast)]:
            if not isinstance(value, (int, float)) or value <= 0:
                raise Err(t.PluginError_BadConfig(f"{name}: must be a number > 0"))
        if not isinstance(models, dict):
            raise Err(t.PluginError_BadConfig("models: must be an object of model -> milliseconds"))
        for model, value in models.items():
            if not isinstance(value, (int, float)) or value <= 0:
                raise Err(t.PluginError_BadConfig(f"models.{model}: must be a number > 0"))
        STATE["default_slo"] = float(default)
        STATE["fast"] = float(fast)
        STATE["models"] = {k.lower(): float(v) for k, v in models.items()}
        log.log(log.Level.DEBUG, f"latency-slo configured: default {STATE['default_slo']} ms")

    def enrich(self, batch: t.EventBatch) -> t.Enrichment:
        # Text crosses as indexes into a table of distinct strings, both ways: the batch's
        # `strings`, and the answer's (built here).
        answer = ["slo_breach", "latency_band", "slow", "fast", "ok"]
        breach, band_tag = t.Field_Tag(0), t.Field_Tag(1)
        bands = {"slow": t.Value_Text(2), "fast": t.Value_Text(3), "ok": t.Value_Text(4)}
        patches = []
        default, fast, models = STATE["default_slo"], STATE["fast"], STATE["models"]
        slo_by_index = {}
        for row, latency in enumerate(batch.latency_ms):
            if latency is None:
                continue
            m = batch.models[row]
            if m is None:
                slo = default
            else:
                slo = slo_by_index.get(m)
                if slo is None:
                    slo = slo_by_index[m] = models.get(batch.strings[m].lower(), default)
            if latency > slo:
                band = "slow"
                patches.append(t.Patch(row, breach, t.Value_Flag(True)))
            elif latency <= fast:
                band = "fast"
            else:
                band = "ok"
            patches.append(t.Patch(row, band_tag, bands[band]))
        # No groups: every change here depends on the row's own latency.
        return t.Enrichment(answer, patches, [])

    def refresh(self) -> t.SyncReport:
        return t.SyncReport(0, "nothing to refresh")
