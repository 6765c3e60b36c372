// Applies segment and lifecycle events to each stream's playlists and writes them to storage.
// Events are handled one at a time (the JetStream consumer acks after the playlist is written, so a crash
// redelivers and the duplicate is recognised). The current epoch of each stream comes from the
// live-assignments bucket (watched) and from the segments themselves, whichever is newer.
// ENDLIST is written when the stream's assignment is marked ended, or on an ingest's `ended` for the stream's
// current session: a streamer who reconnected to another ingest left a session behind, whose `ended` (its
// reconnect grace over) must not close the playlists the new session is filling.
import { decode, type NatsConnection, watchKv } from '@live/bus';
import {
  type AssignmentRecord,
  assignedSession,
  assignmentRecord,
  buckets,
  claimedSession,
  isStaleSessionEvent,
  streams as jsStreams,
  type LifecycleEvent,
  type Rendition,
  type SegmentEvent,
  type SessionRef,
  SUPERVISOR_SESSION,
  segmentEvent,
  subjects,
} from '@live/contracts';
import { cacheControl, type Storage } from '@live/storage';
import { DeliverPolicy, jetstream } from '@nats-io/jetstream';
import { parse } from 'hls-parser';
import type { MasterPlaylist } from 'hls-parser/types.js';
import type { Logger } from 'pino';
import type { Counter } from 'prom-client';
import { StreamPlaylists } from './playlists/stream-playlists.js';

export interface PackagerOptions {
  nc: NatsConnection;
  /** Playlists are written only while this says yes (the replica holds the packager lease). */
  canWrite: () => boolean;
  storage: Storage;
  logger: Logger;
  windowSegments: number;
  deleteGraceMs: number;
  endSettleMs: number;
  metrics: {
    segments: Counter;
    /** `ended` events ignored because they speak for a session the stream has left. */
    staleEnds: Counter;
  };
}

const PLAYLIST = { contentType: 'application/vnd.apple.mpegurl', cacheControl: cacheControl.playlist };
/** Deletions scheduled within this long of each other share a timer (see scheduleDelete). */
const DELETE_BATCH_MS = 1000;

export class Packager {
  private readonly streams = new Map<string, StreamPlaylists>();
  /** Pending ENDLISTs, with the epoch the stream was at when its end was decided. */
  private readonly endTimers = new Map<string, { timer: NodeJS.Timeout; epoch: number }>();
  /** Each stream's latest assignment (watched) and the session its latest `started` claimed (heard). */
  private readonly records = new Map<string, AssignmentRecord>();
  private readonly claims = new Map<string, SessionRef>();
  private readonly deleteTimers = new Set<NodeJS.Timeout>();
  /** The deletions being gathered under one timer (see scheduleDelete). */
  private deleteBatch: { openedAt: number; keys: string[] } | undefined;
  private assignmentWatch: { stop(): void; initialized: Promise<void> } | undefined;
  private readonly log: Logger;

  constructor(private readonly o: PackagerOptions) {
    this.log = o.logger.child({ component: 'packager' });
  }

  /**
   * Follows live-assignments so a failover's new epoch fences the old worker even before its first segment.
   * `initialized` resolves once the assignments present at the start are known.
   */
  async watchAssignments(nc: NatsConnection): Promise<{ initialized: Promise<void> }> {
    this.assignmentWatch = await watchKv({
      nc,
      logger: this.log,
      bucket: buckets.assignments,
      schema: assignmentRecord,
      onPut: async (record) => {
        this.records.set(record.streamId, record);
        const stream = await this.stream(record.streamId);
        // A fault (failover) fences the old epoch now. A planned move (handoverFrom) keeps listing the old
        // worker's segments until the new epoch's first one arrives (accept() switches there): no gap.
        if (!record.handoverFrom) stream.raiseEpoch(record.epoch);
        stream.expected = record.ladder.map((r) => r.name);
        if (record.state === 'ended') {
          // The supervisor ended it (its own ingest-loss ending, or after an `ended` it applied); also what
          // a new leader learns of streams that ended while no packager consumed events.
          if (!stream.ended && stream.renditions.size > 0 && !this.endTimers.has(record.streamId))
            this.scheduleEnd(stream);
        } else if (record.epoch > (this.endTimers.get(record.streamId)?.epoch ?? record.epoch)) {
          // Assigned at a newer epoch after the end was decided: the stream goes on.
          this.cancelEnd(record.streamId);
        }
      },
    });
    return this.assignmentWatch;
  }

  async onSegment(event: SegmentEvent): Promise<void> {
    const stream = await this.stream(event.streamId);
    if (!this.apply(stream, event)) return;
    const pendingEnd = this.endTimers.get(event.streamId);
    if (pendingEnd) pendingEnd.timer.refresh();
    if (event.kind === 'media') await this.writeMedia(stream, event.rendition.name);
    if (stream.masterReady()) await this.writeMaster(stream);
  }

  /** Applies one event to the in-memory playlists; true if it changed them. */
  private apply(stream: StreamPlaylists, event: SegmentEvent): boolean {
    const { result, removed } = stream.accept(event);
    this.o.metrics.segments.inc({ result, kind: event.kind });
    if (result === 'fenced') {
      const { streamId, epoch, workerId } = event;
      this.log.warn(
        { streamId, epoch, workerId, current: stream.currentEpoch },
        'segment of an old epoch dropped',
      );
    } else if (result === 'no-init') {
      this.log.warn({ streamId: event.streamId, key: event.key }, 'segment before its init segment dropped');
    }
    if (result !== 'accepted') {
      // Uploaded but never (or no longer) listed: a zombie's segment, or an old one seen again in a
      // replay after a restart (its deletion timer died with the previous process). Live only: delete it.
      if ((result === 'fenced' || result === 'duplicate') && !stream.isListed(event.key))
        this.scheduleDelete([event.key]);
      return false;
    }
    this.scheduleDelete([...removed.map((e) => e.key), ...stream.unusedInitKeys()]);
    return true;
  }

  /** Every playlist write goes through here: a replica that is not the leader never writes one. */
  private async writePlaylist(key: string, text: string): Promise<void> {
    if (!this.o.canWrite()) throw new Error('not the packager leader: playlist not written');
    await this.o.storage.put(key, Buffer.from(text), PLAYLIST);
  }

  private async writeMedia(stream: StreamPlaylists, rendition: string): Promise<void> {
    await this.writePlaylist(
      StreamPlaylists.mediaKey(stream.streamId, rendition),
      stream.mediaPlaylist(rendition),
    );
  }

  /**
   * How far back a replay starts: the window (at up to 2 s a segment), plus the deletion grace, plus a
   * margin, so every segment whose deletion was still pending in a previous process is seen again.
   */
  private replaySpanMs(): number {
    return this.o.windowSegments * 2000 + this.o.deleteGraceMs + 10_000;
  }

  /**
   * After a restart: what storage holds can be behind LIVE_MEDIA (segments announced while this process
   * was down, or handed to it just before it died and not redelivered until their ack wait passes).
   * Replays the stream's segment events from just before the newest restored segment, in order; what was
   * already applied is recognised as a duplicate.
   */
  private async catchUp(stream: StreamPlaylists): Promise<void> {
    const newest = stream.newestProgramDateTime();
    const consumer = await jetstream(this.o.nc).consumers.get(jsStreams.media, {
      filter_subjects: subjects.mediaSegment(stream.streamId),
      ...(newest
        ? {
            deliver_policy: DeliverPolicy.StartTime,
            opt_start_time: new Date(newest - this.replaySpanMs()).toISOString(),
          }
        : { deliver_policy: DeliverPolicy.All }),
    });
    let applied = 0;
    for (;;) {
      const batch = await consumer.fetch({ max_messages: 500, expires: 1000 });
      let pending = 0;
      let count = 0;
      for await (const m of batch) {
        count++;
        pending = m.info.pending;
        const decoded = decode(segmentEvent, m.data);
        if (decoded.ok && this.apply(stream, decoded.value)) applied++;
      }
      if (count === 0 || pending === 0) break;
    }
    for (const name of stream.renditions.keys()) await this.writeMedia(stream, name);
    this.log.info({ streamId: stream.streamId, applied }, 'caught up with LIVE_MEDIA after restart');
  }

  async onLifecycle(event: LifecycleEvent): Promise<void> {
    const claim = claimedSession(event);
    if (claim) {
      // A new publish (here or on another ingest): the stream goes on, whatever ended before.
      this.claims.set(event.streamId, claim);
      this.cancelEnd(event.streamId);
      return;
    }
    // The supervisor's own `ended` (ingest lost) may still be declined by it (the streamer is back): its
    // decision is the assignment marked ended, seen by the watch.
    if (event.type !== 'ended' || event.sessionId === SUPERVISOR_SESSION) return;
    const record = this.records.get(event.streamId);
    const current = this.claims.get(event.streamId) ?? (record ? assignedSession(record) : null);
    if (isStaleSessionEvent(current, event)) {
      this.o.metrics.staleEnds.inc();
      this.log.info(
        {
          streamId: event.streamId,
          sessionId: event.sessionId,
          ingestId: event.ingestId,
          currentSessionId: current?.sessionId,
          currentIngestId: current?.ingestId,
        },
        'ended of a session the stream has left (another ingest holds it now): no ENDLIST',
      );
      return;
    }
    this.scheduleEnd(await this.stream(event.streamId));
  }

  /** ffmpeg announces its last segments after the source ended: close the playlists once they are in. */
  private scheduleEnd(stream: StreamPlaylists): void {
    const { streamId } = stream;
    this.cancelEnd(streamId);
    const timer = setTimeout(() => {
      this.endTimers.delete(streamId);
      void this.finish(streamId).catch((error: Error) =>
        this.log.error({ streamId, err: error.message }, 'could not close the playlists'),
      );
    }, this.o.endSettleMs);
    this.endTimers.set(streamId, { timer, epoch: stream.currentEpoch });
  }

  private cancelEnd(streamId: string): void {
    const pending = this.endTimers.get(streamId);
    if (!pending) return;
    clearTimeout(pending.timer);
    this.endTimers.delete(streamId);
  }

  private async finish(streamId: string): Promise<void> {
    const stream = await this.stream(streamId);
    stream.ended = true;
    for (const name of stream.renditions.keys()) {
      await this.o.storage.put(
        StreamPlaylists.mediaKey(streamId, name),
        Buffer.from(stream.mediaPlaylist(name)),
        PLAYLIST,
      );
    }
    this.log.info({ streamId }, 'playlists closed (ENDLIST)');
  }

  private masterWritten = new Map<string, string>();

  private async writeMaster(stream: StreamPlaylists): Promise<void> {
    const text = stream.masterPlaylist();
    if (this.masterWritten.get(stream.streamId) === text) return;
    await this.writePlaylist(StreamPlaylists.masterKey(stream.streamId), text);
    this.masterWritten.set(stream.streamId, text);
  }

  /**
   * Deletes keys once the grace has passed. Keys scheduled within a second of each other share one timer
   * (each segment removes one key per rendition, a few a second): one wake-up a second instead of one per
   * key, each deleted at most a second after its grace, never before.
   */
  private scheduleDelete(keys: string[]): void {
    if (keys.length === 0) return;
    const now = Date.now();
    const open = this.deleteBatch;
    if (open && now - open.openedAt < DELETE_BATCH_MS) {
      open.keys.push(...keys);
      return;
    }
    const batch = { openedAt: now, keys: [...keys] };
    this.deleteBatch = batch;
    const timer = setTimeout(() => {
      this.deleteTimers.delete(timer);
      if (this.deleteBatch === batch) this.deleteBatch = undefined;
      for (const key of batch.keys) {
        void this.o.storage
          .delete(key)
          .catch((error: Error) => this.log.warn({ key, err: error.message }, 'delete failed'));
      }
    }, this.o.deleteGraceMs + DELETE_BATCH_MS);
    this.deleteTimers.add(timer);
  }

  /** The stream's playlists; the first time after a start, rebuilt from what storage holds. */
  private async stream(streamId: string): Promise<StreamPlaylists> {
    let stream = this.streams.get(streamId);
    if (stream) return stream;
    stream = new StreamPlaylists(streamId, this.o.windowSegments);
    this.streams.set(streamId, stream);
    const master = await this.o.storage.get(StreamPlaylists.masterKey(streamId));
    if (master) {
      const parsed = parse(master.toString('utf8')) as MasterPlaylist;
      for (const variant of parsed.variants) {
        const name = variant.uri.replace(/\.m3u8$/, '');
        const media = await this.o.storage.get(StreamPlaylists.mediaKey(streamId, name));
        if (!media) continue;
        const rendition: Rendition = {
          name,
          width: variant.resolution?.width ?? 2,
          height: variant.resolution?.height ?? 2,
          fps: variant.frameRate ?? 30,
          videoKbps: Math.max(1, Math.round((variant.averageBandwidth ?? variant.bandwidth) / 1000)),
          audioKbps: 0,
        };
        stream.restore(rendition, variant.codecs ?? '', media.toString('utf8'));
      }
      this.masterWritten.set(streamId, master.toString('utf8'));
      this.log.info({ streamId, epoch: stream.currentEpoch }, 'playlists restored from storage');
      await this.catchUp(stream);
    }
    return stream;
  }

  stop(): void {
    this.assignmentWatch?.stop();
    for (const t of this.endTimers.values()) clearTimeout(t.timer);
    for (const t of this.deleteTimers) clearTimeout(t);
  }
}
