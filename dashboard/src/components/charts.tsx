// Hand-written SVG charts: time series (bars, stacked bars, lines, areas) with a hover readout, and
// horizontal bars. No chart library: a few hundred lines cover what the metrics screen needs.
import type { JSX } from "preact";
import { useRef, useState } from "preact/hooks";
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

const PAD = { top: 12, right: 12, bottom: 24, left: 46 };

export function niceMax(value: number): number {
  if (value <= 0) return 1;
  const exp = 10 ** Math.floor(Math.log10(value));
  for (const m of [1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) if (m * exp >= value) return m * exp;
  return 10 * exp;
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
  const width = useWidth(box);
  const [hover, setHover] = useState<number | null>(null);
  const n = times.length;
  const plotW = Math.max(10, width - PAD.left - PAD.right);
  const plotH = height - PAD.top - PAD.bottom;

  const stacks = new Map<string, number[]>();
  let max = 0;
  for (const s of series) {
    if (s.kind === "bar" && s.stack) {
      const sums = stacks.get(s.stack) ?? new Array(n).fill(0);
      s.values.forEach((v, i) => (sums[i] += v || 0));
      stacks.set(s.stack, sums);
      max = Math.max(max, ...sums);
    } else {
      max = Math.max(max, ...s.values.map((v) => v || 0));
    }
  }
  let top = yMax ?? niceMax(Math.max(max, minTop));
  if (integer) top = Math.max(2, Math.ceil(top / 2) * 2);
  const y = (v: number) => PAD.top + plotH - (Math.min(v, top) / top) * plotH;
  const slot = plotW / Math.max(n, 1);
  const x = (i: number) => PAD.left + slot * i + slot / 2;
  const barSeries = series.filter((s) => s.kind === "bar");
  const groups = [...new Set(barSeries.map((s) => s.stack ?? s.key))];
  const barW = Math.max(1, Math.min(28, (slot * 0.78) / Math.max(groups.length, 1)));

  const yTicks = [0, top / 2, top];
  const xEvery = Math.max(1, Math.ceil(n / Math.max(2, Math.floor(plotW / 90))));

  const bars: JSX.Element[] = [];
  const offsets = new Map<string, number[]>();
  for (const s of barSeries) {
    const group = s.stack ?? s.key;
    const g = groups.indexOf(group);
    const base = offsets.get(group) ?? new Array(n).fill(0);
    s.values.forEach((v, i) => {
      if (!v) return;
      const x0 = x(i) - (barW * groups.length) / 2 + g * barW;
      const y0 = y(base[i] + v);
      const h = y(base[i]) - y0;
      bars.push(<rect key={`${s.key}-${i}`} x={x0 + 0.5} y={y0} width={Math.max(1, barW - 1)} height={Math.max(h, 0.5)} fill={s.color} rx={barW > 6 ? 1.5 : 0} />);
      base[i] += v;
    });
    offsets.set(group, base);
  }

  const paths = series
    .filter((s) => s.kind !== "bar")
    .map((s) => {
      const points = s.values.map((v, i) => `${x(i).toFixed(1)},${y(v || 0).toFixed(1)}`);
      if (points.length === 0) return null;
      const line = `M${points.join("L")}`;
      return (
        <g key={s.key}>
          {s.kind === "area" && <path d={`${line}L${x(n - 1).toFixed(1)},${y(0)}L${x(0).toFixed(1)},${y(0)}Z`} fill={s.color} opacity={0.16} />}
          <path d={line} fill="none" stroke={s.color} stroke-width={1.8} stroke-linejoin="round" stroke-linecap="round" />
        </g>
      );
    });

  const onMove = (e: MouseEvent) => {
    const rect = (e.currentTarget as SVGElement).getBoundingClientRect();
    const i = Math.floor((e.clientX - rect.left - PAD.left) / slot);
    setHover(i >= 0 && i < n ? i : null);
  };

  return (
    <div class="chart" ref={box} data-testid={testId}>
      <svg width={width} height={height} onMouseMove={onMove} onMouseLeave={() => setHover(null)} role="img">
        {yTicks.map((t) => (
          <g key={t}>
            <line x1={PAD.left} x2={PAD.left + plotW} y1={y(t)} y2={y(t)} class="chart-grid" />
            <text x={PAD.left - 8} y={y(t) + 4} text-anchor="end" class="chart-label">
              {format(t)}
            </text>
          </g>
        ))}
        {times.map((t, i) =>
          i % xEvery === 0 ? (
            <text key={t} x={x(i)} y={height - 6} text-anchor="middle" class="chart-label">
              {timeFormat(t)}
            </text>
          ) : null,
        )}
        {hover !== null && <rect x={PAD.left + slot * hover} y={PAD.top} width={slot} height={plotH} class="chart-hover" />}
        {bars}
        {paths}
        {hover !== null &&
          series
            .filter((s) => s.kind !== "bar")
            .map((s) => <circle key={s.key} cx={x(hover)} cy={y(s.values[hover] || 0)} r={3.5} fill="#fff" stroke={s.color} stroke-width={2} />)}
      </svg>
      {hover !== null && (
        <div class="chart-tip" style={{ left: `${Math.min(Math.max(x(hover) + 12, 0), width - 190)}px` }}>
          <div class="chart-tip-time">{timeFormat(times[hover])}</div>
          {series.map((s) => (
            <div class="chart-tip-row" key={s.key}>
              <span class="swatch" style={{ background: s.color }} />
              <span class="chart-tip-label">{s.label}</span>
              <span class="chart-tip-value">{format(s.values[hover] || 0)}</span>
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
        <div class="barlist-row" key={r.label}>
          <div class="barlist-label" title={r.label}>
            {r.label}
            {r.sub && <span class="barlist-sub">{r.sub}</span>}
          </div>
          <svg class="barlist-track" viewBox="0 0 100 10" preserveAspectRatio="none">
            <rect x={0} y={0} width={100} height={10} rx={2} class="barlist-bg" />
            <rect x={0} y={0} width={Math.max(0.5, (r.value / max) * 100)} height={10} rx={2} fill={color} />
          </svg>
          <div class="barlist-value">{format(r.value)}</div>
        </div>
      ))}
    </div>
  );
}
