// Who transcodes what. On `started` (and on a new source after a reconnect or takeover, or a failed
// transcode) the stream gets the next epoch, written to live-assignments with compare-and-set, and the
// chosen worker must acknowledge it; on `ended` the worker is told to stop and the assignment is removed.
// The supervisor is the only writer of assignments.
import { bytes, decode, encode, type NatsConnection, type OrderedPublisher } from '@live/bus';
import {
  type AssignmentRecord,
  assignmentRecord,
  assignReply,
  buckets,
  type LifecycleEvent,
  lifecycleEvent,
  type Rendition,
  revokeReply,
  type SourceInfo,
  selectLadder,
  subjects,
} from '@live/contracts';
import { type KV, Kvm } from '@nats-io/kv';
import type { Logger } from 'pino';
import type { SourceHealth } from './source-health.js';
import type { WorkerPool } from './worker-pool.js';

/** A source heard of within this long is held by a live ingest (which reports every 200 ms). */
const SOURCE_ALIVE_MS = 1000;

export class NoWorkerError extends Error {
  constructor(streamId: string) {
    super(`no transcoder worker with a free slot for ${streamId}`);
    this.name = 'NoWorkerError';
  }
}

export interface AssignOptions {
  /** Workers not to use (the one that failed, the one a stream moves away from). */
  exclude?: string[];
  /** Only this worker (an operator's move to a named worker). */
  onlyWorker?: string;
  /** A planned move: the previous worker keeps running until the new epoch has a segment (not revoked here). */
  handoverFrom?: { workerId: string; epoch: number };
  /** The lifecycle event this assignment answers (recorded, so that its redelivery is recognised). */
  cause?: string;
}

export class Assigner {
  private kv: KV | undefined;
  private readonly log: Logger;

  constructor(
    private readonly nc: NatsConnection,
    private readonly pool: WorkerPool,
    private readonly sources: SourceHealth,
    private readonly events: OrderedPublisher,
    logger: Logger,
    private readonly presets: Rendition[],
    private readonly assignTimeoutMs: number,
  ) {
    this.log = logger.child({ component: 'assigner' });
  }

  async start(): Promise<void> {
    this.kv = await new Kvm(this.nc).open(buckets.assignments);
  }

  /** The consumer's handler for every lifecycle event. Throwing makes JetStream redeliver it later. */
  async handle(event: LifecycleEvent): Promise<void> {
    switch (event.type) {
      case 'started':
        await this.answer(event, event.source);
        break;
      case 'source_resumed':
        // A new publisher connection: a new pull, a new epoch (the playlist shows a discontinuity).
        if (event.source) await this.answer(event, event.source);
        break;
      case 'transcode_failed': {
        const current = await this.current(event.streamId);
        // ffmpeg also fails when its ingest died: retrying that source is pointless; the streamer's
        // reconnect (a `started` elsewhere) or the ingest-loss timeout decides what happens next.
        if (!this.sources.heardOf(event.streamId, SOURCE_ALIVE_MS)) {
          this.log.warn(
            { streamId: event.streamId, epoch: event.epoch },
            'transcode failed and no ingest holds the source: not reassigning',
          );
          break;
        }
        if (current && current.record.state === 'assigned' && current.record.epoch === event.epoch) {
          await this.assign(event.streamId, current.record.source, { exclude: [event.workerId] });
        }
        break;
      }
      case 'ended':
        // The supervisor's own ingest-loss ending loses a race with a streamer who is just back: keep it.
        if (event.reason === 'ingest_lost' && this.sources.heardOf(event.streamId, SOURCE_ALIVE_MS)) break;
        await this.unassign(event.streamId);
        break;
      default:
        break;
    }
  }

  /**
   * Assigns a stream for a lifecycle event, once per event. JetStream redelivers an event whose handler did
   * not ack it, e.g. a leader killed after writing the assignment: the record names the event that caused it,
   * and the same epoch is offered again to the same worker (which accepts a repeat of the epoch it runs, and
   * starts it if the first offer never reached it). A new epoch here would restart the stream's transcode
   * and show viewers a discontinuity for nothing. Only if that worker cannot take it is the stream assigned
   * anew.
   */
  private async answer(event: { id: string; streamId: string }, source: SourceInfo): Promise<void> {
    const current = await this.current(event.streamId);
    if (current?.record.state === 'assigned' && current.record.cause === event.id) {
      if (await this.offer(current.record)) {
        this.log.info(
          { streamId: event.streamId, workerId: current.record.workerId, epoch: current.record.epoch },
          'redelivered event: its assignment offered again, same epoch',
        );
        this.announce(current.record);
        return;
      }
    }
    await this.assign(event.streamId, source, { cause: event.id });
  }

  async current(streamId: string): Promise<{ record: AssignmentRecord; revision: number } | null> {
    const entry = await this.requireKv().get(streamId);
    if (entry?.operation !== 'PUT') return null;
    const decoded = decode(assignmentRecord, entry.value);
    return decoded.ok ? { record: decoded.value, revision: entry.revision } : null;
  }

  async assign(streamId: string, source: SourceInfo, options: AssignOptions = {}): Promise<AssignmentRecord> {
    const kv = this.requireKv();
    const ladder = selectLadder(source.video, this.presets);
    const tried = [...(options.exclude ?? [])];
    for (;;) {
      const workerId = this.pool
        .candidates(tried)
        .find((id) => options.onlyWorker === undefined || id === options.onlyWorker);
      if (!workerId) throw new NoWorkerError(streamId);
      tried.push(workerId);
      const previous = await this.current(streamId);
      const record: AssignmentRecord = {
        streamId,
        workerId,
        epoch: (previous?.record.epoch ?? 0) + 1,
        source,
        ladder,
        assignedAt: new Date().toISOString(),
        state: 'assigned',
        handoverFrom: options.handoverFrom ?? null,
        cause: options.cause ?? null,
      };
      // Compare-and-set: a concurrent writer (a second supervisor) makes this throw, and the event is retried.
      if (previous) await kv.update(streamId, encode(assignmentRecord, record), previous.revision);
      else await kv.create(streamId, encode(assignmentRecord, record));
      if (!(await this.offer(record))) continue;
      // A fault: the old worker is told to stop at once. A planned move stops it after the handover.
      if (previous && previous.record.workerId !== workerId && !options.handoverFrom)
        void this.revoke(previous.record);
      this.log.info(
        { streamId, workerId, epoch: record.epoch, ladder: ladder.map((r) => r.name) },
        'stream assigned',
      );
      this.announce(record);
      return record;
    }
  }

  /** Sends the assignment to its worker; true once the worker acknowledged it. */
  private async offer(record: AssignmentRecord): Promise<boolean> {
    const { streamId, workerId, epoch, source, ladder } = record;
    this.pool.reserve(workerId, streamId);
    try {
      const reply = await this.nc.request(
        subjects.ctl.transcoderAssign(workerId),
        bytes(JSON.stringify({ streamId, epoch, source, ladder })),
        { timeout: this.assignTimeoutMs },
      );
      const error = reply.headers?.get('Nats-Service-Error');
      if (error) throw new Error(error);
      if (!decode(assignReply, reply.data).ok) throw new Error('invalid assign reply');
      this.pool.settle(workerId, streamId, true);
      return true;
    } catch (error) {
      this.pool.settle(workerId, streamId, false);
      this.log.warn(
        { streamId, workerId, epoch, err: (error as Error).message },
        'worker refused the assignment, trying another',
      );
      return false;
    }
  }

  /**
   * The `assigned` event. Its id comes from the record (stream, epoch, when it was written), so that
   * announcing the same record again (a redelivered event's resend) is dropped by the stream's duplicate
   * window rather than stored twice.
   */
  private announce(record: AssignmentRecord): void {
    const assigned = {
      id: `${record.streamId}/${record.epoch}/${record.assignedAt}`,
      type: 'assigned' as const,
      streamId: record.streamId,
      sessionId: 'supervisor',
      at: new Date().toISOString(),
      workerId: record.workerId,
      epoch: record.epoch,
      renditions: record.ladder.map((r) => r.name),
    };
    void this.events.publish(
      lifecycleEvent,
      subjects.streamEvent(record.streamId, 'assigned'),
      assigned,
      assigned.id,
    );
  }

  private async unassign(streamId: string): Promise<void> {
    const current = await this.current(streamId);
    if (!current || current.record.state === 'ended') return;
    await this.revoke(current.record);
    // Kept, marked ended: the next session of this stream continues from the next epoch.
    const ended: AssignmentRecord = { ...current.record, state: 'ended' };
    await this.requireKv()
      .update(streamId, encode(assignmentRecord, ended), current.revision)
      .catch((error: Error) =>
        this.log.warn({ streamId, err: error.message }, 'assignment changed while ending; left as is'),
      );
    this.log.info({ streamId, epoch: current.record.epoch }, 'stream unassigned');
  }

  async revoke(record: Pick<AssignmentRecord, 'streamId' | 'workerId' | 'epoch'>): Promise<void> {
    try {
      const reply = await this.nc.request(
        subjects.ctl.transcoderRevoke(record.workerId),
        bytes(JSON.stringify({ streamId: record.streamId, epoch: record.epoch })),
        { timeout: this.assignTimeoutMs },
      );
      decode(revokeReply, reply.data);
    } catch (error) {
      // A gone worker has nothing to stop; its ffmpeg died with it (pdeathsig) or fenced itself.
      this.log.warn(
        { streamId: record.streamId, workerId: record.workerId, err: (error as Error).message },
        'revoke not acknowledged',
      );
    }
  }

  private requireKv(): KV {
    if (!this.kv) throw new Error('assigner not started');
    return this.kv;
  }
}
