// What the pages show live, kept in memory from NATS (browsers never talk NATS): each stream's lifecycle
// state (one ordered consumer over LIVE_EVENTS, starting with the last event of every subject), the streams
// waiting for a worker (another over live.alert.placement.*, the same way), assignments and chat pods (KV
// watches), worker heartbeats and source health (core subscriptions). Every message is validated with the
// contracts' schemas through @live/bus; listeners get state changes, not raw traffic.
// An ingest's `ended` or stall of a session the stream has left (the streamer reconnected to another
// ingest) does not change what the pages show: only the current session's do.
import { decode, type KvWatch, subscribeValidated, watchKv } from '@live/bus';
import {
  type AssignmentRecord,
  assignedSession,
  assignmentRecord,
  buckets,
  type ChatNodeRecord,
  chatNodeRecord,
  claimedSession,
  type IngestHealth,
  ingestHealth,
  isStaleSessionEvent,
  type LifecycleEvent,
  type LocalProcesses,
  lifecycleEvent,
  localProcesses,
  placementAlert,
  type SessionRef,
  streams,
  subjects,
  type TranscoderHeartbeat,
  transcoderHeartbeat,
} from '@live/contracts';
import { DeliverPolicy, jetstream } from '@nats-io/jetstream';
import type { NatsConnection, Subscription } from '@nats-io/nats-core';
import type { Logger } from 'pino';
import type { z } from 'zod';
import type {
  FleetFailover,
  FleetProcess,
  FleetSnapshot,
  FleetStream,
  FleetWaiting,
  SourceHealth,
  StreamState,
  StreamStateName,
} from '../shared/api.js';
import { Listeners } from './listeners.js';

/** A worker without a heartbeat for this long is shown as lost (the supervisor decides at 450 ms). */
const WORKER_ALIVE_MS = 1500;
/** ...and dropped from the view after this long (a worker that went away for good). */
const WORKER_FORGET_MS = 60_000;
/** The local runner publishes its process table every second: older than this, it is not running. */
const LOCAL_PROCESSES_STALE_MS = 5000;
/** A chat pod reports every second; three missed reports and it is dead (as the pods themselves judge). */
const CHAT_POD_ALIVE_MS = 3500;
const FAILOVERS_KEPT = 20;

/** What the pages are told of a source: ingest's health report with the rate in kbit/s. */
function sourceHealth(h: IngestHealth): SourceHealth {
  return {
    at: h.at,
    kbps: Math.round((h.bytesPerSec * 8) / 1000),
    fps: h.fps,
    keyframeIntervalMs: h.keyframeIntervalMs,
    silentForMs: h.silentForMs,
    state: h.state,
  };
}

interface StreamEntry {
  state: StreamStateName;
  sourceStalled: boolean;
  lastEvent: string | null;
  lastEventAt: string | null;
  since: number | null;
  /** The session the last `started` (or reconnect elsewhere) claimed. */
  session: SessionRef | null;
}

export interface LiveStateOptions {
  nc: NatsConnection;
  logger: Logger;
  /** Fleet snapshots go out at most this often, except right after a lifecycle event. */
  throttleMs: number;
}

export class LiveState {
  private readonly streamEntries = new Map<string, StreamEntry>();
  private readonly assignments = new Map<string, AssignmentRecord>();
  private readonly workers = new Map<string, { beat: TranscoderHeartbeat; seenAt: number }>();
  private readonly health = new Map<string, { value: IngestHealth; seenAt: number }>();
  private readonly chatPods = new Map<string, ChatNodeRecord>();
  private readonly failovers: FleetFailover[] = [];
  /** The local runner's last process table (npm start), and when it came. */
  private localProcesses: { value: LocalProcesses; seenAt: number } | undefined;
  /** Streams waiting for a worker: since when (ms since epoch). */
  private readonly waiting = new Map<string, number>();
  readonly stateListeners = new Listeners<StreamState>();
  readonly healthListeners = new Listeners<SourceHealth>();
  readonly lifecycleListeners = new Listeners<LifecycleEvent>();
  readonly fleetListeners = new Listeners<FleetSnapshot>();
  private subscriptions: Subscription[] = [];
  private watches: KvWatch[] = [];
  private readonly stopConsumers: (() => Promise<void>)[] = [];
  private flushTimer: NodeJS.Timeout | undefined;
  private lastFlushAt = 0;
  private tick: NodeJS.Timeout | undefined;
  private caughtUp = false;

  constructor(private readonly options: LiveStateOptions) {}

  /** Ready once the lifecycle history and both buckets have been read. */
  get ready(): boolean {
    return this.caughtUp;
  }

  async start(): Promise<void> {
    const { nc, logger } = this.options;
    const assignmentWatch = await watchKv({
      nc,
      logger,
      bucket: buckets.assignments,
      schema: assignmentRecord,
      onPut: (record) => {
        this.assignments.set(record.streamId, record);
        this.changed();
      },
      onDelete: (key) => {
        this.assignments.delete(key);
        this.changed();
      },
    });
    const chatWatch = await watchKv({
      nc,
      logger,
      bucket: buckets.chatNodes,
      schema: chatNodeRecord,
      onPut: (record) => {
        this.chatPods.set(record.podId, record);
        this.changed();
      },
      onDelete: (key) => {
        this.chatPods.delete(key);
        this.changed();
      },
    });
    this.watches = [assignmentWatch, chatWatch];
    this.subscriptions = [
      subscribeValidated({
        nc,
        logger,
        subject: subjects.allTranscoderHealth,
        schema: transcoderHeartbeat,
        name: 'web-heartbeats',
        handler: (beat) => {
          this.workers.set(beat.workerId, { beat, seenAt: Date.now() });
          this.changed();
        },
      }),
      subscribeValidated({
        nc,
        logger,
        subject: subjects.localProcesses,
        schema: localProcesses,
        name: 'web-local-processes',
        handler: (value) => {
          this.localProcesses = { value, seenAt: Date.now() };
          this.changed();
        },
      }),
      subscribeValidated({
        nc,
        logger,
        subject: subjects.allIngestHealth,
        schema: ingestHealth,
        name: 'web-ingest-health',
        handler: (value) => {
          this.health.set(value.streamId, { value, seenAt: Date.now() });
          this.healthListeners.emit(value.streamId, sourceHealth(value));
          this.changed();
        },
      }),
    ];
    await Promise.all([
      this.follow(subjects.allStreamEvents, lifecycleEvent, (event) => this.onLifecycle(event)),
      this.follow(subjects.allPlacementAlerts, placementAlert, (alert) => {
        if (alert.type === 'stream_waiting') this.waiting.set(alert.streamId, Date.parse(alert.waitingSince));
        else this.waiting.delete(alert.streamId);
        this.changed(true);
      }),
    ]);
    this.caughtUp = true;
    await Promise.all([assignmentWatch.initialized, chatWatch.initialized]);
    // Liveness is judged by silence, which no message announces: look again every second.
    this.tick = setInterval(() => this.changed(), 1000).unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.tick);
    clearTimeout(this.flushTimer);
    for (const s of this.subscriptions) s.unsubscribe();
    for (const w of this.watches) w.stop();
    await Promise.all(this.stopConsumers.map((stop) => stop()));
  }

  streamState(streamId: string): StreamState {
    const entry = this.streamEntries.get(streamId);
    return {
      streamId,
      state: entry?.state ?? 'offline',
      sourceStalled: entry?.sourceStalled ?? false,
      lastEvent: entry?.lastEvent ?? null,
      lastEventAt: entry?.lastEventAt ?? null,
      since: entry?.since ?? null,
    };
  }

  latestHealth(streamId: string): SourceHealth | null {
    const h = this.health.get(streamId)?.value;
    return h ? sourceHealth(h) : null;
  }

  /**
   * One ordered consumer per kind for the whole process: the last message of each subject first (so a page
   * opened long after `started` still knows the stream is live, or that it waits for a worker), then every
   * new one. Resolves once caught up: when the server says nothing is pending.
   */
  private async follow<S extends z.ZodType>(
    subject: string,
    schema: S,
    apply: (value: z.output<S>) => void,
  ): Promise<void> {
    const { nc, logger } = this.options;
    const js = jetstream(nc);
    const consumer = await js.consumers.get(streams.events, {
      filter_subjects: subject,
      deliver_policy: DeliverPolicy.LastPerSubject,
    });
    const info = await consumer.info(true);
    let markCaughtUp!: () => void;
    const caughtUp = new Promise<void>((resolve) => {
      markCaughtUp = resolve;
    });
    if (info.num_pending === 0) markCaughtUp();
    const messages = await consumer.consume();
    this.stopConsumers.push(async () => {
      await messages.close();
    });
    void (async () => {
      for await (const m of messages) {
        const decoded = decode(schema, m.data);
        if (decoded.ok) apply(decoded.value);
        else logger.warn({ subject: m.subject, reason: decoded.reason }, 'invalid event skipped');
        if (m.info.pending === 0) markCaughtUp();
      }
    })().catch((error: unknown) =>
      logger.error({ err: (error as Error).message, subject }, 'event consumer stopped'),
    );
    await caughtUp;
  }

  private onLifecycle(event: LifecycleEvent): void {
    const entry: StreamEntry = this.streamEntries.get(event.streamId) ?? {
      state: 'offline',
      sourceStalled: false,
      lastEvent: null,
      lastEventAt: null,
      since: null,
      session: null,
    };
    const record = this.assignments.get(event.streamId);
    const current = entry.session ?? (record ? assignedSession(record) : null);
    if (isStaleSessionEvent(current, event)) {
      // Still in the studio's event log (it is what LIVE_EVENTS holds), but the stream's state stays.
      this.lifecycleListeners.emit(event.streamId, event);
      return;
    }
    const claim = claimedSession(event);
    if (claim) entry.session = claim;
    const at = Date.parse(event.at);
    if (event.type === 'started') {
      entry.state = 'live';
      entry.sourceStalled = false;
      entry.since = at;
    } else if (event.type === 'ended') {
      entry.state = 'ended';
      entry.sourceStalled = false;
      entry.since = at;
    } else if (event.type === 'source_stalled') {
      entry.sourceStalled = true;
    } else if (event.type === 'source_resumed') {
      entry.sourceStalled = false;
    } else if (event.type === 'failover' || event.type === 'moved') {
      this.failovers.unshift({
        id: event.id,
        type: event.type,
        streamId: event.streamId,
        at: event.at,
        fromWorker: event.fromWorker,
        toWorker: event.toWorker,
        reason: event.reason,
        epoch: event.epoch,
        detectionMs: event.type === 'failover' ? event.detectionMs : null,
        switchMs: event.switchMs,
        handoverMs: event.type === 'moved' ? event.handoverMs : null,
        gapless: event.type === 'moved' ? event.gapless : null,
      });
      // The initial last-per-subject replay is in stream order, so newest first holds after sorting.
      this.failovers.sort((a, b) => Date.parse(b.at) - Date.parse(a.at));
      this.failovers.length = Math.min(this.failovers.length, FAILOVERS_KEPT);
    }
    entry.lastEvent = event.type;
    entry.lastEventAt = event.at;
    this.streamEntries.set(event.streamId, entry);
    this.stateListeners.emit(event.streamId, this.streamState(event.streamId));
    this.lifecycleListeners.emit(event.streamId, event);
    // A failover is what an operator watches for: it goes out now, not at the next throttled flush.
    this.changed(true);
  }

  /** Schedules a fleet snapshot for the ops pages (throttled; at once when urgent). */
  private changed(urgent = false): void {
    if (!this.fleetListeners.has('')) return;
    if (urgent) {
      clearTimeout(this.flushTimer);
      this.flushTimer = undefined;
      this.flush();
      return;
    }
    if (this.flushTimer) return;
    const wait = this.lastFlushAt + this.options.throttleMs - Date.now();
    if (wait <= 0) this.flush();
    else this.flushTimer = setTimeout(() => this.flush(), wait);
  }

  private flush(): void {
    this.flushTimer = undefined;
    this.lastFlushAt = Date.now();
    this.fleetListeners.emit('', this.fleet());
  }

  fleet(): FleetSnapshot {
    const now = Date.now();
    for (const [id, w] of this.workers) if (now - w.seenAt > WORKER_FORGET_MS) this.workers.delete(id);
    for (const [id, h] of this.health) if (now - h.seenAt > WORKER_FORGET_MS) this.health.delete(id);
    const progress = new Map<string, { speed: number; state: string; lastSegmentAt: number | null }>();
    for (const { beat, seenAt } of this.workers.values()) {
      if (now - seenAt > WORKER_ALIVE_MS) continue;
      for (const s of beat.streams) progress.set(`${beat.workerId}/${s.streamId}`, s);
    }
    const ids = new Set([...this.assignments.keys(), ...this.streamEntries.keys()]);
    const streamsView: FleetStream[] = [...ids].sort().map((streamId) => {
      const a = this.assignments.get(streamId);
      const state = this.streamState(streamId);
      const h = this.health.get(streamId);
      const p = a ? progress.get(`${a.workerId}/${streamId}`) : undefined;
      const assigned = a?.state === 'assigned';
      return {
        streamId,
        state: state.state,
        sourceStalled: state.sourceStalled,
        workerId: assigned ? a.workerId : null,
        epoch: a?.epoch ?? null,
        renditions: a?.ladder.map((r) => r.name) ?? [],
        // The record keeps handoverFrom after the move; it is a move in progress only while the old worker
        // still runs the stream.
        handoverFrom:
          assigned && a.handoverFrom && progress.has(`${a.handoverFrom.workerId}/${streamId}`)
            ? a.handoverFrom.workerId
            : null,
        source: h && now - h.seenAt < WORKER_ALIVE_MS ? sourceHealth(h.value) : null,
        encoder: p
          ? {
              speed: p.speed,
              state: p.state,
              lastSegmentAgoMs: p.lastSegmentAt === null ? null : Math.max(0, now - p.lastSegmentAt),
            }
          : null,
      };
    });
    return {
      at: now,
      streams: streamsView.filter((s) => s.state === 'live' || s.workerId !== null),
      workers: [...this.workers.values()]
        .map(({ beat, seenAt }) => ({
          workerId: beat.workerId,
          slots: beat.slots,
          free: beat.free,
          draining: beat.draining,
          alive: now - seenAt <= WORKER_ALIVE_MS,
          lastSeenAgoMs: now - seenAt,
          // A lost worker's last heartbeat still names its streams; they have moved on (or will).
          streams: now - seenAt <= WORKER_ALIVE_MS ? beat.streams.map((s) => s.streamId) : [],
        }))
        .sort((a, b) => a.workerId.localeCompare(b.workerId)),
      chatPods: [...this.chatPods.values()]
        // A pod gone for a minute is history (its record stays in the bucket until its TTL).
        .filter((p) => now - p.at < WORKER_FORGET_MS)
        .map((p) => ({
          podId: p.podId,
          connections: p.connections,
          capacity: p.capacity,
          draining: p.draining,
          alive: now - p.at <= CHAT_POD_ALIVE_MS,
        }))
        .sort((a, b) => a.podId.localeCompare(b.podId)),
      failovers: [...this.failovers],
      waiting: [...this.waiting]
        .filter(([streamId, since]) => {
          // An assignment written since the wait began settles it even without its `stream_placed` (a
          // leader that died between placing the stream and saying so: the next one only confirms it).
          const a = this.assignments.get(streamId);
          return !(a?.state === 'assigned' && Date.parse(a.assignedAt) >= since);
        })
        .sort((a, b) => a[1] - b[1])
        .map(([streamId, since]): FleetWaiting => ({ streamId, since, waitingMs: Math.max(0, now - since) })),
      // A runner that stopped publishing (stopped, or this is Kubernetes) shows nothing rather than old news.
      processes:
        this.localProcesses && now - this.localProcesses.seenAt <= LOCAL_PROCESSES_STALE_MS
          ? this.localProcesses.value.processes.map(
              (p): FleetProcess => ({
                name: p.name,
                kind: p.kind,
                pid: p.pid,
                state: p.state,
                restarts: p.restarts,
                upMs: p.state === 'running' ? Math.max(0, now - p.startedAt) : null,
                lastExit: p.lastExit
                  ? {
                      code: p.lastExit.code,
                      signal: p.lastExit.signal,
                      agoMs: Math.max(0, now - p.lastExit.at),
                    }
                  : null,
              }),
            )
          : [],
    };
  }
}
