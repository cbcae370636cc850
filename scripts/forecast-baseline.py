#!/usr/bin/env python3
"""Same-run library baseline for the hub's forecasters: Nixtla statsforecast's AutoETS and
SeasonalNaive on the same series, so our `ets` and `seasonal-naive` plugins can be compared
with a reference implementation on the same machine, in the same run.

Usage (inside a virtualenv with `pip install statsforecast`):

    python3 scripts/forecast-baseline.py IN.json OUT.json

IN.json:

    {"series": [{"name": "a", "step_ms": 3600000, "season": 24,
                 "train": [1.0, null, 3.0, ...], "horizon": 48}, ...]}

`train` holds the history (null = no value in that step); missing values are filled by linear
interpolation between finite neighbours (leading and trailing ones take the nearest value)
before either model sees the series, as the plugins do.

OUT.json:

    {"AutoETS": {"a": [means...]}, "SeasonalNaive": {"a": [means...]},
     "seconds": {"AutoETS": 1.23, "SeasonalNaive": 0.01}}

plus `"errors": {"AutoETS": {"a": "why"}}` when a model could not be fitted to a series (its
forecast is then the last value repeated, so every name still has `horizon` means).
`seconds` is the wall time of the model's fit-and-forecast calls alone (not the import, not
the reading).
"""

import json
import math
import sys
import time
import warnings

import numpy as np
from statsforecast.models import AutoETS, SeasonalNaive


def interpolate(values):
    """Floats with None/NaN replaced by linear interpolation (ends: nearest finite value)."""
    y = np.array([math.nan if v is None else float(v) for v in values], dtype=np.float64)
    ok = np.isfinite(y)
    if not ok.any():
        raise ValueError("no finite value")
    idx = np.arange(len(y))
    return np.interp(idx, idx[ok], y[ok])


def run(model_factory, y, h):
    out = model_factory().forecast(y=y, h=h)
    mean = np.asarray(out["mean"], dtype=np.float64)
    if mean.shape != (h,) or not np.all(np.isfinite(mean)):
        raise ValueError(f"returned {mean.shape} means, finite: {np.all(np.isfinite(mean))}")
    return mean


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    series = []
    for s in spec["series"]:
        y = interpolate(s["train"])
        series.append((str(s["name"]), y, max(1, int(s.get("season", 1))), int(s["horizon"])))

    result = {"AutoETS": {}, "SeasonalNaive": {}, "seconds": {}}
    errors = {}
    models = {
        "AutoETS": lambda m: (lambda: AutoETS(season_length=m)),
        "SeasonalNaive": lambda m: (lambda: SeasonalNaive(season_length=m)),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for label, factory in models.items():
            seconds = 0.0
            for name, y, m, h in series:
                m_used = m if len(y) >= m else 1
                t0 = time.perf_counter()
                try:
                    mean = run(factory(m_used), y, h)
                except Exception as e:  # a tiny or degenerate series: note it, keep going
                    errors.setdefault(label, {})[name] = f"{type(e).__name__}: {e}"
                    mean = np.full(h, y[-1])
                seconds += time.perf_counter() - t0
                result[label][name] = [float(v) for v in mean]
            result["seconds"][label] = seconds
    if errors:
        result["errors"] = errors
    with open(sys.argv[2], "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()
