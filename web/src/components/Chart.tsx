import { useEffect, useRef } from "react";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";

export type Line = { label: string; values: (number | null)[]; color: string };

const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2"];
export const color = (i: number) => COLORS[i % COLORS.length];

/** A time chart (uPlot: thousands of points stay smooth) with its unit on the axis. */
export function Chart({ title, unit, x, lines, height = 200 }: {
  title: string;
  unit: string;
  /** Seconds since the epoch. */
  x: number[];
  lines: Line[];
  height?: number;
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
          spanGaps: false,
          // Sparse data (a few buckets with traffic) shows as points, dense data as lines.
          points: { show: l.values.filter((v) => v != null).length < 60, size: 5 },
          value: (_: uPlot, v: number | null) => (v == null ? "–" : fmt(v)),
        }))],
        axes: [{}, { label: unit, size: 70, values: (_u: uPlot, ticks: number[]) => ticks.map(fmt) }],
        scales: { x: { time: true } },
        legend: { live: true },
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
  }, [x, lines, unit, height]);
  return (
    <figure className="chart">
      <figcaption>{title}</figcaption>
      <div ref={box} role="img" aria-label={`${title} over time, in ${unit}`} />
    </figure>
  );
}
