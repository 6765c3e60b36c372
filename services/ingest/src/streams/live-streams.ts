// The streams this ingest instance holds, and their lifecycle:
//   publish accepted -> (first H.264 keyframe) started -> [source_stalled <-> source_resumed]* -> ended
// - A publisher silent for INGEST_SOURCE_STALL_MS is reported source_stalled (NMS does not notice).
// - A publisher whose connection closes gets INGEST_RECONNECT_GRACE_MS to come back: the same stream
//   continues (source_resumed, reason reconnect) with no `ended` in between.
// - Second publisher on a live key: it takes over (source_resumed, reason takeover) and the first is
//   disconnected. A streamer whose OBS reconnects after a silent network drop is the common case, and
//   the old TCP connection may not have closed yet; refusing would lock the streamer out.
// - A source the ladder cannot take (not H.264/AAC, 4:4:4, 10-bit) is refused with `rejected`.
// - `started` goes out as soon as the codec headers describe the source (both headers, or video header +
//   first keyframe for a source without audio); no need to wait for media.
// Source health goes to live.health.ingest.<streamId> every INGEST_HEALTH_INTERVAL_MS.
import { createHmac, randomUUID, timingSafeEqual } from 'node:crypto';
import { type NatsConnection, type OrderedPublisher, publishCore } from '@live/bus';
import {
  type IngestHealth,
  ingestHealth,
  type LifecycleEvent,
  lifecycleEvent,
  type SourceInfo,
  subjects,
} from '@live/contracts';
import type { Logger } from 'pino';
import type { Counter, Gauge } from 'prom-client';
import type { KeyMatch } from '../keys/key-store.js';
import {
  type AudioHeader,
  parseAudioHeader,
  parseVideoHeader,
  UnsupportedSourceError,
  type VideoHeader,
} from '../rtmp/codecs.js';
import type { NmsBroadcast, NmsPacket, NmsSession } from '../rtmp/nms.js';
import { INTERNAL_APP, type PublishDecision, type RtmpHooks } from '../rtmp/rtmp-server.js';

type State = 'starting' | 'live' | 'stalled' | 'reconnecting';
/** Which event the next keyframe announces (the source is described once its codec headers are known). */
type Announce = 'started' | 'reconnect' | 'takeover' | null;

interface Sample {
  at: number;
  bytes: number;
  frames: number;
}

interface LiveStream {
  streamId: string;
  sessionId: string;
  keyHash: string;
  state: State;
  session: NmsSession | null;
  /** NMS's fan-out for this stream (outlives a publisher during the reconnect grace). */
  broadcast: NmsBroadcast | null;
  acceptedAt: number;
  startedAt: number;
  announce: Announce;
  video: VideoHeader | null;
  audio: AudioHeader | null;
  lastDataAt: number;
  frames: number;
  /** Bytes of earlier sessions of this stream (so the rate survives a reconnect). */
  samples: Sample[];
  lastKeyframeDts: number | null;
  keyframeIntervalMs: number | null;
  graceTimer: NodeJS.Timeout | null;
  startTimer: NodeJS.Timeout | null;
}

export interface LiveStreamsOptions {
  nc: NatsConnection;
  events: OrderedPublisher;
  logger: Logger;
  ingestId: string;
  advertiseHost: string;
  /** The RTMP port transcoders reach this instance on. */
  rtmpPort: () => number;
  stallMs: number;
  healthIntervalMs: number;
  reconnectGraceMs: number;
  startTimeoutMs: number;
  lookupKey: (plainKey: string) => KeyMatch | null;
  metrics: { liveStreams: Gauge; events: Counter };
}

export class LiveStreams implements RtmpHooks {
  private readonly byId = new Map<string, LiveStream>();
  private readonly bySession = new Map<NmsSession, LiveStream>();
  /** Key matches between authorizePublish and published (same tick). */
  private readonly pendingKeys = new WeakMap<NmsSession, string>();
  /** Per-process secret for play tokens: a token is only valid on the instance holding the stream. */
  private readonly playSecret = randomUUID();
  private readonly ticker: NodeJS.Timeout;
  private readonly log: Logger;

  constructor(private readonly o: LiveStreamsOptions) {
    this.log = o.logger.child({ component: 'streams' });
    this.ticker = setInterval(() => this.tick(), o.healthIntervalMs);
  }

  get count(): number {
    return this.byId.size;
  }

  // ---- RTMP hooks -------------------------------------------------------------------------------

  authorizePublish(key: string, session: NmsSession): PublishDecision {
    const match = this.o.lookupKey(key);
    if (!match) return { ok: false, reason: 'unknown or revoked stream key' };
    const { streamId } = match.record;
    const current = this.byId.get(streamId);
    if (current?.session && current.session !== session) {
      // Takeover: make NMS treat the old publisher as gone (keeping players attached), then drop it.
      const old = current.session;
      this.bySession.delete(old);
      current.session = null;
      old.broadcast.donePublish(old);
      old.socket.destroy();
      this.log.info({ streamId, keyId: match.record.keyId }, 'second publisher takes over the stream');
    }
    this.pendingKeys.set(session, match.hash);
    return { ok: true, streamId };
  }

  published(session: NmsSession, streamId: string, acceptedAt: number): void {
    const keyHash = this.pendingKeys.get(session) ?? '';
    // NMS keeps players attached for its own grace window; ours ends the stream first (see end()).
    session.broadcast.publishGraceMs = this.o.reconnectGraceMs + 5000;
    let stream = this.byId.get(streamId);
    if (stream) {
      const wasDisconnected = stream.state === 'reconnecting';
      if (stream.graceTimer) clearTimeout(stream.graceTimer);
      stream.graceTimer = null;
      // A reconnect or takeover before the first `started` still announces `started`.
      stream.announce =
        stream.announce === 'started' ? 'started' : wasDisconnected ? 'reconnect' : 'takeover';
      stream.state = 'starting';
      stream.keyHash = keyHash;
      stream.video = null;
      stream.audio = null;
      stream.lastKeyframeDts = null;
    } else {
      stream = {
        streamId,
        sessionId: randomUUID(),
        keyHash,
        state: 'starting',
        session: null,
        broadcast: null,
        acceptedAt,
        startedAt: 0,
        announce: 'started',
        video: null,
        audio: null,
        lastDataAt: acceptedAt,
        frames: 0,
        samples: [],
        lastKeyframeDts: null,
        keyframeIntervalMs: null,
        graceTimer: null,
        startTimer: null,
      };
      this.byId.set(streamId, stream);
      this.o.metrics.liveStreams.set(this.byId.size);
    }
    stream.session = session;
    stream.broadcast = session.broadcast;
    stream.acceptedAt = acceptedAt;
    stream.lastDataAt = acceptedAt;
    stream.samples = [];
    this.bySession.set(session, stream);
    if (stream.startTimer) clearTimeout(stream.startTimer);
    stream.startTimer = setTimeout(() => {
      if (stream.announce !== null) {
        this.refuseSource(stream, `no H.264 video within ${this.o.startTimeoutMs} ms of publishing`);
      }
    }, this.o.startTimeoutMs);
    this.log.info({ streamId, sessionId: stream.sessionId, peer: session.ip }, 'publish accepted');
  }

  authorizePlay(streamId: string, token: string | undefined): string | null {
    if (!this.byId.has(streamId)) return `stream ${streamId} is not live on this ingest`;
    const expected = Buffer.from(this.playToken(streamId));
    if (!token || token.length !== expected.length || !timingSafeEqual(Buffer.from(token), expected)) {
      return 'missing or wrong play token';
    }
    return null;
  }

  data(session: NmsSession): void {
    const stream = this.bySession.get(session);
    if (!stream) return;
    stream.lastDataAt = Date.now();
    if (stream.state === 'stalled') {
      stream.state = 'live';
      this.emit(stream, { type: 'source_resumed', reason: 'data' });
      this.log.info({ streamId: stream.streamId }, 'source resumed');
    }
  }

  announced(session: NmsSession): boolean {
    return this.bySession.get(session)?.announce === null;
  }

  packet(session: NmsSession, packet: NmsPacket): void {
    const stream = this.bySession.get(session);
    if (!stream) return;
    try {
      switch (packet.flags) {
        // The source is described (and announced) once both codec headers are in; a source without
        // audio is announced at its first keyframe.
        case 0:
          stream.audio = parseAudioHeader(packet.data);
          if (stream.announce !== null && stream.video) this.announce(stream);
          break;
        case 2:
          stream.video = parseVideoHeader(packet.data);
          if (stream.announce !== null && stream.audio) this.announce(stream);
          break;
        case 3:
          stream.frames++;
          if (stream.lastKeyframeDts !== null)
            stream.keyframeIntervalMs = packet.dts - stream.lastKeyframeDts;
          stream.lastKeyframeDts = packet.dts;
          if (stream.announce !== null) this.announce(stream);
          break;
        case 4:
          stream.frames++;
          break;
        default:
          break;
      }
    } catch (error) {
      if (error instanceof UnsupportedSourceError) this.refuseSource(stream, error.message);
      else this.refuseSource(stream, `unreadable codec header: ${(error as Error).message}`);
    }
  }

  publisherClosed(session: NmsSession, deliberate: boolean): void {
    const stream = this.bySession.get(session);
    this.bySession.delete(session);
    if (!stream || stream.session !== session) return;
    stream.session = null;
    if (stream.startTimer) clearTimeout(stream.startTimer);
    if (stream.announce === 'started') {
      // Never announced: nothing downstream knows of it.
      this.forget(stream);
      return;
    }
    if (deliberate) {
      // The streamer pressed Stop: viewers see the end now, not after a reconnect grace nobody will use.
      this.end(stream, 'publisher_stopped');
      return;
    }
    stream.state = 'reconnecting';
    this.emit(stream, {
      type: 'source_stalled',
      silentForMs: Date.now() - stream.lastDataAt,
      disconnected: true,
    });
    this.log.info(
      { streamId: stream.streamId, graceMs: this.o.reconnectGraceMs },
      'publisher left, waiting for a reconnect',
    );
    stream.graceTimer = setTimeout(() => this.end(stream, 'publisher_left'), this.o.reconnectGraceMs);
  }

  // ---- commands -----------------------------------------------------------------------------------

  /** Ends every stream published with this key (it was revoked); returns how many. */
  kickKey(keyHash: string): number {
    let kicked = 0;
    for (const stream of [...this.byId.values()]) {
      if (stream.keyHash === keyHash) {
        this.log.warn({ streamId: stream.streamId }, 'stream key revoked: disconnecting the publisher');
        this.end(stream, 'key_revoked');
        kicked++;
      }
    }
    return kicked;
  }

  /**
   * Process shutdown (a rolling update, a node drain): closes every publisher and player *without* `ended`.
   * The streamer (OBS reconnects by itself) comes back through another ingest pod, whose `started` gives the
   * stream a new epoch in the same playlist; if nobody comes back, the supervisor ends the stream once no
   * ingest has reported on it for SUPERVISOR_SOURCE_LOST_MS.
   */
  releaseAll(): void {
    clearInterval(this.ticker);
    for (const stream of [...this.byId.values()]) {
      this.log.info({ streamId: stream.streamId }, 'ingest shutting down: publisher released without ending');
      this.close(stream);
    }
  }

  // ---- internals ----------------------------------------------------------------------------------

  private playToken(streamId: string): string {
    return createHmac('sha256', this.playSecret).update(streamId).digest('base64url').slice(0, 32);
  }

  private sourceInfo(stream: LiveStream): SourceInfo {
    const video = stream.video as VideoHeader;
    const session = stream.session as NmsSession;
    return {
      url: `rtmp://${this.o.advertiseHost}:${this.o.rtmpPort()}/${INTERNAL_APP}/${stream.streamId}?token=${this.playToken(stream.streamId)}`,
      video: {
        codec: 'h264',
        profile: video.profile,
        level: video.level,
        width: video.width,
        height: video.height,
        fps: Number(session.videoFramerate) || 0,
        chromaFormat: video.chromaFormat,
        bitDepth: video.bitDepth,
      },
      audio: stream.audio
        ? { codec: 'aac', sampleRate: stream.audio.sampleRate, channels: stream.audio.channels }
        : null,
      announcedKbps: (Number(session.videoDatarate) || 0) + (Number(session.audioDatarate) || 0),
      ingestId: this.o.ingestId,
    };
  }

  private announce(stream: LiveStream): void {
    if (!stream.video) {
      this.refuseSource(stream, 'keyframe arrived before the H.264 sequence header');
      return;
    }
    const kind = stream.announce;
    stream.announce = null;
    stream.state = 'live';
    if (stream.startTimer) clearTimeout(stream.startTimer);
    const source = this.sourceInfo(stream);
    if (kind === 'started') {
      stream.startedAt = Date.now();
      this.emit(stream, { type: 'started', source, acceptedAt: stream.acceptedAt });
      this.log.info(
        { streamId: stream.streamId, video: source.video, audio: source.audio },
        'stream started',
      );
    } else if (kind) {
      this.emit(stream, { type: 'source_resumed', reason: kind, source });
      this.log.info({ streamId: stream.streamId, reason: kind }, 'stream continues with a new publisher');
    }
  }

  private refuseSource(stream: LiveStream, reason: string): void {
    this.log.warn({ streamId: stream.streamId, reason }, 'source refused');
    this.emit(stream, { type: 'rejected', reason });
    if (stream.announce === 'started') {
      this.forget(stream);
      stream.session?.socket.destroy();
    } else {
      this.end(stream, 'rejected');
    }
  }

  private end(
    stream: LiveStream,
    reason: 'publisher_stopped' | 'publisher_left' | 'key_revoked' | 'rejected',
  ): void {
    if (this.byId.get(stream.streamId) !== stream) return;
    this.emit(stream, {
      type: 'ended',
      reason,
      durationMs: stream.startedAt ? Date.now() - stream.startedAt : 0,
    });
    this.log.info({ streamId: stream.streamId, reason }, 'stream ended');
    this.close(stream);
  }

  /** Disconnects the publisher and the players (transcoders) of a stream and forgets it. */
  private close(stream: LiveStream): void {
    const { session, broadcast } = stream;
    this.forget(stream);
    session?.socket.destroy();
    if (broadcast) {
      broadcast._finishPublish();
      // Players (transcoders) are never disconnected by NMS; end them so their ffmpeg sees the end.
      for (const player of broadcast.subscribers.values()) player.socket.destroy();
    }
  }

  private forget(stream: LiveStream): void {
    if (stream.graceTimer) clearTimeout(stream.graceTimer);
    if (stream.startTimer) clearTimeout(stream.startTimer);
    if (stream.session) this.bySession.delete(stream.session);
    if (this.byId.get(stream.streamId) === stream) this.byId.delete(stream.streamId);
    this.o.metrics.liveStreams.set(this.byId.size);
  }

  private emit(
    stream: LiveStream,
    event: DistributiveOmit<LifecycleEvent, 'id' | 'streamId' | 'sessionId' | 'ingestId' | 'at'>,
  ): void {
    const full = {
      ...event,
      id: randomUUID(),
      streamId: stream.streamId,
      sessionId: stream.sessionId,
      // Which ingest speaks: a streamer may have moved on to another one, whose session is the current one.
      ingestId: this.o.ingestId,
      at: new Date().toISOString(),
    } as LifecycleEvent;
    this.o.metrics.events.inc({ type: full.type });
    void this.o.events.publish(lifecycleEvent, subjects.streamEvent(full.streamId, full.type), full, full.id);
  }

  private tick(): void {
    const now = Date.now();
    for (const stream of this.byId.values()) {
      const session = stream.session;
      if (session) {
        stream.samples.push({ at: now, bytes: session.inBytes, frames: stream.frames });
        // Keep a bit over one second of samples for the rates.
        while (stream.samples.length > 2 && now - (stream.samples[1] as Sample).at >= 1000)
          stream.samples.shift();
      }
      const silentForMs = now - stream.lastDataAt;
      if (stream.state === 'live' && silentForMs >= this.o.stallMs) {
        stream.state = 'stalled';
        this.emit(stream, { type: 'source_stalled', silentForMs, disconnected: false });
        this.log.warn({ streamId: stream.streamId, silentForMs }, 'source stalled');
      }
      if (stream.announce === 'started') continue;
      const first = stream.samples[0];
      const last = stream.samples[stream.samples.length - 1];
      const span = first && last ? (last.at - first.at) / 1000 : 0;
      const health: IngestHealth = {
        streamId: stream.streamId,
        sessionId: stream.sessionId,
        ingestId: this.o.ingestId,
        at: now,
        bytesPerSec: span > 0 && first && last ? Math.round((last.bytes - first.bytes) / span) : 0,
        fps: span > 0 && first && last ? Math.round(((last.frames - first.frames) / span) * 10) / 10 : 0,
        keyframeIntervalMs: stream.keyframeIntervalMs,
        silentForMs,
        state: stream.state === 'starting' ? 'live' : stream.state,
      };
      publishCore(this.o.nc, ingestHealth, subjects.ingestHealth(stream.streamId), health);
    }
  }
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
