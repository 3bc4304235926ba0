// Usage over time, from the `usage` query: cost or tokens per hour or day, stacked per agent
// or per model, drawn as plain SVG; and the `feedStats` figures as tiles.
import { useEffect, useMemo, useState } from 'preact/hooks';
import { useQuery } from '@urql/preact';
import { graphql, type ResultOf } from './graphql.ts';
import { agentName, useAgents } from './agents.tsx';
import { useStore } from './store.ts';
import { formatCost, formatDay, formatTokens, label, useApi, useOnChange } from './ui.tsx';

const UsageQuery = graphql(`
  query Usage($from: DateTime!, $to: DateTime!, $bucket: UsageBucket!, $groupBy: UsageGroup) {
    usage(from: $from, to: $to, bucket: $bucket, groupBy: $groupBy) {
      bucketStart
      key
      inputTokens
      outputTokens
      tokens
      cost
    }
    feedStats {
      totalActivities
      recent24h
      activeAgents
      totalTokens
      totalCost
      taskRuns
      taskTokens
      taskCost
      tasksByStatus { key count }
    }
  }
`);

type Point = ResultOf<typeof UsageQuery>['usage'][number];
type Stats = ResultOf<typeof UsageQuery>['feedStats'];

type Range = '24h' | '7d' | '30d';
const RANGES: Record<Range, { text: string; bucket: 'HOUR' | 'DAY'; count: number }> = {
  '24h': { text: 'Last 24 hours, hourly', bucket: 'HOUR', count: 24 },
  '7d': { text: 'Last 7 days, daily', bucket: 'DAY', count: 7 },
  '30d': { text: 'Last 30 days, daily', bucket: 'DAY', count: 30 },
};
const HOUR = 3_600_000;
const DAY = 24 * HOUR;
/** How many keys get their own colour; the rest are summed as "other". */
const MAX_SERIES = 7;
const REFRESH_MS = 30_000;

/** The buckets of the range, oldest first, on the server's UTC boundaries. */
function buckets(range: Range, now: number): number[] {
  const { bucket, count } = RANGES[range];
  const size = bucket === 'HOUR' ? HOUR : DAY;
  const last = Math.floor(now / size) * size;
  return Array.from({ length: count }, (_, i) => last - (count - 1 - i) * size);
}

export function Usage() {
  const api = useApi();
  const reconnects = useStore(api.reconnects);
  const { byId } = useAgents();
  const [range, setRange] = useState<Range>('24h');
  const [groupBy, setGroupBy] = useState<'AGENT' | 'MODEL'>('AGENT');
  const [metric, setMetric] = useState<'cost' | 'tokens'>('cost');
  const [now, setNow] = useState(() => Date.now());

  const slots = buckets(range, now);
  const size = RANGES[range].bucket === 'HOUR' ? HOUR : DAY;
  const from = new Date(slots[0] ?? now).toISOString();
  const to = new Date((slots[slots.length - 1] ?? now) + size).toISOString();
  const [{ data, error, fetching }, refetch] = useQuery({
    query: UsageQuery,
    variables: { from, to, bucket: RANGES[range].bucket, groupBy },
  });

  // Usage grows all the time: read it again every half minute (the range moves on with the
  // clock) and after a reconnect.
  useEffect(() => {
    const timer = setInterval(() => {
      setNow(Date.now());
      refetch({ requestPolicy: 'network-only' });
    }, REFRESH_MS);
    return () => clearInterval(timer);
  }, [refetch]);
  useOnChange(reconnects, () => refetch({ requestPolicy: 'network-only' }));

  const name = (key: string | null) => {
    if (key === null) return groupBy === 'MODEL' ? 'unknown model' : 'unknown';
    if (groupBy === 'AGENT') {
      const agent = byId.get(key);
      return agent ? agentName(agent) : key.split(':').pop()?.slice(0, 8) ?? key;
    }
    return key;
  };

  return (
    <section class="usage-view" data-testid="usage">
      {data && <Tiles stats={data.feedStats} />}
      <div class="panel">
        <div class="toolbar">
          <h2>Usage</h2>
          <span class="spacer" />
          <select aria-label="Range" value={range} onChange={(e) => setRange(e.currentTarget.value as Range)}>
            {(Object.keys(RANGES) as Range[]).map((r) => (
              <option value={r}>{RANGES[r].text}</option>
            ))}
          </select>
          <select aria-label="Split by" value={groupBy} onChange={(e) => setGroupBy(e.currentTarget.value as 'AGENT' | 'MODEL')}>
            <option value="AGENT">per agent</option>
            <option value="MODEL">per model</option>
          </select>
          <div class="segmented" role="group" aria-label="Measure">
            <button type="button" class={metric === 'cost' ? 'on' : ''} onClick={() => setMetric('cost')}>
              Cost
            </button>
            <button type="button" class={metric === 'tokens' ? 'on' : ''} onClick={() => setMetric('tokens')}>
              Tokens
            </button>
          </div>
        </div>
        {error && <p class="error">{error.message}</p>}
        {data ? (
          <Chart points={data.usage} slots={slots} hourly={RANGES[range].bucket === 'HOUR'} metric={metric} name={name} />
        ) : (
          fetching && <p class="muted">Loading…</p>
        )}
      </div>
    </section>
  );
}

function Tiles(props: { stats: Stats }) {
  const s = props.stats;
  const byStatus = new Map(s.tasksByStatus.map((c) => [c.key, c.count]));
  const tasks = s.tasksByStatus.reduce((n, c) => n + c.count, 0);
  return (
    <div class="tiles" data-testid="stats">
      <Tile title="Total cost" value={formatCost(s.totalCost)} note={`${formatCost(s.taskCost)} on task runs`} />
      <Tile title="Tokens" value={formatTokens(s.totalTokens)} note={`${formatTokens(s.taskTokens)} on task runs`} />
      <Tile title="Active agents" value={String(s.activeAgents)} />
      <Tile title="Task runs" value={String(s.taskRuns)} />
      <Tile title="Activity, 24 h" value={String(s.recent24h)} note={`${s.totalActivities} in all`} />
      <Tile
        title="Tasks"
        value={String(tasks)}
        note={['TODO', 'IN_PROGRESS', 'REVIEW', 'DONE', 'BLOCKED']
          .filter((k) => byStatus.get(k))
          .map((k) => `${byStatus.get(k)} ${label(k).toLowerCase()}`)
          .join(' · ')}
      />
    </div>
  );
}

function Tile(props: { title: string; value: string; note?: string }) {
  return (
    <div class="tile">
      <div class="tile-title">{props.title}</div>
      <div class="tile-value">{props.value}</div>
      {props.note && <div class="tile-note">{props.note}</div>}
    </div>
  );
}

/** A round upper bound for the axis: 1, 2 or 5 times a power of ten. */
function niceMax(value: number): number {
  if (value <= 0) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 5, 10]) if (step * power >= value) return step * power;
  return 10 * power;
}

const W = 1000;
const H = 260;
const PAD = { left: 56, right: 8, top: 10, bottom: 26 };

function Chart(props: {
  points: Point[];
  slots: number[];
  hourly: boolean;
  metric: 'cost' | 'tokens';
  name: (key: string | null) => string;
}) {
  const { points, slots, metric } = props;
  const value = (p: Point) => (metric === 'cost' ? p.cost : p.tokens);
  const format = metric === 'cost' ? formatCost : formatTokens;

  const model = useMemo(() => {
    // The biggest keys get their own colour, in a fixed order (largest first).
    const totals = new Map<string | null, number>();
    for (const p of points) totals.set(p.key, (totals.get(p.key) ?? 0) + value(p));
    const ranked = [...totals.entries()].sort((a, b) => b[1] - a[1]);
    const own = ranked.slice(0, MAX_SERIES).map(([k]) => k);
    const hasOther = ranked.length > MAX_SERIES;
    const series = [...own.map((k) => ({ key: k, name: props.name(k) })), ...(hasOther ? [{ key: '\u0000other', name: 'other' }] : [])];
    const index = new Map(slots.map((t, i) => [t, i]));
    const stacks = slots.map(() => new Array<number>(series.length).fill(0));
    for (const p of points) {
      const slot = index.get(Date.parse(p.bucketStart));
      if (slot === undefined) continue;
      const at = own.indexOf(p.key);
      const s = at >= 0 ? at : series.length - 1;
      stacks[slot]![s]! += value(p);
    }
    const seriesTotals = series.map((_, s) => stacks.reduce((n, stack) => n + (stack[s] ?? 0), 0));
    const max = niceMax(Math.max(0, ...stacks.map((stack) => stack.reduce((a, b) => a + b, 0))));
    return { series, stacks, max, seriesTotals };
  }, [points, slots, metric, props.name]);

  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  const step = plotW / Math.max(1, slots.length);
  const barW = Math.max(1, step * 0.72);
  const y = (v: number) => PAD.top + plotH - (v / model.max) * plotH;
  const labelEvery = Math.ceil(slots.length / 8);
  const slotLabel = (t: number) =>
    props.hourly ? `${String(new Date(t).getHours()).padStart(2, '0')}:00` : formatDay(new Date(t).toISOString());
  const empty = points.length === 0;

  return (
    <figure class="chart" data-testid="usage-chart">
      <svg viewBox={`0 0 ${W} ${H}`} role="img" aria-label={`${metric} over time`}>
        {[0, 0.25, 0.5, 0.75, 1].map((f) => (
          <g class="grid">
            <line x1={PAD.left} x2={W - PAD.right} y1={y(model.max * f)} y2={y(model.max * f)} />
            <text x={PAD.left - 6} y={y(model.max * f) + 4} text-anchor="end">
              {format(model.max * f)}
            </text>
          </g>
        ))}
        {model.stacks.map((stack, i) => {
          let base = 0;
          const x = PAD.left + i * step + (step - barW) / 2;
          const t = slots[i] ?? 0;
          return (
            <g>
              {stack.map((v, s) => {
                if (v <= 0) return null;
                const top = y(base + v);
                const height = y(base) - top;
                base += v;
                return (
                  <rect class={`series-${s}`} x={x} y={top} width={barW} height={Math.max(0.5, height)}>
                    <title>{`${model.series[s]?.name}: ${format(v)} (${new Date(t).toLocaleString()})`}</title>
                  </rect>
                );
              })}
              {i % labelEvery === 0 && (
                <text class="axis" x={x + barW / 2} y={H - 8} text-anchor="middle">
                  {slotLabel(t)}
                </text>
              )}
            </g>
          );
        })}
        {empty && (
          <text class="axis" x={PAD.left + plotW / 2} y={PAD.top + plotH / 2} text-anchor="middle">
            No usage in this range
          </text>
        )}
      </svg>
      <figcaption class="legend">
        {model.series.map((s, i) => (
          <span class="legend-item">
            <svg viewBox="0 0 10 10" width="10" height="10" aria-hidden="true">
              <rect class={`series-${i}`} width="10" height="10" rx="2" />
            </svg>
            {s.name} <span class="muted">{format(model.seriesTotals[i] ?? 0)}</span>
          </span>
        ))}
      </figcaption>
    </figure>
  );
}
