// Planned moves, make-before-break: a draining worker's streams (SIGTERM, live.ctl.worker.drain) and an
// operator's live.ctl.stream.move. The new worker starts first, at a new epoch that names the old job in
// `handoverFrom`, so the old worker keeps transcoding and the packager keeps listing its segments; the
// moment the new epoch's first segment is announced (the packager switches to it there, with a
// discontinuity), the old job is revoked. Viewers see no gap: segments keep coming from one worker or the other.
import { randomUUID } from 'node:crypto';
import { bytes, decode, type NatsConnection, type OrderedPublisher, text } from '@live/bus';
import {
  drainReply,
  lifecycleEvent,
  segmentEvent,
  subjects,
  type TranscoderHeartbeat,
} from '@live/contracts';
import { RequestError } from '@live/runtime';
import type { Logger } from 'pino';
import type { Assigner } from './assigner.js';
import type { WorkerPool } from './worker-pool.js';

export interface MoverOptions {
  nc: NatsConnection;
  pool: WorkerPool;
  assigner: Assigner;
  events: OrderedPublisher;
  logger: Logger;
  /** How long the new epoch gets to announce its first segment before the old job is stopped anyway. */
  handoverTimeoutMs: number;
}

export interface MoveResult {
  streamId: string;
  fromWorker: string;
  toWorker: string;
  epoch: number;
  handoverMs: number;
  gapless: boolean;
}

/** A draining worker's stream whose move failed (no standby) is tried again after this long. */
const DRAIN_RETRY_MS = 2000;

export class Mover {
  private readonly moving = new Set<string>();
  private readonly lastDrainAttempt = new Map<string, number>();
  private stopBeats: (() => void) | undefined;
  private readonly log: Logger;

  constructor(private readonly o: MoverOptions) {
    this.log = o.logger.child({ component: 'mover' });
  }

  /** Moves the streams of every worker whose heartbeat says `draining`. */
  start(): void {
    this.stopBeats = this.o.pool.onBeat((beat) => {
      if (beat.draining) this.drainStep(beat);
    });
  }

  stop(): void {
    this.stopBeats?.();
  }

  /**
   * Operator drain: asks the worker to drain (it then reports `draining` in its heartbeats, and drainStep
   * moves its streams one by one). Returns the streams that will move.
   */
  async drainWorker(workerId: string): Promise<string[]> {
    const reply = await this.o.nc
      .request(subjects.ctl.transcoderDrain(workerId), bytes('{}'), { timeout: 2000 })
      .catch(() => {
        throw new RequestError(`worker ${workerId} did not answer (unknown or not running)`, 404);
      });
    const decoded = decode(drainReply, reply.data);
    if (!decoded.ok) throw new RequestError(`worker ${workerId} refused: ${text(reply.data)}`, 502);
    return decoded.value.streams;
  }

  private drainStep(beat: TranscoderHeartbeat): void {
    const now = Date.now();
    for (const s of beat.streams) {
      if (s.state === 'stopping' || this.moving.has(s.streamId)) continue;
      if (now - (this.lastDrainAttempt.get(s.streamId) ?? 0) < DRAIN_RETRY_MS) continue;
      this.lastDrainAttempt.set(s.streamId, now);
      void this.move(s.streamId, 'drain', { fromWorker: beat.workerId, fromEpoch: s.epoch }).catch(
        (error: Error) =>
          this.log.warn(
            { streamId: s.streamId, workerId: beat.workerId, err: error.message },
            'could not move a stream off a draining worker yet',
          ),
      );
    }
  }

  /**
   * Moves one stream, make-before-break. `expect` (drain) skips the move when the stream has already left
   * that worker/epoch; `toWorker` (operator) names the destination.
   */
  async move(
    streamId: string,
    reason: 'drain' | 'operator',
    options: { toWorker?: string; fromWorker?: string; fromEpoch?: number } = {},
  ): Promise<MoveResult> {
    if (this.moving.has(streamId)) throw new RequestError(`${streamId} is already being moved`, 409);
    this.moving.add(streamId);
    try {
      return await this.handover(streamId, reason, options);
    } finally {
      this.moving.delete(streamId);
    }
  }

  private async handover(
    streamId: string,
    reason: 'drain' | 'operator',
    options: { toWorker?: string; fromWorker?: string; fromEpoch?: number },
  ): Promise<MoveResult> {
    const current = await this.o.assigner.current(streamId);
    if (current?.record.state !== 'assigned')
      throw new RequestError(`${streamId} is not live (no assignment)`, 404);
    const old = current.record;
    if (options.fromWorker && (old.workerId !== options.fromWorker || old.epoch !== options.fromEpoch))
      throw new RequestError(
        `${streamId} has already moved (now epoch ${old.epoch} on ${old.workerId})`,
        409,
      );
    if (options.toWorker === old.workerId)
      throw new RequestError(`${streamId} already runs on ${options.toWorker}`, 409);
    const decidedAt = Date.now();
    // Listen before assigning: the first segment can come quickly.
    const seenEpochs = new Set<number>();
    const waiters = new Map<number, () => void>();
    const subscription = this.o.nc.subscribe(subjects.mediaSegment(streamId), {
      callback: (_error, m) => {
        const d = decode(segmentEvent, m.data);
        if (!d.ok || d.value.kind !== 'media') return;
        seenEpochs.add(d.value.epoch);
        waiters.get(d.value.epoch)?.();
      },
    });
    const firstSegment = (epoch: number) =>
      new Promise<boolean>((resolve) => {
        if (seenEpochs.has(epoch)) return resolve(true);
        const timer = setTimeout(() => resolve(false), this.o.handoverTimeoutMs);
        waiters.set(epoch, () => {
          clearTimeout(timer);
          resolve(true);
        });
      });
    try {
      const next = await this.o.assigner
        .assign(streamId, old.source, {
          exclude: [old.workerId],
          ...(options.toWorker ? { onlyWorker: options.toWorker } : {}),
          handoverFrom: { workerId: old.workerId, epoch: old.epoch },
        })
        .catch((error: Error) => {
          throw new RequestError(
            options.toWorker
              ? `${options.toWorker} cannot take ${streamId}: ${error.message}`
              : `no standby can take ${streamId}: ${error.message}`,
            503,
          );
        });
      const switchMs = Date.now() - decidedAt;
      const gapless = await firstSegment(next.epoch);
      const handoverMs = Date.now() - decidedAt;
      // Now (or after the timeout) the old job goes: its later segments are older than the listed epoch.
      await this.o.assigner.revoke(old);
      const result: MoveResult = {
        streamId,
        fromWorker: old.workerId,
        toWorker: next.workerId,
        epoch: next.epoch,
        handoverMs,
        gapless,
      };
      (gapless ? this.log.info : this.log.warn).call(
        this.log,
        { ...result, reason, switchMs },
        gapless ? 'stream moved without a gap' : 'stream moved, but the new epoch had no segment in time',
      );
      const event = {
        id: randomUUID(),
        type: 'moved' as const,
        streamId,
        sessionId: 'supervisor',
        at: new Date().toISOString(),
        fromWorker: old.workerId,
        toWorker: next.workerId,
        reason,
        fromEpoch: old.epoch,
        epoch: next.epoch,
        switchMs,
        handoverMs,
        gapless,
      };
      void this.o.events.publish(lifecycleEvent, subjects.streamEvent(streamId, 'moved'), event, event.id);
      return result;
    } finally {
      subscription.unsubscribe();
    }
  }
}
