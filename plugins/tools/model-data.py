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

# The cost table: every chat, completion and embedding model of the listed providers, first-party and
# hosted (Bedrock, Vertex AI, Azure, Together, Groq), each host's own price kept (a model served by
# several hosts has one row per host), with the prices litellm gives beyond input and output.
PRICE_HOSTS = {
    "openai": "openai", "anthropic": "anthropic", "gemini": "gemini", "mistral": "mistral",
    "cohere_chat": "cohere", "cohere": "cohere", "deepseek": "deepseek", "meta_llama": "meta",
    "bedrock": "bedrock", "bedrock_converse": "bedrock", "azure": "azure", "vertex_ai": "vertex_ai",
    "vertex_ai-language-models": "vertex_ai", "vertex_ai-anthropic_models": "vertex_ai",
    "vertex_ai-mistral_models": "vertex_ai", "vertex_ai-llama_models": "vertex_ai",
    "vertex_ai-deepseek_models": "vertex_ai", "vertex_ai-openai_models": "vertex_ai",
    "together_ai": "together_ai", "groq": "groq",
}
FIRST_PARTY_HOSTS = {"openai", "anthropic", "gemini", "mistral", "cohere", "deepseek", "meta"}
OWNERS = [
    (re.compile(r"^(gpt|o\d|chatgpt|text-embedding|davinci|babbage|codex|computer-use)"), "openai"),
    (re.compile(r"^claude"), "anthropic"),
    (re.compile(r"^(gemini|gemma|text-embedding-00|gemini-embedding|text-multilingual)"), "google"),
    (re.compile(r"llama"), "meta"),
    (re.compile(r"^(mistral|mixtral|codestral|ministral|pixtral|magistral|devstral|open-mistral|open-mixtral)"), "mistral"),
    (re.compile(r"^(command|embed-|c4ai|rerank)"), "cohere"),
    (re.compile(r"^deepseek"), "deepseek"),
]
# USD per token → the table's columns (USD per million tokens).
PRICE_FIELDS = [
    ("input", "input_cost_per_token"),
    ("output", "output_cost_per_token"),
    ("cache_read", "cache_read_input_token_cost"),
    ("cache_write", "cache_creation_input_token_cost"),
    ("reasoning", "output_cost_per_reasoning_token"),
    ("audio_input", "input_cost_per_audio_token"),
    ("audio_output", "output_cost_per_audio_token"),
    ("batch_input", "input_cost_per_token_batches"),
    ("batch_output", "output_cost_per_token_batches"),
]
TIERS = (200_000, 272_000, 128_000)

def price_name(key, host):
    name = key.lower()
    for p in ("vertex_ai/", "azure/", "bedrock/", "together_ai/", "groq/", "gemini/", "mistral/", "deepseek/",
              "cohere/", "meta_llama/", "openai/", "anthropic/", "converse/", "us-east-1/", "us-west-2/"):
        if name.startswith(p):
            name = name[len(p):]
    if "/" in name and host == "bedrock":
        return None  # region- or commitment-specific Bedrock entries (…/1-month-commitment/…)
    name = re.sub(r"^(us|eu|apac|global|au|jp|us-gov)\.", "", name)
    name = re.sub(r"^(anthropic|meta|openai|mistral|cohere|deepseek|amazon|google)\.", "", name)
    return name

def owner_of(name):
    base = name.split("/")[-1]
    for pattern, owner in OWNERS:
        if pattern.search(base):
            return owner
    return None

price_rows = {}
for key, v in data.items():
    if not isinstance(v, dict) or key == "sample_spec":
        continue
    host = PRICE_HOSTS.get(v.get("litellm_provider", ""))
    if host is None or v.get("mode") not in ("chat", "completion", "embedding", "responses"):
        continue
    if v.get("input_cost_per_token") is None or v.get("output_cost_per_token") is None:
        continue
    name = price_name(key, host)
    owner = name and owner_of(name)
    if not owner:
        continue
    row = {"model": name, "owner": owner, "host": host, "key": key}
    for col, field in PRICE_FIELDS:
        row[col] = v.get(field)
    for t in TIERS:
        suffix = f"_above_{t // 1000}k_tokens"
        if v.get("input_cost_per_token" + suffix) is not None:
            row["tier_above"] = t
            row["tier_input"] = v.get("input_cost_per_token" + suffix)
            row["tier_output"] = v.get("output_cost_per_token" + suffix)
            row["tier_cache_read"] = v.get("cache_read_input_token_cost" + suffix)
            row["tier_cache_write"] = v.get("cache_creation_input_token_cost" + suffix)
            break
    # One row per (model, host): the shortest catalog key wins (the undated alias over a snapshot).
    k = (name, host)
    if k not in price_rows or len(key) < len(price_rows[k]["key"]):
        price_rows[k] = row

PRICE_COLUMNS = ["model", "provider", "host", "input", "output", "cache_read", "cache_write", "reasoning",
                 "audio_input", "audio_output", "tier_above", "tier_input", "tier_output", "tier_cache_read",
                 "tier_cache_write", "batch_input", "batch_output", "effective_from", "source"]
PER_MILLION = {"input", "output", "cache_read", "cache_write", "reasoning", "audio_input", "audio_output",
               "tier_input", "tier_output", "tier_cache_read", "tier_cache_write", "batch_input", "batch_output"}

def cell(row, col):
    v = row.get(col)
    if v is None or v == "":
        return ""
    if col in PER_MILLION:
        return f"{v * 1e6:.10g}"
    return str(v)

# Prices carry the date they took effect: a price that did not change keeps its date, a changed one is
# a new row from today, and the old row stays so that older events keep their own time's price.
PRICES = "plugins/cost/data/prices.tsv"
previous = []
try:
    with open(PRICES) as f:
        lines = [l.rstrip("\n") for l in f if not l.startswith("#") and l.strip()]
    if lines and len(lines[0].split("\t")) == len(PRICE_COLUMNS):
        previous = [dict(zip(PRICE_COLUMNS, l.split("\t"))) for l in lines]
except FileNotFoundError:
    pass
PRICE_PART = PRICE_COLUMNS[3:17]
latest = {}
for r in previous:
    k = (r["model"], r["host"])
    if k not in latest or r["effective_from"] > latest[k]["effective_from"]:
        latest[k] = r
out_rows = list(previous)
for k, row in sorted(price_rows.items()):
    row["provider"] = row["owner"]
    row["source"] = f"litellm {version} ({row['key']})"
    cells = {c: cell(row, c) for c in PRICE_COLUMNS}
    old = latest.get(k)
    if old and all(old[c] == cells[c] for c in PRICE_PART):
        continue
    cells["effective_from"] = taken
    out_rows.append(cells)
out_rows.sort(key=lambda r: (r["model"], r["host"], r["effective_from"]))
with open(PRICES, "w") as f:
    f.write(f"# source: {source}; taken {taken}. Regenerate with plugins/tools/model-data.py.\n")
    f.write("# USD per million tokens. host: who serves it (the provider itself, bedrock, vertex_ai, azure,\n")
    f.write("# together_ai, groq). tier_*: prices for calls whose input is above tier_above tokens.\n")
    f.write("# effective_from: the first day the price applies; a changed price is a new row.\n")
    f.write("# " + "\t".join(PRICE_COLUMNS) + "\n")
    for r in out_rows:
        f.write("\t".join(r[c] for c in PRICE_COLUMNS) + "\n")
print(f"{len(price_rows)} priced (model, host) pairs", file=sys.stderr)

header = f"# source: {source}; taken {taken}. Regenerate with plugins/tools/model-data.py.\n"
with open("plugins/registry/data/models.tsv", "w") as f:
    f.write(header)
    f.write("# model\towner\tfamily\tcontext_window\tmax_output_tokens\tmode\tdeprecation_date\n")
    for r in sorted(rows.values(), key=lambda r: r["model"]):
        f.write(f"{r['model']}\t{r['owner']}\t{family(r['model'])}\t{r['context']}\t{r['max_output']}\t{r['mode']}\t{r['deprecation']}\n")
print(f"{len(rows)} models", file=sys.stderr)
