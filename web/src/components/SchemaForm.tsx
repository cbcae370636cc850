// A form generated from a plugin's JSON Schema: one field per property (text, number, checkbox,
// choice, list of words), JSON for anything richer, with the schema's rules checked inline
// before anything is sent and the hub's own verdict shown next to the field it names.
import { useState } from "react";

export type JsonSchema = {
  type?: string | string[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  description?: string;
  enum?: unknown[];
  items?: JsonSchema;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  minLength?: number;
  pattern?: string;
  maxItems?: number;
  default?: unknown;
};

type Value = Record<string, unknown>;

function kindOf(s: JsonSchema): "text" | "number" | "integer" | "boolean" | "enum" | "words" | "json" {
  if (s.enum) return "enum";
  const t = Array.isArray(s.type) ? s.type[0] : s.type;
  if (t === "string") return "text";
  if (t === "number") return "number";
  if (t === "integer") return "integer";
  if (t === "boolean") return "boolean";
  if (t === "array" && s.items && (s.items.type === "string" || s.items.type === undefined) && !s.items.properties) return "words";
  return "json";
}

/** The schema's rules for one property; a message for the person, or nothing. */
export function check(name: string, s: JsonSchema, v: unknown, required: boolean): string | undefined {
  if (v === undefined || v === "") return required ? `${name} is required.` : undefined;
  const k = kindOf(s);
  if ((k === "number" || k === "integer") && typeof v === "number") {
    if (Number.isNaN(v)) return "Enter a number.";
    if (k === "integer" && !Number.isInteger(v)) return "Enter a whole number.";
    if (s.minimum !== undefined && v < s.minimum) return `At least ${s.minimum}.`;
    if (s.exclusiveMinimum !== undefined && v <= s.exclusiveMinimum) return `More than ${s.exclusiveMinimum}.`;
    if (s.maximum !== undefined && v > s.maximum) return `At most ${s.maximum}.`;
  }
  if (k === "text" && typeof v === "string") {
    if (s.minLength !== undefined && v.length < s.minLength) return `At least ${s.minLength} characters.`;
    if (s.pattern && !new RegExp(s.pattern).test(v)) return `Must match ${s.pattern}.`;
  }
  if (Array.isArray(v) && s.maxItems !== undefined && v.length > s.maxItems) return `At most ${s.maxItems} items.`;
  return undefined;
}

export function SchemaForm({ schema, initial, serverErrors, onSubmit, submitLabel, busy, children }: {
  schema: JsonSchema;
  initial: Value;
  /** The hub's errors by property name. */
  serverErrors?: Record<string, string>;
  onSubmit: (config: Value) => void;
  submitLabel: string;
  busy?: boolean;
  children?: React.ReactNode;
}) {
  const props = schema.properties ?? {};
  const required = new Set(schema.required ?? []);
  const [value, setValue] = useState<Value>(initial);
  const [json, setJson] = useState<Record<string, string>>(() =>
    Object.fromEntries(Object.entries(props).filter(([, s]) => kindOf(s) === "json").map(([k]) => [k, initial[k] === undefined ? "" : JSON.stringify(initial[k], null, 2)])),
  );
  const [errors, setErrors] = useState<Record<string, string>>({});
  const set = (k: string, v: unknown) => setValue((old) => {
    const next = { ...old };
    if (v === undefined || v === "") delete next[k];
    else next[k] = v;
    return next;
  });

  const submit = (e: React.FormEvent) => {
    e.preventDefault();
    const found: Record<string, string> = {};
    const out: Value = { ...value };
    for (const [k, s] of Object.entries(props)) {
      if (kindOf(s) === "json") {
        const text = json[k]?.trim();
        if (!text) delete out[k];
        else {
          try {
            out[k] = JSON.parse(text);
          } catch {
            found[k] = "Not valid JSON.";
            continue;
          }
        }
      }
      const msg = check(k, s, out[k], required.has(k));
      if (msg) found[k] = msg;
    }
    setErrors(found);
    if (Object.keys(found).length === 0) onSubmit(out);
  };

  const all = { ...serverErrors, ...errors };
  return (
    <form onSubmit={submit} noValidate className="schema-form">
      {Object.keys(props).length === 0 && <p className="muted">This plugin takes no configuration.</p>}
      {Object.entries(props).map(([k, s]) => {
        const id = `cfg-${k}`;
        const k2 = kindOf(s);
        const v = value[k];
        return (
          <div key={k} className="field">
            <label htmlFor={id}>
              {k}
              {required.has(k) && <span aria-hidden> *</span>}
            </label>
            {s.description && <div className="muted small">{s.description}</div>}
            {k2 === "boolean" ? (
              <input id={id} type="checkbox" checked={v === true} onChange={(e) => set(k, e.target.checked)} />
            ) : k2 === "enum" ? (
              <select id={id} value={v === undefined ? "" : String(v)} onChange={(e) => set(k, e.target.value || undefined)}>
                <option value="">(default)</option>
                {s.enum!.map((o) => <option key={String(o)} value={String(o)}>{String(o)}</option>)}
              </select>
            ) : k2 === "number" || k2 === "integer" ? (
              <input id={id} type="number" step={k2 === "integer" ? 1 : "any"} value={v === undefined ? "" : String(v)}
                onChange={(e) => set(k, e.target.value === "" ? undefined : Number(e.target.value))} aria-invalid={!!all[k]} />
            ) : k2 === "words" ? (
              <input id={id} type="text" placeholder="comma-separated" value={Array.isArray(v) ? v.join(", ") : ""}
                onChange={(e) => set(k, e.target.value.trim() === "" ? undefined : e.target.value.split(",").map((w) => w.trim()).filter(Boolean))} aria-invalid={!!all[k]} />
            ) : k2 === "text" ? (
              <input id={id} type="text" value={typeof v === "string" ? v : ""} onChange={(e) => set(k, e.target.value)} aria-invalid={!!all[k]} />
            ) : (
              <textarea id={id} rows={4} spellCheck={false} value={json[k] ?? ""} onChange={(e) => setJson({ ...json, [k]: e.target.value })} aria-invalid={!!all[k]} placeholder="JSON" />
            )}
            {all[k] && <div className="field-error" role="alert">{all[k]}</div>}
          </div>
        );
      })}
      {children}
      <button type="submit" disabled={busy}>{busy ? "Working…" : submitLabel}</button>
    </form>
  );
}

/** `config/discounts/0/percent` → `discounts`; other parameters map to themselves. */
export function fieldOf(parameter: string | undefined): string | undefined {
  if (!parameter) return undefined;
  const m = /^(?:plugins\[\d+\]\.)?config\/([^/]+)/.exec(parameter);
  return m ? m[1] : parameter;
}
