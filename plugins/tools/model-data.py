#!/usr/bin/env python3
"""Regenerates the model tables of the `cost` and `registry` plugins from litellm's model catalog.

litellm (MIT, https://pypi.org/project/litellm/) ships model prices and context windows as data in its
wheel. This script reads that file from a wheel downloaded from PyPI and keeps the current models of
OpenAI, Anthropic, Google, Mistral, Meta (through common hosts), Cohere and DeepSeek:

    pip download litellm --no-deps -d /tmp/litellm
    python3 plugins/tools/model-data.py /tmp/litellm/litellm-*.whl

Nothing downloads at run time: the plugins embed the generated TSV files.
"""
import datetime
import json
import re
import sys
import zipfile

wheel = sys.argv[1]
version = re.search(r"litellm-([0-9.]+)-", wheel).group(1)
with zipfile.ZipFile(wheel) as z:
    data = json.loads(z.read("litellm/model_prices_and_context_window_backup.json"))
taken = datetime.date.today().isoformat()
source = f"litellm {version} (PyPI, MIT) model_prices_and_context_window_backup.json"

# (litellm provider, prefix to strip, owner, keep?) in precedence order: first-party first.
FIRST_PARTY = {
    "openai": "openai", "anthropic": "anthropic", "gemini": "google", "mistral": "mistral",
    "cohere_chat": "cohere", "cohere": "cohere", "deepseek": "deepseek", "meta_llama": "meta",
}
HOSTS = {"bedrock_converse": None, "bedrock": None, "together_ai": "meta", "groq": "meta"}
DATE = re.compile(r"(-\d{4}-\d{2}-\d{2}|-\d{8}|-\d{2}-\d{4}|@\d{8}|-v\d+:\d+|-latest)$")

def normalize(key, provider):
    name = key.lower()
    for p in ("gemini/", "mistral/", "deepseek/", "cohere/", "meta_llama/", "together_ai/", "groq/", "openai/", "anthropic/"):
        if name.startswith(p):
            name = name[len(p):]
    if provider.startswith("bedrock"):
        if not name.startswith("anthropic.") and not name.startswith("meta."):
            return None
        name = name.split(".", 1)[1]
        name = re.sub(r"-v\d+:\d+$", "", name)
    return name

def family(name):
    base = name.split("/")[-1]
    while True:
        stripped = DATE.sub("", base)
        if stripped == base:
            break
        base = stripped
    tokens = base.split("-")
    skip = {"mini", "nano", "turbo", "preview", "latest", "instruct", "chat", "exp"}
    if len(tokens) > 1 and tokens[1] not in skip and not tokens[1].isdigit() or (len(tokens) > 1 and tokens[0] in ("gpt", "claude", "llama", "command")):
        fam = "-".join(tokens[:2])
        if tokens[0] == "claude" and len(tokens) > 2:
            fam = "-".join(tokens[:3]) if not tokens[2].isdigit() else f"claude-{tokens[1]}-{tokens[2]}"
        return fam
    return tokens[0]

rows = {}
for key, v in data.items():
    if not isinstance(v, dict) or key == "sample_spec":
        continue
    provider = v.get("litellm_provider", "")
    mode = v.get("mode")
    if mode not in ("chat", "completion", "embedding", "responses"):
        continue
    if provider in FIRST_PARTY:
        owner, rank = FIRST_PARTY[provider], 0
    elif provider in HOSTS:
        owner, rank = HOSTS[provider], 1
        if owner == "meta" and "llama" not in key.lower():
            continue
    else:
        continue
    name = normalize(key, provider)
    if not name:
        continue
    if owner is None:
        owner = "anthropic" if "claude" in name else "meta" if "llama" in name else None
        if owner is None:
            continue
    inp, out = v.get("input_cost_per_token"), v.get("output_cost_per_token")
    if inp is None or out is None:
        continue
    cached = v.get("cache_read_input_token_cost")
    row = dict(
        model=name, owner=owner, host=provider, input=inp * 1e6, output=out * 1e6,
        cached=(cached * 1e6) if cached is not None else None, context=v.get("max_input_tokens") or "",
        max_output=v.get("max_output_tokens") or "", mode=mode, deprecation=v.get("deprecation_date") or "",
        rank=rank,
    )
    if name not in rows or rows[name]["rank"] > rank:
        rows[name] = row

def num(x):
    return "" if x is None or x == "" else f"{x:.6g}"

header = f"# source: {source}; taken {taken}. Regenerate with plugins/tools/model-data.py.\n"
with open("plugins/cost/data/prices.tsv", "w") as f:
    f.write(header)
    f.write("# model\tprovider\tinput_usd_per_million\toutput_usd_per_million\tcached_input_usd_per_million\ttaken\tsource\n")
    for r in sorted(rows.values(), key=lambda r: r["model"]):
        f.write(f"{r['model']}\t{r['owner']}\t{num(r['input'])}\t{num(r['output'])}\t{num(r['cached'])}\t{taken}\tlitellm {version} ({r['host']})\n")
with open("plugins/registry/data/models.tsv", "w") as f:
    f.write(header)
    f.write("# model\towner\tfamily\tcontext_window\tmax_output_tokens\tmode\tdeprecation_date\n")
    for r in sorted(rows.values(), key=lambda r: r["model"]):
        f.write(f"{r['model']}\t{r['owner']}\t{family(r['model'])}\t{r['context']}\t{r['max_output']}\t{r['mode']}\t{r['deprecation']}\n")
print(f"{len(rows)} models", file=sys.stderr)
