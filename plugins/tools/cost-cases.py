#!/usr/bin/env python3
"""Writes plugins/cost/data/accuracy-cases.tsv: (model, usage) cases priced by litellm's own cost
function, which the cost plugin's accuracy test (plugins/cost/tests/accuracy.rs) must match within a
cent per million tokens.

Run with the same litellm version the price table came from, in a throwaway virtualenv:

    python3 -m venv /tmp/llvenv && /tmp/llvenv/bin/pip install litellm==1.110.2
    LITELLM_LOCAL_MODEL_COST_MAP=True /tmp/llvenv/bin/python plugins/tools/cost-cases.py

Cases: plain usage; 60% of the input read from the cache; 10% written to it; 40% of the output reasoning;
input above the model's price tier; and the batch API. litellm's cost_per_token ignores
`service_tier="batch"`, so batch cases are priced from the catalog's own `*_batches` per-token figures.
"""
import importlib.metadata
import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import litellm  # noqa: E402
from litellm import cost_per_token  # noqa: E402
from litellm.types.utils import (  # noqa: E402
    CompletionTokensDetailsWrapper,
    PromptTokensDetailsWrapper,
    Usage,
)

litellm.suppress_debug_info = True
catalog = litellm.model_cost

rows = []
with open("plugins/cost/data/prices.tsv") as f:
    header = None
    for line in f:
        if line.startswith("# model\t"):
            header = line[2:].rstrip("\n").split("\t")
        if line.startswith("#") or not line.strip():
            continue
        rows.append(dict(zip(header, line.rstrip("\n").split("\t"))))

# The newest row of each (model, host); its source names the catalog key it came from.
latest = {}
for r in rows:
    k = (r["model"], r["host"])
    if k not in latest or r["effective_from"] >= latest[k]["effective_from"]:
        latest[k] = r
picked = sorted(latest.values(), key=lambda r: (r["model"], r["host"]))


def usage(i, o, cr=0, cw=0, r=0):
    return Usage(
        prompt_tokens=i,
        completion_tokens=o,
        total_tokens=i + o,
        prompt_tokens_details=PromptTokensDetailsWrapper(cached_tokens=cr, cache_creation_tokens=cw),
        completion_tokens_details=CompletionTokensDetailsWrapper(reasoning_tokens=r),
        cache_creation_input_tokens=cw,
        cache_read_input_tokens=cr,
    )


out = []
for n, r in enumerate(picked):
    key = r["source"].split("(", 1)[1].rstrip(")")
    info = catalog.get(key)
    if info is None:
        continue
    embedding = info.get("mode") == "embedding"
    call_type = "embedding" if embedding else "completion"
    i, o = 12_000 + n * 37, 0 if embedding else 700 + n * 11
    cases = [("plain", i, o, 0, 0, 0)]
    if not embedding:
        if r["cache_read"]:
            cases.append(("cache-read", i, o, i * 6 // 10, 0, 0))
        if r["cache_write"]:
            cases.append(("cache-write", i, o, i * 3 // 10, i // 10, 0))
        cases.append(("reasoning", i, o, 0, 0, o * 4 // 10))
        if r["tier_above"]:
            big = int(r["tier_above"]) + 50_000
            cases.append(("above-tier", big, o, big // 2 if r["tier_cache_read"] else 0, 0, 0))
    for name, ci, co, ccr, ccw, cre in cases:
        try:
            p, c = cost_per_token(model=key, usage_object=usage(ci, co, ccr, ccw, cre), call_type=call_type)
        except Exception as e:  # a catalog entry litellm itself cannot price
            print(f"skip {key} {name}: {str(e)[:80]}")
            continue
        out.append((key, r["host"], name, ci, co, ccr, ccw, cre, 0, p + c))
    bi, bo = info.get("input_cost_per_token_batches"), info.get("output_cost_per_token_batches")
    if bi is not None and bo is not None:
        out.append((key, r["host"], "batch", i, o, 0, 0, 0, 1, i * bi + o * bo))

with open("plugins/cost/data/accuracy-cases.tsv", "w") as f:
    f.write(f"# litellm {importlib.metadata.version('litellm')} cost_per_token over "
            "plugins/cost/data/prices.tsv; regenerate with plugins/tools/cost-cases.py\n")
    f.write("# model\tprovider\tcase\tinput\toutput\tcache_read\tcache_write\treasoning\tbatch\tusd\n")
    for row in out:
        f.write("\t".join(str(x) if not isinstance(x, float) else f"{x:.12g}" for x in row) + "\n")
print(f"{len(out)} cases over {len(picked)} (model, host) pairs")
