// What a chaos run measured, as data (the JSON `npm run chaos` prints) and as the table a person reads.
export const FAULT_KINDS = ['kill', 'stop', 'nats', 'publisher', 'malformed'] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];
export const INVARIANTS = [
  'endlist',
  'backwards',
  'older_epoch',
  'lost_segment',
  'chat_lost',
  'untranscoded',
  'process_down',
] as const;
export type Invariant = (typeof INVARIANTS)[number];

/** The value at quantile q (0..1) of `values`, by the nearest-rank method; null when there are none. */
export const quantile = (values: number[], q: number): number | null => {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] ?? null;
};

export interface GapStats {
  p50: number | null;
  p95: number | null;
  max: number | null;
}

export interface ChaosReport {
  seconds: number;
  faults: Record<
    FaultKind,
    {
      count: number;
      targets: string[];
      /**
       * Each fault's target and the gap at it, in order; null where every stream was still in a gap an earlier
       * fault opened (not counted in the statistics).
       */
      each: { target: string; segmentGapMs: number | null; partGapMs: number | null }[];
      segmentGapMs: GapStats;
      partGapMs: GapStats;
      reconnectToSegmentMs?: GapStats;
    }
  >;
  invariants: Record<Invariant, number>;
  violations: string[];
  restarts: Record<string, number>;
  /** CPU seconds per process (with its children) over the run, and the average cores the platform used. */
  cpuSeconds: Record<string, number>;
  cpuCores: number;
  publisherDrops: Record<string, number>;
  chat: Record<string, { acked: number; reconnects: number; gaps: number }>;
  playlistReads: number;
  /** Viewer requests (playlists, segments, parts) that failed or were refused: what players would retry. */
  playlistErrors: number;
}

/** The report as a table a person reads. */
export function formatChaosReport(r: ChaosReport): string {
  const ms = (v: number | null) => (v === null ? '-' : String(v));
  const rows = FAULT_KINDS.map((kind) => {
    const f = r.faults[kind];
    const g = (s: GapStats) => `${ms(s.p50)} / ${ms(s.p95)} / ${ms(s.max)}`;
    return `| ${kind.padEnd(9)} | ${String(f.count).padStart(5)} | ${g(f.segmentGapMs).padEnd(20)} | ${g(f.partGapMs).padEnd(20)} | ${f.reconnectToSegmentMs ? g(f.reconnectToSegmentMs) : '-'} |`;
  });
  return [
    `| fault     | count | segment gap ms p50 / p95 / max | part gap ms p50 / p95 / max | reconnect -> segment ms |`,
    `|-----------|-------|----------------------|----------------------|------|`,
    ...rows,
    '',
    'process faults by service (segment gap ms max / part gap ms max, one per fault):',
    ...(['kill', 'stop'] as const).flatMap((kind) => {
      const byService = new Map<string, string[]>();
      for (const f of r.faults[kind].each) {
        const service = f.target.replace(/-\d+$/, '');
        byService.set(service, [
          ...(byService.get(service) ?? []),
          `${f.segmentGapMs ?? 'overlapped'}/${f.partGapMs ?? 'overlapped'}`,
        ]);
      }
      return [...byService].map(([service, gaps]) => `  ${kind} ${service}: ${gaps.join(', ')}`);
    }),
    '',
    `| invariant | broken |`,
    `|---|---|`,
    ...INVARIANTS.map((i) => `| ${i} | ${r.invariants[i]} |`),
    '',
    `restarts: ${Object.entries(r.restarts)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')}`,
    `CPU: ${r.cpuCores} cores on average over ${Math.round(r.seconds)} s; seconds per process: ${Object.entries(
      r.cpuSeconds,
    )
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')}`,
    `publisher drops: ${JSON.stringify(r.publisherDrops)}; chat: ${JSON.stringify(r.chat)}`,
    `viewer requests: ${r.playlistReads} playlists read, ${r.playlistErrors} requests failed`,
    ...r.violations.map((v) => `violation: ${v}`),
  ].join('\n');
}
