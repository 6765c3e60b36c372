// Shared by bench/chat.ts and its load processes (bench/chat-load.ts): the IPC messages and a latency
// histogram that merges across processes (0.1 ms buckets up to 1 s, then 10 ms buckets up to 60 s).

/** Which server the load talks to: the platform's chat (`ws`, JSON frames) or the Socket.IO baseline. */
export type Target = 'chat' | 'socketio';

/** Parent -> load process. */
export type Command =
  /** Open this process's connections; `secret` signs the chat's join tokens. */
  | { type: 'connect'; secret: string }
  /** Senders only: send `rate` messages/s in total (0 stops), tagged with `phase`. */
  | { type: 'rate'; rate: number; phase: number }
  /** Open again the connections that closed (a failed step dropped them), so the next step has them all. */
  | { type: 'reconnect' }
  /** Counters so far; `hist`: include the latency histogram of that phase. */
  | { type: 'snapshot'; id: number; hist?: number }
  | { type: 'exit' };

export interface Snapshot {
  /** Connections joined (welcome / connect received) and still open. */
  open: number;
  joined: number;
  failed: number;
  /** Receivers of this process that parse frames and record latency. */
  sampled: number;
  /** Joined connections that closed afterwards, by close code or reason. */
  closed: Record<string, number>;
  /** WebSocket messages every connection received since start (room events only)... */
  frames: number;
  /** ...and the room events in them: deliveries (the chat may batch several events in one frame). */
  events: number;
  /** Per phase: messages the senders sent; sampled receivers' deliveries and latency histogram. */
  sent: Record<number, number>;
  sampledDeliveries: Record<number, number>;
  /** The histogram asked for (bucket, count pairs), else empty. */
  hist: [number, number][];
  maxLatencyMs: Record<number, number>;
  /** Server frames senders got besides room messages (acks, errors), by type or error code. */
  other: Record<string, number>;
  errors: string[];
  /** This load process's own CPU seconds (user + system) so far. */
  cpuSeconds: number;
}

/** Load process -> parent. */
export type Report =
  | { type: 'ready' }
  | { type: 'progress'; joined: number; failed: number }
  | { type: 'connected'; joined: number; failed: number; errors: string[] }
  | { type: 'reconnected'; reopened: number; failed: number }
  | ({ type: 'snapshot'; id: number } & Snapshot);

const FINE = 10_000; // 0.1 ms buckets below 1 s
const COARSE = 5_900; // 10 ms buckets from 1 s to 60 s

export function bucketOf(ms: number): number {
  if (ms < 0) return 0;
  if (ms < 1000) return Math.floor(ms * 10);
  return Math.min(FINE + COARSE - 1, FINE + Math.floor((ms - 1000) / 10));
}

/** The middle of a bucket, in ms. */
export function bucketValue(bucket: number): number {
  if (bucket < FINE) return (bucket + 0.5) / 10;
  return 1000 + (bucket - FINE) * 10 + 5;
}

export class Histogram {
  readonly counts = new Map<number, number>();
  total = 0;

  record(ms: number): void {
    const b = bucketOf(ms);
    this.counts.set(b, (this.counts.get(b) ?? 0) + 1);
    this.total++;
  }

  merge(pairs: [number, number][]): void {
    for (const [b, n] of pairs) {
      this.counts.set(b, (this.counts.get(b) ?? 0) + n);
      this.total += n;
    }
  }

  pairs(): [number, number][] {
    return [...this.counts.entries()];
  }

  percentile(p: number): number {
    if (this.total === 0) return Number.NaN;
    const rank = Math.max(1, Math.ceil((p / 100) * this.total));
    let seen = 0;
    for (const b of [...this.counts.keys()].sort((x, y) => x - y)) {
      seen += this.counts.get(b) ?? 0;
      if (seen >= rank) return bucketValue(b);
    }
    return Number.NaN;
  }
}
