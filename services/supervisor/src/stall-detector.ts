// Stall detection and failover. Every SUPERVISOR_CHECK_MS the supervisor looks at each assigned stream:
// - worker_lost: its worker's heartbeats (~5/s) stopped for SUPERVISOR_STALL_MS;
// - stalled: the worker is alive but the stream's encoder progress (media time in the heartbeat) has not
//   advanced for SUPERVISOR_STALL_MS although source data kept arriving after it stopped.
// A source stall (the streamer's uplink) is not a transcoder fault. The test is causal, not a race between
// two timers: the encoder is blamed only if source data has been flowing continuously (no gap over
// FLOWING_GAP_MS) for longer than the stall threshold while its progress stood still, i.e. it had input
// and did nothing with it. After a source stall the clock restarts when the data flows again. On a fault the
// stream moves to a standby at a new epoch (the assigner's compare-and-set), and a `failover` event
// records the detection and switch times. Liveness comes from heartbeats on core NATS, never KV TTLs.
import { randomUUID } from 'node:crypto';
import { type NatsConnection, type OrderedPublisher, subscribeValidated, watchKv } from '@live/bus';
import {
  type AssignmentRecord,
  assignmentRecord,
  buckets,
  ingestHealth,
  lifecycleEvent,
  subjects,
} from '@live/contracts';
import type { Logger } from 'pino';
import type { Counter } from 'prom-client';
import type { Assigner } from './assigner.js';
import type { WorkerPool } from './worker-pool.js';

/** A source silent longer than this is not "flowing" (ingest reports every 200 ms). */
const FLOWING_GAP_MS = 300;

interface Watched {
  record: AssignmentRecord;
  /** When this epoch's assignment was seen (start grace counts from here). */
  since: number;
}

export interface StallDetectorOptions {
  nc: NatsConnection;
  /** Heartbeats come through the pool (validated once per process). */
  pool: WorkerPool;
  logger: Logger;
  assigner: Assigner;
  events: OrderedPublisher;
  stallMs: number;
  startGraceMs: number;
  checkMs: number;
  metrics: { failovers: Counter };
}

export class StallDetector {
  private readonly assignments = new Map<string, Watched>();
  /** Per stream: the epoch and media time last reported, and when it last advanced. */
  private readonly progress = new Map<string, { epoch: number; mediaTimeMs: number; advancedAt: number }>();
  /** Per stream: since when source data has been arriving without a gap (Infinity while it is not). */
  private readonly flowingSince = new Map<string, { since: number; reportedAt: number }>();
  private readonly inFlight = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private watch: { stop(): void } | undefined;
  private readonly subscriptions: { unsubscribe(): void }[] = [];
  private readonly log: Logger;

  constructor(private readonly o: StallDetectorOptions) {
    this.log = o.logger.child({ component: 'stall-detector' });
  }

  async start(): Promise<void> {
    const { nc, logger } = this.o;
    const stopBeats = this.o.pool.onBeat((beat, now) => {
      for (const s of beat.streams) {
        const previous = this.progress.get(s.streamId);
        if (!previous || previous.epoch !== s.epoch) {
          // Until the encoder has produced media, the start grace applies (ffmpeg takes ~1 s to start).
          if (s.mediaTimeMs > 0)
            this.progress.set(s.streamId, { epoch: s.epoch, mediaTimeMs: s.mediaTimeMs, advancedAt: now });
        } else if (s.mediaTimeMs > previous.mediaTimeMs) {
          previous.mediaTimeMs = s.mediaTimeMs;
          previous.advancedAt = now;
        }
      }
    });
    const sources = subscribeValidated({
      nc,
      logger,
      subject: subjects.allIngestHealth,
      schema: ingestHealth,
      name: 'stall-detector-sources',
      handler: (health) => {
        const now = Date.now();
        const previous = this.flowingSince.get(health.streamId)?.since ?? Number.POSITIVE_INFINITY;
        const flowing = health.state !== 'reconnecting' && health.silentForMs <= FLOWING_GAP_MS;
        const since = !flowing
          ? Number.POSITIVE_INFINITY
          : Number.isFinite(previous)
            ? previous
            : now - health.silentForMs;
        this.flowingSince.set(health.streamId, { since, reportedAt: now });
      },
    });
    this.subscriptions.push({ unsubscribe: stopBeats }, sources);
    this.watch = await watchKv({
      nc,
      logger,
      bucket: buckets.assignments,
      schema: assignmentRecord,
      onPut: (record) => this.remember(record),
    });
    this.timer = setInterval(() => this.check(), this.o.checkMs);
  }

  stop(): void {
    clearInterval(this.timer);
    this.watch?.stop();
    for (const subscription of this.subscriptions.splice(0)) subscription.unsubscribe();
  }

  private remember(record: AssignmentRecord): void {
    const current = this.assignments.get(record.streamId);
    if (current && current.record.epoch >= record.epoch) return;
    this.assignments.set(record.streamId, { record, since: Date.now() });
  }

  private check(): void {
    const now = Date.now();
    for (const { record, since } of this.assignments.values()) {
      if (record.state !== 'assigned' || this.inFlight.has(record.streamId)) continue;
      const beat = Math.max(this.o.pool.lastSeenAt(record.workerId), since);
      if (now - beat > this.o.stallMs) {
        void this.failover(record, 'worker_lost', now - beat);
        continue;
      }
      const progress = this.progress.get(record.streamId);
      // No progress yet for this epoch: ffmpeg gets SUPERVISOR_START_GRACE_MS to start.
      const lastSign =
        progress?.epoch === record.epoch ? progress.advancedAt : since + this.o.startGraceMs - this.o.stallMs;
      const source = this.flowingSince.get(record.streamId);
      // A stale report (ingest quiet for a second) proves nothing about the source.
      if (!source || now - source.reportedAt > 1000) continue;
      // Evidence, not a timer race with worker_lost: a heartbeat received more than the threshold after
      // the encoder got stuck, still without progress, says the worker lives and its encoder does not.
      const stuckSince = Math.max(lastSign, source.since);
      if (beat - stuckSince > this.o.stallMs) void this.failover(record, 'stalled', now - lastSign);
    }
  }

  private async failover(
    record: AssignmentRecord,
    reason: 'worker_lost' | 'stalled',
    detectionMs: number,
  ): Promise<void> {
    this.inFlight.add(record.streamId);
    const decidedAt = Date.now();
    this.log.warn(
      { streamId: record.streamId, workerId: record.workerId, epoch: record.epoch, reason, detectionMs },
      'transcoder fault: failing over',
    );
    try {
      const next = await this.o.assigner.assign(record.streamId, record.source, [record.workerId]);
      const switchMs = Date.now() - decidedAt;
      this.remember(next);
      this.o.metrics.failovers.inc({ reason });
      const event = {
        id: randomUUID(),
        type: 'failover' as const,
        streamId: record.streamId,
        sessionId: 'supervisor',
        at: new Date().toISOString(),
        fromWorker: record.workerId,
        toWorker: next.workerId,
        reason,
        epoch: next.epoch,
        detectionMs: Math.round(detectionMs),
        switchMs,
      };
      void this.o.events.publish(
        lifecycleEvent,
        subjects.streamEvent(record.streamId, 'failover'),
        event,
        event.id,
      );
      this.log.info(
        { streamId: record.streamId, to: next.workerId, epoch: next.epoch, detectionMs, switchMs },
        'failover done',
      );
    } catch (error) {
      this.log.error(
        { streamId: record.streamId, err: (error as Error).message },
        'failover failed, will retry',
      );
    } finally {
      this.inFlight.delete(record.streamId);
    }
  }
}
