// Who transcodes what. On `started` (and on a new source after a reconnect or takeover, or a failed
// transcode) the stream gets the next epoch, written to live-assignments with compare-and-set, and the
// chosen worker must acknowledge it; on `ended` the worker is told to stop and the assignment is marked
// ended. A stream that finds no free worker waits for one (waiting-streams.ts).
// An ingest's `ended`, `source_stalled` or `source_resumed` counts only for the stream's current session
// (the waiting one, else the assigned one): a streamer who reconnected to another ingest left a session
// behind whose ingest still reports on it, and ends it when its reconnect grace runs out.
// The supervisor is the only writer of assignments.
import {
  bytes,
  decode,
  encode,
  type HeldMessage,
  type NatsConnection,
  type OrderedPublisher,
} from '@live/bus';
import {
  type AssignmentRecord,
  assignedSession,
  assignmentRecord,
  assignReply,
  buckets,
  isStaleSessionEvent,
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
import type { Counter } from 'prom-client';
import type { SourceHealth } from './source-health.js';
import type { WaitingStreams } from './waiting-streams.js';
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
  /** The ingest session it transcodes (default: the previous assignment's, as for a failover or a move). */
  sessionId?: string;
}

export interface AssignerOptions {
  nc: NatsConnection;
  pool: WorkerPool;
  sources: SourceHealth;
  events: OrderedPublisher;
  logger: Logger;
  presets: Rendition[];
  assignTimeoutMs: number;
  /** Where a stream that finds no free worker waits (the leader's). */
  waiting: WaitingStreams;
  /** Ingest events ignored because they speak for a session the stream has left, by type. */
  staleEvents: Counter;
}

export class Assigner {
  private kv: KV | undefined;
  private readonly nc: NatsConnection;
  private readonly pool: WorkerPool;
  private readonly sources: SourceHealth;
  private readonly events: OrderedPublisher;
  private readonly log: Logger;

  constructor(private readonly o: AssignerOptions) {
    this.nc = o.nc;
    this.pool = o.pool;
    this.sources = o.sources;
    this.events = o.events;
    this.log = o.logger.child({ component: 'assigner' });
  }

  async start(): Promise<void> {
    this.kv = await new Kvm(this.nc).open(buckets.assignments);
  }

  /**
   * The consumer's handler for every lifecycle event. Throwing makes JetStream redeliver it later; `hold`
   * keeps the event unacked while its stream waits for a worker (absent: it is retried by redelivery).
   */
  async handle(event: LifecycleEvent, hold?: () => HeldMessage): Promise<void> {
    switch (event.type) {
      case 'started':
        await this.answer(event, event.source, hold);
        break;
      case 'source_resumed':
        // A new publisher connection: a new pull, a new epoch (the playlist shows a discontinuity). It is
        // the newest publish of the stream, whichever ingest it is on, so it is never stale.
        if (event.source) await this.answer(event, event.source, hold);
        // Data flowing again: nothing to do here (stall detection reads source health), but one from a
        // session the streamer has left is counted with the others.
        else await this.isStale(event);
        break;
      case 'source_stalled':
        await this.isStale(event);
        break;
      case 'transcode_failed': {
        const current = await this.current(event.streamId);
        // ffmpeg also fails when its ingest died: retrying that source is pointless; the streamer's
        // reconnect (a `started` elsewhere) or the ingest-loss timeout decides what happens next.
        const ingestId = current?.record.source.ingestId;
        if (
          !this.sources.heardOf(
            event.streamId,
            SOURCE_ALIVE_MS,
            ingestId ? { ingestId } : { publishing: true },
          )
        ) {
          this.log.warn(
            { streamId: event.streamId, epoch: event.epoch, ingestId },
            'transcode failed and no ingest holds the source: not reassigning',
          );
          break;
        }
        if (current?.record.state === 'assigned' && current.record.epoch === event.epoch) {
          await this.assign(event.streamId, current.record.source, { exclude: [event.workerId] });
        }
        break;
      }
      case 'ended':
        if (event.reason === 'ingest_lost') {
          // The supervisor's own ending loses a race with a streamer who is just back (an ingest holds a
          // publisher of the stream again; one still awaiting a reconnect does not count): keep the stream.
          if (this.sources.heardOf(event.streamId, SOURCE_ALIVE_MS, { publishing: true })) break;
        } else if (await this.isStale(event)) break;
        await this.o.waiting.end(event.streamId);
        await this.unassign(event.streamId);
        break;
      default:
        break;
    }
  }

  /**
   * True (logged and counted) when an ingest's event speaks for another session than the stream's current
   * one: the one waiting for a worker if any (it came last), else the assigned one.
   */
  private async isStale(event: LifecycleEvent): Promise<boolean> {
    let session = this.o.waiting.session(event.streamId);
    if (!session) {
      const current = await this.current(event.streamId);
      session = current ? assignedSession(current.record) : null;
    }
    if (!isStaleSessionEvent(session, event)) return false;
    this.o.staleEvents.inc({ type: event.type });
    this.log.info(
      {
        streamId: event.streamId,
        type: event.type,
        sessionId: event.sessionId,
        ingestId: event.ingestId,
        currentSessionId: session?.sessionId,
        currentIngestId: session?.ingestId,
      },
      'event of a session the stream has left (another ingest holds it now): ignored',
    );
    return true;
  }

  /**
   * Assigns a stream for a lifecycle event, once per event. JetStream redelivers an event whose handler did
   * not ack it, e.g. a leader killed after writing the assignment: the record names the event that caused it,
   * and the same epoch is offered again to the same worker (which accepts a repeat of the epoch it runs, and
   * starts it if the first offer never reached it). A new epoch here would restart the stream's transcode
   * and show viewers a discontinuity for nothing. Only if that worker cannot take it is the stream assigned
   * anew.
   */
  private async answer(
    event: { id: string; streamId: string; sessionId: string; at: string },
    source: SourceInfo,
    hold: (() => HeldMessage) | undefined,
  ): Promise<void> {
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
    const wait = () =>
      this.o.waiting.add({
        streamId: event.streamId,
        sessionId: event.sessionId,
        source,
        cause: event.id,
        // From the event: a redelivery to a new leader continues the wait, it does not restart it.
        since: Math.min(Date.now(), Date.parse(event.at) || Date.now()),
        held: hold ? hold() : null,
      });
    // First come, first served: while streams wait, a newer one queues behind them (the queue places it
    // at once if a slot is free).
    if (hold && this.o.waiting.size > 0) return wait();
    try {
      await this.assign(event.streamId, source, { cause: event.id, sessionId: event.sessionId });
    } catch (error) {
      if (!(error instanceof NoWorkerError) || !hold) throw error;
      wait();
    }
  }

  async current(streamId: string): Promise<{ record: AssignmentRecord; revision: number } | null> {
    const entry = await this.requireKv().get(streamId);
    if (entry?.operation !== 'PUT') return null;
    const decoded = decode(assignmentRecord, entry.value);
    return decoded.ok ? { record: decoded.value, revision: entry.revision } : null;
  }

  async assign(streamId: string, source: SourceInfo, options: AssignOptions = {}): Promise<AssignmentRecord> {
    const kv = this.requireKv();
    const ladder = selectLadder(source.video, this.o.presets);
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
        sessionId: options.sessionId ?? previous?.record.sessionId ?? null,
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
        { timeout: this.o.assignTimeoutMs },
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
        { timeout: this.o.assignTimeoutMs },
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
