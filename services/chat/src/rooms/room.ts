// One chat room on this pod: the members connected here, the room's retained events (read from CHAT with an
// ordered consumer, which is also how every pod with members receives new ones; replaced from the next
// stream seq when it stops delivering, e.g. its NATS node died), and the writer that gives each new event
// the next room sequence number with compare-and-set on the room's subject (the writes that queue while
// one is in flight go out together, as one stored message: a group commit).
import { bytes, decode, followStream, type StreamFollower } from '@live/bus';
import {
  CHAT_EVENTS_PER_WRITE,
  type ChatRoomEvent,
  chatStoredEvents,
  streams,
  subjects,
} from '@live/contracts';
import {
  DeliverPolicy,
  JetStreamApiError,
  type JetStreamClient,
  type JetStreamManager,
  jetstream,
} from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import type { Logger } from 'pino';

/** What a room keeps of an event: its frame, ready to send as is, and what history needs. */
export interface RetainedEvent {
  seq: number;
  /** The event's JSON text (as stored in CHAT, or its element of a stored array): every client receives
   * exactly these bytes. */
  frame: Buffer;
  event: ChatRoomEvent;
  /** Set when a later `deleted` event removed this message. */
  deleted?: boolean;
}

/** A member as the room sees it: the connection implements it. */
export interface RoomMember {
  readonly userId: string;
  /** The last seq this member was sent; the room never sends it anything at or below. */
  lastSent: number;
  deliver(event: RetainedEvent): void;
  /** A frame holding events up to `lastSeq` (one event, or a JSON array of them), as text and as the
   * WebSocket frame on the wire (built once for every member). */
  deliverFrame(frame: OutgoingFrame, lastSeq: number): void;
}

export interface RoomOptions {
  /** Events kept in memory (as many as CHAT keeps per room). */
  retained: number;
  /** New events are sent together, at most this long after the first of them (0: no throttle). */
  batchMs: number;
  onDelivered: (deliveries: number) => void;
}

const OPEN = Buffer.from('[');
const COMMA = Buffer.from(',');
const CLOSE = Buffer.from(']');

export interface OutgoingFrame {
  text: Buffer;
  /** The unmasked server-to-client WebSocket text frame (header + text). */
  wire: Buffer;
}

/**
 * Frames a text message once. RFC 6455 section 5.2: server frames are unmasked, so every client gets the
 * same bytes: FIN + opcode 1 (text), then the length in 7 bits, or 126 + 16 bits, or 127 + 64 bits.
 */
export function outgoing(text: Buffer): OutgoingFrame {
  const length = text.length;
  const header = Buffer.allocUnsafe(length < 126 ? 2 : length < 65536 ? 4 : 10);
  header[0] = 0x81;
  if (length < 126) header[1] = length;
  else if (length < 65536) {
    header[1] = 126;
    header.writeUInt16BE(length, 2);
  } else {
    header[1] = 127;
    header.writeBigUInt64BE(BigInt(length), 2);
  }
  return { text, wire: Buffer.concat([header, text]) };
}

/** One frame for several events: a JSON array of the stored frames, joined without re-encoding. */
export function batchFrame(events: RetainedEvent[]): Buffer {
  if (events.length === 1) return (events[0] as RetainedEvent).frame;
  const parts: Buffer[] = [OPEN];
  for (const [i, e] of events.entries()) {
    if (i > 0) parts.push(COMMA);
    parts.push(e.frame);
  }
  parts.push(CLOSE);
  return Buffer.concat(parts);
}

/**
 * Members a delivery sweep writes to before it lets the event loop read its sockets: ~5 ms of writes here,
 * so a room's writes, acks and new events wait at most that long behind a sweep (not ~140 ms for 10,000).
 */
const SWEEP_CHUNK = 500;

const WRONG_LAST_SEQUENCE = 10071;
/**
 * How long a room write keeps retrying a lost compare-and-set race before it gives up. Losing means another
 * pod's write landed (the room is making progress), so a count of attempts is the wrong bound: a pod
 * writing a burst wins every race it starts with a fresh head (its own ack), while the other pod needs a
 * read and a write per try, so it can lose many in a row; a limit of 8 tries would drop its message.
 */
const WRITE_RETRY_MS = 5000;
/** After a lost race, wait up to this long (random) before the next try, so two pods stop colliding. */
const LOST_RACE_BACKOFF_MS = 20;

interface QueuedWrite {
  build: (seq: number, ts: number) => ChatRoomEvent;
  resolve: (seq: number) => void;
  reject: (error: unknown) => void;
}

export class RoomUnavailableError extends Error {
  constructor(room: string, cause: unknown) {
    super(`room ${room}: cannot store the event (${(cause as Error).message})`, { cause });
    this.name = 'RoomUnavailableError';
  }
}

export class Room {
  readonly members = new Set<RoomMember>();
  /** Retained events, oldest first (at most `retained`). */
  private readonly events: RetainedEvent[] = [];
  /** The newest event the room knows of: from the consumer or from its own writes (whichever is newer). */
  private head = { seq: 0, streamSeq: 0 };
  /** Writes waiting for the one in flight to finish (they go out together, in this order). */
  private queued: QueuedWrite[] = [];
  private writing = false;
  private follower: StreamFollower | undefined;
  readonly ready: Promise<void>;
  private markReady!: () => void;
  private readyAt = 0;
  private readonly subject: string;
  /** The delivery sweep in progress: the members it visits, in order, and the next one to visit. */
  private sweep: { members: RoomMember[]; next: number; newestAtStart: number } | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;
  private sweepImmediate: NodeJS.Immediate | undefined;
  private lastSweepAt = 0;
  /** Frames built in this sweep, by the seqs they hold (`<after>:<newest>`): members at the same point share one. */
  private readonly frames = new Map<string, { frame: OutgoingFrame; events: number }>();
  /** Made on first use (a room's delivery logic is tested without NATS). */
  private jsClient: JetStreamClient | undefined;

  constructor(
    readonly id: string,
    private readonly nc: NatsConnection,
    private readonly jsm: JetStreamManager,
    private readonly logger: Logger,
    private readonly options: RoomOptions,
  ) {
    this.subject = subjects.chatRoom(id);
    this.ready = new Promise((resolve) => {
      this.markReady = resolve;
    });
  }

  private get js(): JetStreamClient {
    this.jsClient ??= jetstream(this.nc);
    return this.jsClient;
  }

  get newestSeq(): number {
    return this.events.at(-1)?.seq ?? this.head.seq;
  }

  get oldestSeq(): number {
    return this.events[0]?.seq ?? this.head.seq + 1;
  }

  /**
   * Reads the retained events, then follows new ones; `ready` resolves once caught up. The consumer is an
   * R1 ordered consumer on one NATS node: when that node dies, the follower replaces it within a few
   * seconds, from the stream seq after the last event read (libs/bus followStream), so the members here
   * keep receiving the room without a gap or a duplicate and without reconnecting.
   */
  async start(): Promise<void> {
    const last = await this.lastStored();
    this.readyAt = last?.streamSeq ?? 0;
    if (last) this.head = last;
    this.follower = await followStream({
      nc: this.nc,
      stream: streams.chat,
      filterSubjects: this.subject,
      deliverPolicy: DeliverPolicy.All,
      logger: this.logger,
      what: `room ${this.id}`,
      onMessage: (m) => this.receive(m.data, m.seq),
    });
    if (this.readyAt === 0) this.markReady();
  }

  async stop(): Promise<void> {
    clearTimeout(this.sweepTimer);
    if (this.sweepImmediate) clearImmediate(this.sweepImmediate);
    this.sweep = undefined;
    await this.follower?.stop();
  }

  private receive(data: Uint8Array, streamSeq: number): void {
    const decoded = decode(chatStoredEvents, data);
    if (!decoded.ok) {
      // Only chat pods write room subjects (NATS permissions); an invalid one is logged and skipped.
      this.logger.error({ streamSeq, reason: decoded.reason }, 'invalid room event skipped');
    } else {
      const single = decoded.value.length === 1;
      let added = false;
      for (const event of decoded.value) {
        if (event.seq <= (this.events.at(-1)?.seq ?? 0)) continue;
        // A message holding one event is sent as stored; each event of a stored array as its own JSON text.
        const frame = single ? Buffer.from(data) : Buffer.from(JSON.stringify(event));
        this.events.push({ seq: event.seq, frame, event });
        if (this.events.length > this.options.retained) this.events.shift();
        if (event.type === 'deleted') {
          const target = this.find(event.target);
          if (target) target.deleted = true;
        }
        added = true;
      }
      const last = decoded.value.at(-1) as ChatRoomEvent;
      if (streamSeq > this.head.streamSeq) this.head = { seq: last.seq, streamSeq };
      if (added) this.wake();
    }
    if (streamSeq >= this.readyAt) this.markReady();
  }

  /**
   * New events go out by sweeps over the members: in chunks of SWEEP_CHUNK, each member is sent one frame
   * with everything newer than what it has (built once per distinct range and shared: a frame to thousands
   * of members). A throttle, not a delay: after a quiet period a sweep starts at once ("at once" is the next
   * turn of the event loop, so events read together go out together); while busy, a sweep starts at most
   * once per CHAT_BATCH_MS, so a client gets about one frame per CHAT_BATCH_MS however busy the room.
   * Between chunks the event loop reads its sockets: a sweep over 10,000 members takes ~100-140 ms here,
   * and in one piece it held up the room's writes, their acks and the next events for that long (each a
   * turn: p99 595 ms at 20 msgs/s); now an event reaches a member at most about one sweep after it arrives.
   */
  private wake(): void {
    // A sweep in progress reaches its remaining members with the new events and ends by waking again
    // (for the members it had already visited).
    if (this.sweep || this.sweepTimer) return;
    const wait = this.lastSweepAt + this.options.batchMs - Date.now();
    this.sweepTimer = setTimeout(
      () => {
        this.sweepTimer = undefined;
        this.lastSweepAt = Date.now();
        this.frames.clear();
        this.sweep = { members: [...this.members], next: 0, newestAtStart: this.newestSeq };
        this.sweepOn();
      },
      Math.max(0, wait),
    );
  }

  private sweepOn(): void {
    this.sweepImmediate = undefined;
    const sweep = this.sweep;
    if (!sweep) return;
    const newest = this.newestSeq;
    const end = Math.min(sweep.next + SWEEP_CHUNK, sweep.members.length);
    let deliveries = 0;
    for (; sweep.next < end; sweep.next++) {
      const member = sweep.members[sweep.next] as RoomMember;
      if (member.lastSent >= newest || !this.members.has(member)) continue;
      const { frame, events } = this.frameAfter(member.lastSent, newest);
      if (events === 0) continue;
      member.deliverFrame(frame, newest);
      deliveries += events;
    }
    this.options.onDelivered(deliveries);
    if (sweep.next < sweep.members.length) {
      this.sweepImmediate = setImmediate(() => this.sweepOn());
      return;
    }
    this.sweep = undefined;
    if (this.newestSeq > sweep.newestAtStart) this.wake();
  }

  /** One frame with the retained events after `after` up to `newest`, shared by every member at `after`. */
  private frameAfter(after: number, newest: number): { frame: OutgoingFrame; events: number } {
    const key = `${after}:${newest}`;
    let built = this.frames.get(key);
    if (!built) {
      // A member more than the retained events behind (a burst past CHAT_ROOM_RETAINED within one sweep)
      // gets what is retained; the seqs show it the gap, and it can resume or reload.
      const from = Math.max(0, after + 1 - (this.events[0]?.seq ?? after + 1));
      // `newest` is the last retained event's seq, so the slice ends there.
      const events = this.events.slice(from).filter((e) => e.seq > after);
      built = { frame: outgoing(batchFrame(events)), events: events.length };
      this.frames.set(key, built);
    }
    return built;
  }

  find(seq: number): RetainedEvent | undefined {
    const first = this.events[0]?.seq;
    if (first === undefined) return undefined;
    const candidate = this.events[seq - first];
    return candidate?.seq === seq ? candidate : this.events.find((e) => e.seq === seq);
  }

  /** Events after `seq` (for a resuming member), oldest first. */
  eventsAfter(seq: number): RetainedEvent[] {
    return this.events.filter((e) => e.seq > seq);
  }

  /** The newest `limit` messages (not deleted) before `before`, oldest first; complete = nothing older held. */
  history(limit: number, before = Number.POSITIVE_INFINITY): { events: RetainedEvent[]; complete: boolean } {
    const picked: RetainedEvent[] = [];
    let i = this.events.length - 1;
    for (; i >= 0 && picked.length < limit; i--) {
      const e = this.events[i] as RetainedEvent;
      if (e.seq < before && e.event.type === 'msg' && !e.deleted) picked.push(e);
    }
    const complete = !this.events.slice(0, i + 1).some((e) => e.event.type === 'msg' && !e.deleted);
    return { events: picked.reverse(), complete };
  }

  /**
   * Stores a new event with the next room seq; resolves with the seq. Writes from this pod go one stored
   * message at a time per room (its own clients' messages keep their order), and the writes that queue
   * while one is in flight go together in the next message (up to CHAT_EVENTS_PER_WRITE): a busy pod's
   * round trip to JetStream is one event-loop turn (a fan-out to thousands of members takes ~100 ms), so
   * one event per round trip would cap a room at a few events a second and let the queue grow without end.
   * A write that loses the race to another pod reloads the head and tries again.
   */
  write(build: (seq: number, ts: number) => ChatRoomEvent): Promise<number> {
    return new Promise((resolve, reject) => {
      this.queued.push({ build, resolve, reject });
      if (!this.writing) void this.writeQueued();
    });
  }

  private async writeQueued(): Promise<void> {
    this.writing = true;
    while (this.queued.length > 0) {
      const group = this.queued.splice(0, CHAT_EVENTS_PER_WRITE);
      try {
        const first = await this.writeNow(group.map((w) => w.build));
        for (const [i, w] of group.entries()) w.resolve(first + i);
      } catch (error) {
        for (const w of group) w.reject(error);
      }
    }
    this.writing = false;
  }

  /** Stores the events as one message (a single event as itself); resolves with the first one's seq. */
  private async writeNow(builds: QueuedWrite['build'][]): Promise<number> {
    const giveUpAt = Date.now() + WRITE_RETRY_MS;
    for (;;) {
      const { seq, streamSeq } = this.head;
      const ts = Date.now();
      const events = builds.map((build, i) => build(seq + 1 + i, ts));
      const last = events.at(-1) as ChatRoomEvent;
      try {
        const ack = await this.js.publish(
          this.subject,
          bytes(JSON.stringify(events.length === 1 ? events[0] : events)),
          {
            // Compare-and-set on the room's subject: the write only lands if the room's last event is
            // still the one we numbered after, so two pods can never store the same seq.
            expect: { lastSubjectSequence: streamSeq },
            timeout: 5000,
          },
        );
        if (ack.seq > this.head.streamSeq) this.head = { seq: last.seq, streamSeq: ack.seq };
        return seq + 1;
      } catch (error) {
        const lostRace = error instanceof JetStreamApiError && error.code === WRONG_LAST_SEQUENCE;
        if (!lostRace || Date.now() >= giveUpAt) throw new RoomUnavailableError(this.id, error);
        await new Promise((resolve) => setTimeout(resolve, Math.random() * LOST_RACE_BACKOFF_MS));
        const stored = await this.lastStored().catch(() => undefined);
        if (stored && stored.streamSeq > this.head.streamSeq) this.head = stored;
      }
    }
  }

  private async lastStored(): Promise<{ seq: number; streamSeq: number } | undefined> {
    const stored = await this.jsm.streams.getMessage(streams.chat, { last_by_subj: this.subject });
    if (!stored) return undefined;
    const decoded = decode(chatStoredEvents, stored.data);
    if (!decoded.ok) throw new Error(`room ${this.id}: its last stored event is invalid: ${decoded.reason}`);
    return { seq: (decoded.value.at(-1) as ChatRoomEvent).seq, streamSeq: stored.seq };
  }
}
