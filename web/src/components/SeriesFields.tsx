// The series a detector or forecaster watches, as a part of its configuration form: metrics,
// grouping (a dimension or one tag), step, history, how many series, how often, and for a
// forecaster how far ahead. The hub checks it (a 400 names the field, shown here).
import { SERIES_DIMENSIONS, SERIES_METRICS, SERIES_STEPS } from "../analysis";

export type SeriesValue = Record<string, unknown>;

const list = (v: unknown) => (Array.isArray(v) ? (v as string[]) : []);

export function SeriesFields({ value, onChange, forecaster, error }: {
  value: SeriesValue;
  onChange: (v: SeriesValue) => void;
  forecaster: boolean;
  /** The hub's verdict on the last save, when it named a series field. */
  error?: string;
}) {
  const set = (k: string, v: unknown) => onChange({ ...value, [k]: v });
  const toggle = (k: string, name: string, on: boolean) => {
    const old = list(value[k]);
    set(k, on ? [...old, name] : old.filter((x) => x !== name));
  };
  const groups = list(value.group_by);
  const tag = groups.find((g) => g.startsWith("tag."))?.slice(4) ?? "";
  const setTag = (name: string) =>
    set("group_by", [...groups.filter((g) => !g.startsWith("tag.")), ...(name.trim() ? [`tag.${name.trim()}`] : [])]);
  return (
    <fieldset className="series" aria-label="Series watched">
      <legend>Series watched</legend>
      <div className="muted small">
        Built by the hub from the rollups and handed to the plugin each run: the largest series by requests first.
      </div>
      <div role="group" aria-label="Metrics" className="row">
        <span className="muted small">Metrics</span>
        {SERIES_METRICS.map((m) => (
          <label key={m} className="inline">
            <input type="checkbox" checked={list(value.metrics).includes(m)} onChange={(e) => toggle("metrics", m, e.target.checked)} /> {m}
          </label>
        ))}
      </div>
      <div role="group" aria-label="Group by" className="row">
        <span className="muted small">One series per</span>
        {SERIES_DIMENSIONS.map((d) => (
          <label key={d} className="inline">
            <input type="checkbox" checked={groups.includes(d)} onChange={(e) => toggle("group_by", d, e.target.checked)} /> {d}
          </label>
        ))}
        <label className="inline">tag <input value={tag} onChange={(e) => setTag(e.target.value)} placeholder="name" size={10} /></label>
      </div>
      <div className="row">
        <label>Step
          <select value={String(value.step ?? "")} onChange={(e) => set("step", e.target.value)}>
            {SERIES_STEPS.map((s) => <option key={s}>{s}</option>)}
          </select>
        </label>
        <label>History<input value={String(value.history ?? "")} onChange={(e) => set("history", e.target.value)} placeholder="15d" size={6} /></label>
        <label>Series at most<input type="number" min={1} value={String(value.max_series ?? "")} onChange={(e) => set("max_series", Number(e.target.value))} /></label>
        <label>Runs every<input value={String(value.every ?? "")} onChange={(e) => set("every", e.target.value)} placeholder="1m" size={6} /></label>
        {forecaster && (
          <label>Points ahead<input type="number" min={1} value={String(value.horizon ?? "")} onChange={(e) => set("horizon", Number(e.target.value))} /></label>
        )}
      </div>
      {error && <div className="field-error" role="alert">{error}</div>}
    </fieldset>
  );
}
