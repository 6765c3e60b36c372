// What ingest says about each source (live.health.ingest.<streamId>, ~5/s, core NATS), validated once per
// supervisor process: whether data is flowing, and since when, for the stall detector (a source stall is not
// a transcoder fault); and when the source was last heard of at all, to tell a dead ingest from a live one.
// Kept per ingest: a streamer who reconnected to another ingest leaves the old one reporting the stream as
// `reconnecting` until its grace runs out, and those reports say nothing about the source now transcoded.
import { type NatsConnection, subscribeValidated } from '@live/bus';
import { type IngestHealth, ingestHealth, subjects } from '@live/contracts';
import type { Logger } from 'pino';

/** A source silent longer than this is not "flowing" (ingest reports every 200 ms). */
const FLOWING_GAP_MS = 300;
/** An ingest that has not reported on a stream for this long is forgotten for that stream. */
const FORGET_MS = 60_000;

export interface SourceState {
  /** Since when data has been arriving without a gap over FLOWING_GAP_MS (Infinity while it is not). */
  flowingSince: number;
  /** When the last health report arrived. */
  reportedAt: number;
  /** When the publisher last sent a byte (report arrival minus its silentForMs, on this process's clock). */
  lastDataAt: number;
  /** The ingest's view: live or stalled (it holds a publisher), reconnecting (it waits for one). */
  state: IngestHealth['state'];
}

export class SourceHealth {
  /** streamId -> ingestId -> what that ingest last said. */
  private readonly sources = new Map<string, Map<string, SourceState>>();
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
        let byIngest = this.sources.get(health.streamId);
        if (!byIngest) {
          byIngest = new Map();
          this.sources.set(health.streamId, byIngest);
        }
        const previous = byIngest.get(health.ingestId)?.flowingSince ?? Number.POSITIVE_INFINITY;
        const flowing = health.state !== 'reconnecting' && health.silentForMs <= FLOWING_GAP_MS;
        const flowingSince = !flowing
          ? Number.POSITIVE_INFINITY
          : Number.isFinite(previous)
            ? previous
            : now - health.silentForMs;
        byIngest.set(health.ingestId, {
          flowingSince,
          reportedAt: now,
          lastDataAt: now - health.silentForMs,
          state: health.state,
        });
        for (const [ingestId, s] of byIngest) if (now - s.reportedAt > FORGET_MS) byIngest.delete(ingestId);
      },
    });
  }

  /** What the ingest holding the stream's assigned source says about it. */
  get(streamId: string, ingestId: string): SourceState | undefined {
    return this.sources.get(streamId)?.get(ingestId);
  }

  /**
   * An ingest reported on this stream within `withinMs`: `ingestId` that one only (it holds the publisher or
   * awaits its reconnect); `publishing`, any ingest that holds a publisher (not one awaiting a reconnect).
   */
  heardOf(streamId: string, withinMs: number, which: { ingestId: string } | { publishing: true }): boolean {
    const now = Date.now();
    for (const [ingestId, s] of this.sources.get(streamId) ?? []) {
      if (now - s.reportedAt > withinMs) continue;
      if ('ingestId' in which ? ingestId === which.ingestId : s.state !== 'reconnecting') return true;
    }
    return false;
  }

  stop(): void {
    this.subscription.unsubscribe();
  }
}
