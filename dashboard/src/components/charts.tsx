// Time-series charts drawn by uPlot (a maintained canvas chart library, ~50 KB, no dependencies):
// bars (stacked by `stack`), lines and areas, with our own hover readout. The per-function list is a
// table of CSS bars, not a chart.
import { useEffect, useRef, useState } from "preact/hooks";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { useWidth } from "../hooks";

export interface Series {
  key: string;
  label: string;
  color: string;
  values: number[];
  kind: "bar" | "line" | "area";
  /** Bars with the same stack id are stacked. */
  stack?: string;
}

export function niceMax(value: number): number {
  if (value <= 0) return 1;
  const exp = 10 ** Math.floor(Math.log10(value));
  for (const m of [1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) if (m * exp >= value) return m * exp;
  return 10 * exp;
}

/** What uPlot draws: stacked bars become cumulative sums, drawn from the top of each stack down so each
 * lower part paints over the taller bar behind it. `order[i]` is the index in `series` of drawn series i. */
export function chartData(series: Series[]): { drawn: number[][]; order: number[]; max: number } {
  const n = Math.max(0, ...series.map((s) => s.values.length));
  const cumulative = series.map((s) => s.values.map((v) => v || 0));
  const stacks = new Map<string, number[]>();
  series.forEach((s, i) => {
    if (s.kind !== "bar" || !s.stack) return;
    const below = stacks.get(s.stack) ?? new Array(n).fill(0);
    cumulative[i] = below.map((b, j) => b + (s.values[j] || 0));
    stacks.set(s.stack, cumulative[i]);
  });
  // Within a stack, the last series is the tallest: draw it first.
  const order = series.map((_, i) => i).sort((a, b) => {
    const sa = series[a].stack;
    const sb = series[b].stack;
    if (sa && sa === sb) return b - a;
    return a - b;
  });
  const max = Math.max(0, ...cumulative.flat());
  return { drawn: order.map((i) => cumulative[i]), order, max };
}

export function TimeChart({
  times,
  series,
  height = 190,
  format = (v: number) => v.toLocaleString(),
  timeFormat,
  yMax,
  minTop = 1,
  integer = false,
  testId,
}: {
  times: number[];
  series: Series[];
  height?: number;
  format?: (value: number) => string;
  timeFormat: (t: number) => string;
  yMax?: number;
  /** The smallest top of the y axis (an empty chart still gets a sensible scale). */
  minTop?: number;
  /** Counts: the axis shows whole numbers only. */
  integer?: boolean;
  testId?: string;
}) {
  const box = useRef<HTMLDivElement>(null);
  const target = useRef<HTMLDivElement>(null);
  const width = useWidth(box);
  const [hover, setHover] = useState<{ index: number; left: number } | null>(null);

  useEffect(() => {
    const element = target.current;
    if (!element) return;
    const { drawn, order, max } = chartData(series);
    let top = yMax ?? niceMax(Math.max(max, minTop));
    if (integer) top = Math.max(2, Math.ceil(top / 2) * 2);
    const slot = times.length > 1 ? (times[1] - times[0]) / 1000 : 60;
    const bars = uPlot.paths.bars!({ size: [0.78, 28], gap: 1 });
    const options: uPlot.Options = {
      width: Math.max(10, width),
      height,
      legend: { show: false },
      cursor: { points: { show: false }, drag: { x: false, y: false } },
      padding: [12, 12, 0, 0],
      scales: {
        x: { time: true, range: (_u, min, maxX) => [min - slot / 2, maxX + slot / 2] },
        y: { range: () => [0, top] },
      },
      axes: [
        { values: (_u, splits) => splits.map((t) => timeFormat(t * 1000)), grid: { show: false }, size: 28, font: "10.5px system-ui, sans-serif", stroke: "#6b7280", ticks: { show: false } },
        {
          values: (_u, splits) => splits.map((v) => format(v)),
          incrs: integer ? [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000, 100_000] : undefined,
          splits: () => [0, top / 2, top],
          grid: { stroke: "#eef0f3", width: 1 },
          size: 52,
          font: "10.5px system-ui, sans-serif",
          stroke: "#6b7280",
          ticks: { show: false },
        },
      ],
      series: [
        {},
        ...order.map((i) => {
          const s = series[i];
          return s.kind === "bar"
            ? { label: s.label, stroke: s.color, fill: s.color, width: 0, paths: bars, points: { show: false } }
            : { label: s.label, stroke: s.color, width: 1.8, fill: s.kind === "area" ? `${s.color}29` : undefined, points: { show: false } };
        }),
      ],
      hooks: {
        setCursor: [
          (u) => {
            const index = u.cursor.idx;
            setHover(index === null || index === undefined ? null : { index, left: u.valToPos(u.data[0][index], "x") });
          },
        ],
      },
    };
    const plot = new uPlot(options, [times.map((t) => t / 1000), ...drawn], element);
    return () => plot.destroy();
  }, [width, height, times.join(","), JSON.stringify(series), yMax, minTop, integer]);

  return (
    <div class="chart" ref={box} data-testid={testId} data-chart="uplot" onMouseLeave={() => setHover(null)}>
      <div ref={target} />
      {hover !== null && hover.index < times.length && (
        <div class="chart-tip" style={{ left: `${Math.min(Math.max(hover.left + 12, 0), width - 190)}px` }} data-testid="chart-tip">
          <div class="chart-tip-time">{timeFormat(times[hover.index])}</div>
          {series.map((s) => (
            <div class="chart-tip-row" key={s.key}>
              <span class="swatch" style={{ background: s.color }} />
              <span class="chart-tip-label">{s.label}</span>
              <span class="chart-tip-value">{format(s.values[hover.index] || 0)}</span>
            </div>
          ))}
        </div>
      )}
    </div>
  );
}

export function Legend({ series }: { series: { label: string; color: string }[] }) {
  return (
    <div class="legend">
      {series.map((s) => (
        <span class="legend-item" key={s.label}>
          <span class="swatch" style={{ background: s.color }} />
          {s.label}
        </span>
      ))}
    </div>
  );
}

/** Horizontal bars, one per row: label, bar to scale, value. */
export function BarList({ rows, format, color = "#6366f1", testId }: { rows: { label: string; value: number; sub?: string }[]; format: (v: number) => string; color?: string; testId?: string }) {
  const max = niceMax(Math.max(0, ...rows.map((r) => r.value)));
  return (
    <div class="barlist" data-testid={testId}>
      {rows.map((r) => (
        <div class="barlist-row" key={r.label} data-testid="barlist-row" data-label={r.label} data-value={String(r.value)}>
          <div class="barlist-label" title={r.label}>
            {r.label}
            {r.sub && <span class="barlist-sub">{r.sub}</span>}
          </div>
          <div class="barlist-track">
            <div class="barlist-fill" style={{ width: `${Math.max(0.5, (r.value / max) * 100)}%`, background: color }} />
          </div>
          <div class="barlist-value">{format(r.value)}</div>
        </div>
      ))}
    </div>
  );
}
