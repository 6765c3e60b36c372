// What ingest says about each source (live.health.ingest.<streamId>, ~5/s, core NATS), validated once per
// supervisor process: whether data is flowing, and since when, for the stall detector (a source stall is not
// a transcoder fault); and when the source was last heard of at all, to tell a dead ingest from a live one.
import { type NatsConnection, subscribeValidated } from '@live/bus';
import { ingestHealth, subjects } from '@live/contracts';
import type { Logger } from 'pino';

/** A source silent longer than this is not "flowing" (ingest reports every 200 ms). */
const FLOWING_GAP_MS = 300;

export interface SourceState {
  /** Since when data has been arriving without a gap over FLOWING_GAP_MS (Infinity while it is not). */
  flowingSince: number;
  /** When the last health report arrived. */
  reportedAt: number;
  /** When the publisher last sent a byte (report arrival minus its silentForMs, on this process's clock). */
  lastDataAt: number;
}

export class SourceHealth {
  private readonly sources = new Map<string, SourceState>();
  private readonly subscription: { unsubscribe(): void };

  constructor(nc: NatsConnection, logger: Logger) {
    this.subscription = subscribeValidated({
      nc,
      logger,
      subject: subjects.allIngestHealth,
      schema: ingestHealth,
      name: 'supervisor-sources',
      handler: (health) => {
        const now = Date.now();
        const previous = this.sources.get(health.streamId)?.flowingSince ?? Number.POSITIVE_INFINITY;
        const flowing = health.state !== 'reconnecting' && health.silentForMs <= FLOWING_GAP_MS;
        const flowingSince = !flowing
          ? Number.POSITIVE_INFINITY
          : Number.isFinite(previous)
            ? previous
            : now - health.silentForMs;
        this.sources.set(health.streamId, {
          flowingSince,
          reportedAt: now,
          lastDataAt: now - health.silentForMs,
        });
      },
    });
  }

  get(streamId: string): SourceState | undefined {
    return this.sources.get(streamId);
  }

  /** An ingest reported on this stream within `withinMs` (it holds the publisher or awaits its reconnect). */
  heardOf(streamId: string, withinMs: number): boolean {
    const s = this.sources.get(streamId);
    return !!s && Date.now() - s.reportedAt <= withinMs;
  }

  stop(): void {
    this.subscription.unsubscribe();
  }
}
