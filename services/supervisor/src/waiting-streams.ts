// Streams waiting for a transcoder worker: a `started` (or a reconnect's new source) that found no free slot
// waits here, first come first served, and is placed the moment a worker's heartbeat shows a free slot (a
// worker joining, a slot freed), however long it has waited. JetStream redelivery alone (backoff, then dead
// letters) would place it long after the worker joined, or never.
// The lifecycle event is held, not acked, while its stream waits (libs/bus consume's hold): if this leader
// dies or loses its lease, the event is delivered again to the next leader, which queues the stream again
// (its wait counted from the event's time), so a waiting stream is never forgotten. It is acked once the
// stream is placed, ends, or a newer event of the same stream replaces it.
// The wait is visible: gauges supervisor_streams_waiting and supervisor_longest_wait_seconds, a histogram
// of waits at placement, and alerts on live.alert.placement.<streamId> (stream_waiting, stream_placed,
// stream_ended).
import type { HeldMessage, OrderedPublisher } from '@live/bus';
import {
  type AssignmentRecord,
  type PlacementAlert,
  placementAlert,
  type SessionRef,
  type SourceInfo,
  subjects,
} from '@live/contracts';
import type { Logger } from 'pino';
import { Gauge, Histogram, type Registry } from 'prom-client';
import { NoWorkerError } from './assigner.js';
import type { WorkerPool } from './worker-pool.js';

const noop = () => {};

export interface WaitingStream {
  streamId: string;
  sessionId: string;
  source: SourceInfo;
  /** The lifecycle event's id (the assignment records it, see Assigner.answer). */
  cause: string;
  /** When the stream started waiting (ms since epoch). */
  since: number;
  held: HeldMessage | null;
  /** A placement failed for another reason than a full fleet (logged once). */
  warned?: boolean;
}

export interface WaitingStreamsOptions {
  pool: WorkerPool;
  events: OrderedPublisher;
  logger: Logger;
  metrics: Registry;
  /** Assigns a waiting stream; throws NoWorkerError when no worker can take it. */
  place: (stream: WaitingStream) => Promise<AssignmentRecord>;
}

export class WaitingStreams {
  /** In arrival order (a Map keeps insertion order): the head is placed first. */
  private readonly queue = new Map<string, WaitingStream>();
  private placing = false;
  /** The waiting stream being offered to a worker right now, and when that offer is answered. */
  private offering: { stream: WaitingStream; done: Promise<void> } | undefined;
  private stopBeats: (() => void) | undefined;
  private readonly waits: Histogram;
  private readonly log: Logger;

  constructor(private readonly o: WaitingStreamsOptions) {
    this.log = o.logger.child({ component: 'waiting' });
    const queue = this.queue;
    new Gauge({
      name: 'supervisor_streams_waiting',
      help: 'streams waiting for a transcoder worker with a free slot (leader only)',
      registers: [o.metrics],
      collect() {
        this.set(queue.size);
      },
    });
    new Gauge({
      name: 'supervisor_longest_wait_seconds',
      help: 'how long the stream that has waited longest for a worker has waited so far (0: none waits)',
      registers: [o.metrics],
      collect() {
        const first = queue.values().next().value;
        this.set(first ? Math.max(0, Date.now() - first.since) / 1000 : 0);
      },
    });
    this.waits = new Histogram({
      name: 'supervisor_placement_wait_seconds',
      help: 'how long streams that had to wait for a worker waited before one took them',
      buckets: [0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800],
      registers: [o.metrics],
    });
  }

  get size(): number {
    return this.queue.size;
  }

  /** The session a waiting stream belongs to: newer than any assignment of that stream. */
  session(streamId: string): SessionRef | null {
    const w = this.queue.get(streamId);
    return w ? { sessionId: w.sessionId, ingestId: w.source.ingestId } : null;
  }

  /** Only the leader places streams: from its first heartbeat on, each heartbeat may bring a free slot. */
  start(): void {
    // A former leadership's queue is stale: its events were handed back and come again.
    this.queue.clear();
    this.stopBeats = this.o.pool.onBeat(() => this.kick());
  }

  /** Leadership lost: the held events go back to JetStream (released by the consumer) for the next leader. */
  stop(): void {
    this.stopBeats?.();
    this.queue.clear();
  }

  /**
   * Queues a stream (at the back), or updates the one already waiting for the same stream (a newer event:
   * a reconnect, a new session), which keeps its place and its wait.
   */
  add(stream: WaitingStream): void {
    const previous = this.queue.get(stream.streamId);
    if (previous) {
      previous.held?.ack();
      this.queue.set(stream.streamId, { ...stream, since: previous.since });
      this.log.info({ streamId: stream.streamId }, 'waiting stream has a new source; keeps its place');
      return;
    }
    this.queue.set(stream.streamId, stream);
    this.log.warn(
      { streamId: stream.streamId, waiting: this.queue.size },
      'no transcoder worker has a free slot: the stream waits for one',
    );
    this.alert('stream_waiting', stream, null);
    this.kick();
  }

  /**
   * The waiting stream's session ended (the streamer left before a worker was found). Resolves once an
   * offer of that stream that was already out has been answered, so that the caller, which ends the
   * stream's assignment next, sees the assignment that offer may have written.
   */
  async end(streamId: string): Promise<void> {
    const w = this.queue.get(streamId);
    if (!w) return;
    this.queue.delete(streamId);
    w.held?.ack();
    this.log.info(
      { streamId, waitedMs: Date.now() - w.since },
      'waiting stream ended before a worker was found',
    );
    this.alert('stream_ended', w, null);
    if (this.offering?.stream === w) await this.offering.done;
  }

  /** Places waiting streams, oldest first, while workers have free slots. One pass at a time. */
  kick(): void {
    if (this.placing || this.queue.size === 0 || this.o.pool.candidates().length === 0) return;
    this.placing = true;
    void this.placeAll().finally(() => {
      this.placing = false;
    });
  }

  private async placeAll(): Promise<void> {
    for (;;) {
      const head = this.queue.values().next().value;
      if (!head) return;
      let record: AssignmentRecord;
      const offer = this.o.place(head);
      this.offering = { stream: head, done: offer.then(noop, noop) };
      try {
        record = await offer;
      } catch (error) {
        // No slot after all (offers refused, slots taken meanwhile): the next heartbeat tries again.
        if (!(error instanceof NoWorkerError) && !head.warned) {
          head.warned = true;
          this.log.warn(
            { streamId: head.streamId, err: (error as Error).message },
            'placing a waiting stream failed; trying again at each heartbeat',
          );
        }
        return;
      } finally {
        this.offering = undefined;
      }
      // Replaced or ended while the offer was out: that newer event decides (its own entry, or the end).
      if (this.queue.get(head.streamId) !== head) continue;
      this.queue.delete(head.streamId);
      this.finish(head, record);
    }
  }

  private finish(w: WaitingStream, record: AssignmentRecord): void {
    w.held?.ack();
    const waitedMs = Math.max(0, Date.now() - w.since);
    this.waits.observe(waitedMs / 1000);
    this.log.info(
      { streamId: w.streamId, workerId: record.workerId, epoch: record.epoch, waitedMs },
      'waiting stream placed',
    );
    this.alert('stream_placed', w, record.workerId);
  }

  private alert(type: PlacementAlert['type'], w: WaitingStream, workerId: string | null): void {
    const now = Date.now();
    const alert: PlacementAlert = {
      // From the event it answers: a new leader queueing the same redelivered event says nothing new.
      id: `${w.cause}-${type}`,
      type,
      streamId: w.streamId,
      at: new Date(now).toISOString(),
      waitingSince: new Date(w.since).toISOString(),
      waitingMs: type === 'stream_waiting' ? 0 : Math.max(0, now - w.since),
      workerId,
      waiting: this.queue.size,
    };
    void this.o.events.publish(placementAlert, subjects.placementAlert(w.streamId), alert, alert.id);
  }
}
