// Stall detection and failover. The supervisor looks at each assigned stream when a fault could next be due:
// - worker_lost: its worker's heartbeats (~5/s) stopped for SUPERVISOR_STALL_MS;
// - stalled: the worker is alive but the stream's encoder progress (media time in the heartbeat) has not
//   advanced for SUPERVISOR_STALL_MS although source data kept arriving after it stopped.
// A source stall (the streamer's uplink) is not a transcoder fault. The test is causal, not a race between
// two timers: the encoder is blamed only if, while its progress stood still for the threshold, source data
// kept arriving (ingest saw bytes more than SOURCE_EVIDENCE_MS after the encoder's last progress, with no
// gap in between) and the worker kept beating (a heartbeat after that point, still without progress): it
// had input and did nothing with it. After a source stall the clock restarts when the data flows again. On a fault the
// stream moves to a standby at a new epoch (the assigner's compare-and-set), and a `failover` event
// records the detection and switch times. Liveness comes from heartbeats on core NATS, never KV TTLs.
// Ingest loss: when no ingest has reported on an assigned stream for SUPERVISOR_SOURCE_LOST_MS (the ingest
// holding it died, and the streamer came back nowhere), the supervisor ends the stream (`ended`,
// ingest_lost), as that ingest would have after its reconnect grace.
// When to look: each rule is a deadline (last heartbeat + SUPERVISOR_STALL_MS, last progress + the same, last
// report + SUPERVISOR_SOURCE_LOST_MS), and one timer is set for the earliest. A healthy stream's deadlines move
// with every heartbeat, so the timer wakes this process ~2-3 times a second instead of at a fixed 10/s
// (each wake-up costs CPU on a small VM), and a fault is seen at its deadline, not up to a period later.
// Where a message rather than time could decide (a source stalled or quiet, a stall waiting for evidence, a
// failover to retry), it looks every SUPERVISOR_CHECK_MS, as before. A streamer who reconnects to another
// ingest in time gets a `started` there, a new epoch, and the same playlist continues after a discontinuity.
import { randomUUID } from 'node:crypto';
import { type NatsConnection, type OrderedPublisher, watchKv } from '@live/bus';
import { type AssignmentRecord, assignmentRecord, buckets, lifecycleEvent, subjects } from '@live/contracts';
import type { Logger } from 'pino';
import type { Counter } from 'prom-client';
import type { Assigner } from './assigner.js';
import type { SourceHealth } from './source-health.js';
import type { WorkerPool } from './worker-pool.js';

/** The longest time between two looks (nothing assigned, or only far deadlines): a safety net. */
const MAX_WAIT_MS = 1000;

/**
 * How much later than the encoder's last progress source data (and a heartbeat) must have arrived to blame
 * the encoder: more than one report period (200 ms), so that a source that stopped first never counts.
 */
const SOURCE_EVIDENCE_MS = 250;

interface Watched {
  record: AssignmentRecord;
  /** When this epoch's assignment was seen (start grace counts from here). */
  since: number;
}

export interface StallDetectorOptions {
  nc: NatsConnection;
  /** Heartbeats come through the pool (validated once per process). */
  pool: WorkerPool;
  sources: SourceHealth;
  logger: Logger;
  assigner: Assigner;
  events: OrderedPublisher;
  stallMs: number;
  startGraceMs: number;
  checkMs: number;
  sourceLostMs: number;
  metrics: { failovers: Counter };
}

export class StallDetector {
  private readonly assignments = new Map<string, Watched>();
  /** Per stream: the epoch and media time last reported, and when it last advanced. */
  private readonly progress = new Map<string, { epoch: number; mediaTimeMs: number; advancedAt: number }>();
  private readonly inFlight = new Set<string>();
  /** Streams whose failover found no worker: retried every SUPERVISOR_CHECK_MS, logged once (until it succeeds). */
  private readonly failing = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  /** When the timer fires (Infinity: not set). */
  private nextLookAt = Number.POSITIVE_INFINITY;
  /**
   * When this process last woke from a pause (SIGSTOP, a stalled VM, a starved CPU): a look that comes late
   * finds every heartbeat and source report old because those that came meanwhile are still unread in its
   * socket, and would fail every stream over. Every clock starts again from then instead.
   */
  private resumedAt = 0;
  private stopped = false;
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
        // During a planned move the old worker still reports the older epoch: not this stream's progress.
        if (previous && s.epoch < previous.epoch) continue;
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
    this.subscriptions.push({ unsubscribe: stopBeats });
    this.watch = await watchKv({
      nc,
      logger,
      bucket: buckets.assignments,
      schema: assignmentRecord,
      onPut: (record) => this.remember(record),
    });
    this.lookAt(Date.now() + this.o.checkMs);
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.watch?.stop();
    for (const subscription of this.subscriptions.splice(0)) subscription.unsubscribe();
  }

  private remember(record: AssignmentRecord): void {
    const current = this.assignments.get(record.streamId);
    if (current && current.record.epoch > record.epoch) return;
    // The same epoch again: the stream ended (state), or this process's own failover result seen twice.
    const sameEpoch = current?.record.epoch === record.epoch;
    this.assignments.set(record.streamId, { record, since: sameEpoch ? current.since : Date.now() });
    // Ended, or a newer epoch (an ingest-loss ending the consumer declined: the streamer came back): whatever
    // was under way for the old one is over, and the new one is watched from now on.
    if (record.state === 'ended' || !sameEpoch) this.inFlight.delete(record.streamId);
    // New deadlines (a new epoch's start grace, a new worker's heartbeats): work them out now. Not "in
    // SUPERVISOR_CHECK_MS": with a period longer than SUPERVISOR_STALL_MS, a worker lost right after its
    // assignment was seen would be found at that period, past its deadline.
    this.lookAt(Date.now());
  }

  /** Sets the one timer for `at`, unless it already fires sooner. */
  private lookAt(at: number): void {
    if (this.stopped || at >= this.nextLookAt) return;
    clearTimeout(this.timer);
    this.nextLookAt = at;
    this.timer = setTimeout(
      () => {
        if (Date.now() - at > this.o.stallMs / 2) {
          this.resumedAt = Date.now();
          this.log.warn(
            { lateMs: Date.now() - at },
            'woke late (paused or starved): every clock starts again',
          );
        }
        this.nextLookAt = Number.POSITIVE_INFINITY;
        this.lookAt(this.check());
      },
      Math.max(0, at - Date.now()),
    );
  }

  /** Looks at every assigned stream, acts on faults, and returns when to look next. */
  private check(): number {
    const now = Date.now();
    const poll = now + this.o.checkMs;
    let next = now + MAX_WAIT_MS;
    // +1: a rule holds once strictly past its threshold.
    const due = (at: number) => {
      next = Math.min(next, Math.max(at + 1, now + 1));
    };
    for (const { record, since: assignedSince } of this.assignments.values()) {
      const since = Math.max(assignedSince, this.resumedAt);
      if (record.state !== 'assigned' || this.inFlight.has(record.streamId)) continue;
      // Only the ingest holding the assigned source: one the streamer has left says nothing about it.
      const source = this.o.sources.get(record.streamId, record.source.ingestId);
      const heardAt = Math.max(source?.reportedAt ?? 0, since);
      if (now - heardAt > this.o.sourceLostMs) {
        void this.endLost(record, now - heardAt);
        continue;
      }
      due(heardAt + this.o.sourceLostMs);
      const beat = Math.max(this.o.pool.lastSeenAt(record.workerId), since);
      if (now - beat > this.o.stallMs) {
        void this.failover(record, 'worker_lost', now - beat);
        continue;
      }
      due(beat + this.o.stallMs);
      const progress = this.progress.get(record.streamId);
      // No progress yet for this epoch: ffmpeg gets SUPERVISOR_START_GRACE_MS to start.
      const lastSign =
        progress?.epoch === record.epoch ? progress.advancedAt : since + this.o.startGraceMs - this.o.stallMs;
      // A stale report (ingest quiet for a second) proves nothing about the source; the next one may.
      if (!source || now - source.reportedAt > 1000) {
        due(poll);
        continue;
      }
      const stuckSince = Math.max(lastSign, source.flowingSince);
      if (now - stuckSince <= this.o.stallMs) {
        // Not flowing (stuckSince Infinity): data flowing again starts the clock, so look as before.
        due(Number.isFinite(stuckSince) ? stuckSince + this.o.stallMs : poll);
        continue;
      }
      if (source.lastDataAt - stuckSince > SOURCE_EVIDENCE_MS && beat - stuckSince > SOURCE_EVIDENCE_MS)
        void this.failover(record, 'stalled', now - lastSign);
      // Past the threshold without the evidence yet: the next report or heartbeat may bring it.
      else due(poll);
    }
    return next;
  }

  /** No ingest holds the stream any more: end it, as the lost ingest would have after its grace. */
  private async endLost(record: AssignmentRecord, silentMs: number): Promise<void> {
    this.inFlight.add(record.streamId);
    this.log.warn(
      { streamId: record.streamId, epoch: record.epoch, silentMs },
      'no ingest holds this stream any more (and the streamer did not come back): ending it',
    );
    const event = {
      id: `${record.streamId}-${record.epoch}-ingest-lost`,
      type: 'ended' as const,
      streamId: record.streamId,
      sessionId: 'supervisor',
      at: new Date().toISOString(),
      reason: 'ingest_lost' as const,
      durationMs: Math.max(0, Date.now() - Date.parse(record.assignedAt)),
    };
    try {
      await this.o.events.publish(
        lifecycleEvent,
        subjects.streamEvent(record.streamId, 'ended'),
        event,
        event.id,
      );
      // The consumer's `ended` handling marks the assignment ended; until the watch shows it, do not repeat.
    } catch (error) {
      this.log.error(
        { streamId: record.streamId, err: (error as Error).message },
        'could not end the stream',
      );
      this.inFlight.delete(record.streamId);
      this.lookAt(Date.now() + this.o.checkMs);
    }
  }

  private async failover(
    record: AssignmentRecord,
    reason: 'worker_lost' | 'stalled',
    detectionMs: number,
  ): Promise<void> {
    this.inFlight.add(record.streamId);
    const decidedAt = Date.now();
    const retry = this.failing.has(record.streamId);
    (retry ? this.log.debug : this.log.warn).call(
      this.log,
      { streamId: record.streamId, workerId: record.workerId, epoch: record.epoch, reason, detectionMs },
      'transcoder fault: failing over',
    );
    try {
      const next = await this.o.assigner.assign(record.streamId, record.source, {
        exclude: [record.workerId],
      });
      const switchMs = Date.now() - decidedAt;
      this.failing.delete(record.streamId);
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
      if (!retry)
        this.log.error(
          { streamId: record.streamId, err: (error as Error).message },
          'failover failed: retrying every SUPERVISOR_CHECK_MS until a worker can take the stream',
        );
      this.failing.add(record.streamId);
    } finally {
      this.inFlight.delete(record.streamId);
      // Whatever happened, look again: a failed failover is retried, a done one has new deadlines.
      this.lookAt(Date.now() + this.o.checkMs);
    }
  }
}
