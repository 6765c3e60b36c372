// Watches how a media playlist advances, as a player reloading it would see it: polls through the origin
// every 50 ms and notes when each media sequence number first appears. The largest interval between two
// new segments is the gap a viewer would see (compared against the segment duration).
import type { Platform } from './platform.js';

export interface Cadence {
  /** Media sequence number -> when it was first listed (ms since epoch), and its URI. */
  seen: Map<number, { at: number; uri: string }>;
  /** Largest interval between two successive newly listed segments, over [from, to] (ms). */
  maxIntervalMs(from?: number, to?: number): number;
  stop(): void;
}

export function watchCadence(p: Platform, streamId: string, rendition: string): Cadence {
  const seen = new Map<number, { at: number; uri: string }>();
  let stopped = false;
  const poll = async () => {
    while (!stopped) {
      const m = await p.media(streamId, rendition).catch(() => null);
      const now = Date.now();
      for (const s of m?.segments ?? [])
        if (!seen.has(s.mediaSequenceNumber)) seen.set(s.mediaSequenceNumber, { at: now, uri: s.uri });
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  void poll();
  return {
    seen,
    maxIntervalMs(from = 0, to = Number.POSITIVE_INFINITY) {
      const times = [...seen.entries()]
        .sort((a, b) => a[0] - b[0])
        .map(([, v]) => v.at)
        .filter((t) => t >= from && t <= to);
      let max = 0;
      for (let i = 1; i < times.length; i++)
        max = Math.max(max, (times[i] as number) - (times[i - 1] as number));
      return max;
    },
    stop() {
      stopped = true;
    },
  };
}
