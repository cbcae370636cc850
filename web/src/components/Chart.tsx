import { useEffect, useRef } from "react";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { drawingOrder } from "../analysis";

export type Line = {
  label: string;
  values: (number | null)[];
  color: string;
  /** Dashes (pixels on, off): a forecast rather than what happened. */
  dash?: number[];
  /** Join points across missing values (a forecast at a coarser step than the chart). */
  spanGaps?: boolean;
};

/** Something to point at on the time axis: an anomaly, with what a person reads on hover. */
export type Marker = { ts: number; id: number; severity: string; text: string; score?: number };

const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2"];
export const color = (i: number) => COLORS[i % COLORS.length];

/** Markers as buttons over the plot area (uPlot's `over`), placed at their time on each redraw. */
function markersPlugin(markers: Marker[], onMarker?: (id: number) => void): uPlot.Plugin {
  return {
    hooks: {
      draw: (u: uPlot) => {
        u.over.querySelectorAll(".marker").forEach((e) => e.remove());
        const width = u.over.clientWidth;
        for (const m of drawingOrder(markers)) {
          const left = u.valToPos(m.ts, "x");
          if (!(left >= 0 && left <= width)) continue;
          const b = document.createElement("button");
          b.type = "button";
          b.className = `marker ${m.severity}`;
          b.style.left = `${left}px`;
          b.title = m.text;
          b.setAttribute("aria-label", `Anomaly (${m.severity}): ${m.text}`);
          b.dataset.testid = "anomaly-marker";
          b.onmousedown = (e) => e.stopPropagation();
          b.onclick = () => onMarker?.(m.id);
          u.over.appendChild(b);
        }
      },
    },
  };
}

/** A time chart (uPlot: thousands of points stay smooth) with its unit on the axis. */
export function Chart({ title, unit, x, lines, height = 200, band, markers = [], onMarker }: {
  title: string;
  unit: string;
  /** Seconds since the epoch. */
  x: number[];
  lines: Line[];
  height?: number;
  /** Indices of two lines (upper, lower) whose space between is filled. */
  band?: [number, number];
  markers?: Marker[];
  onMarker?: (id: number) => void;
}) {
  const box = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const fmt = (v: number) =>
      unit === "USD" ? "$" + v.toFixed(v < 1 ? 4 : 2) : unit === "ms" ? v.toFixed(0) + " ms" : v.toLocaleString();
    const plot = new uPlot(
      {
        width: el.clientWidth || 600,
        height,
        series: [{}, ...lines.map((l) => ({
          label: l.label,
          stroke: l.color,
          width: 1.5,
          dash: l.dash,
          spanGaps: l.spanGaps ?? false,
          // Sparse data (a few buckets with traffic) shows as points, dense data as lines.
          points: { show: !l.spanGaps && l.values.filter((v) => v != null).length < 60, size: 5 },
          value: (_: uPlot, v: number | null) => (v == null ? "–" : fmt(v)),
        }))],
        bands: band ? [{ series: [band[0] + 1, band[1] + 1], fill: "rgba(100,116,139,0.15)" }] : undefined,
        axes: [{}, { label: unit, size: 70, values: (_u: uPlot, ticks: number[]) => ticks.map(fmt) }],
        scales: { x: { time: true } },
        legend: { live: true },
        plugins: markers.length ? [markersPlugin(markers, onMarker)] : [],
      },
      [x, ...lines.map((l) => l.values)] as uPlot.AlignedData,
      el,
    );
    const ro = new ResizeObserver(() => plot.setSize({ width: el.clientWidth, height }));
    ro.observe(el);
    return () => {
      ro.disconnect();
      plot.destroy();
    };
  }, [x, lines, unit, height, band, markers, onMarker]);
  return (
    <figure className="chart">
      <figcaption>{title}</figcaption>
      <div ref={box} role="img" aria-label={`${title} over time, in ${unit}`} />
    </figure>
  );
}
