// The RTMP listener for streamers and transcoders. Each connection is a node-media-server RtmpSession
// (protocol, GOP cache, fan-out to players), with this service deciding *before* NMS registers anything:
// - publish: the stream key is checked first; an unknown key is refused with an RTMP error status and
//   nothing is registered (no ghost publisher); a good key is rewritten to the internal path /src/<streamId>,
//   so the key never travels further than this file.
// - play: only /src/<streamId>?token=<play token> is served (transcoders); everything else is refused.
// - bad input (garbage, silence, malformed commands, oversized messages) closes that one connection, logged
//   once, and never reaches NMS code paths that would throw out of a socket handler and end the process.
import { createServer, type Server, type Socket } from 'node:net';
import { parse as parseQuery } from 'node:querystring';
import type { Logger } from 'pino';
import { type NmsPacket, type NmsSession, nmsContext, nmsLogger, RtmpSession } from './nms.js';

/** The RTMP application transcoders play sources from. */
export const INTERNAL_APP = 'src';

const RTMP_TYPE_AMF3_DATA = 15;
const RTMP_TYPE_AMF0_DATA = 18;
const RTMP_TYPE_AMF3_COMMAND = 17;
const RTMP_TYPE_AMF0_COMMAND = 20;
const METADATA_TYPES = new Set([
  RTMP_TYPE_AMF3_DATA,
  RTMP_TYPE_AMF0_DATA,
  RTMP_TYPE_AMF3_COMMAND,
  RTMP_TYPE_AMF0_COMMAND,
]);
/** Real encoders use a handful of chunk streams; thousands mean a hostile client allocating buffers. */
const MAX_CHUNK_STREAMS = 64;
/** RTMP chunk sizes are 1..0xFFFFFF in practice (spec: 31 bits); 0 would stall NMS's parser. */
const MAX_CHUNK_SIZE = 0xffffff;
/** What one read of a socket returns at most (libuv's suggested buffer, which Node allocates). */
const READ_BUFFER_BYTES = 64 * 1024;
const NAME = /^[a-zA-Z0-9_-]{1,128}$/;

export type PublishDecision = { ok: true; streamId: string } | { ok: false; reason: string };

export interface RtmpHooks {
  /** Synchronous: decides on a publish before NMS sees it. `key` matches ^[a-zA-Z0-9_-]+$. */
  authorizePublish(key: string, session: NmsSession): PublishDecision;
  /** NMS accepted the publish; `session.streamPath` is /src/<streamId>. */
  published(session: NmsSession, streamId: string, acceptedAt: number): void;
  /** Synchronous: null to allow playing `streamId`, or the reason to refuse. */
  authorizePlay(streamId: string, token: string | undefined): string | null;
  /** Every media packet of an accepted publisher, before NMS fans it out. */
  packet(session: NmsSession, packet: NmsPacket): void;
  /** Bytes arrived from an accepted publisher (for stall detection). */
  data(session: NmsSession): void;
  /**
   * The publisher's source is described and announced (`started`, or resumed after a reconnect). Until
   * then its reads are not batched: the codec headers and first keyframe are the stream's start latency.
   */
  announced(session: NmsSession): boolean;
  /**
   * An accepted publisher's connection closed. `deliberate`: it sent RTMP deleteStream first (OBS's "Stop
   * Streaming", ffmpeg at the end of its input); a dropped connection sends nothing.
   */
  publisherClosed(session: NmsSession, deliberate: boolean): void;
}

export class RtmpInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RtmpInputError';
  }
}

export interface RtmpServerOptions {
  bind: string;
  port: number;
  app: string;
  handshakeTimeoutMs: number;
  maxMessageBytes: number;
  maxMetadataBytes: number;
  /** A publisher's socket is read at most once per this many ms (0: as data arrives). */
  readIntervalMs: number;
  logger: Logger;
  hooks: RtmpHooks;
  /** Counts refused connections by reason class (metrics). */
  onRefused?: (kind: 'bad_input' | 'auth' | 'timeout' | 'play') => void;
  /** Counts reads from accepted publishers (metrics: the wake-ups readIntervalMs saves). */
  onPublisherRead?: () => void;
}

/** The libuv stream behind a net.Socket: readStart/readStop are what net.Socket itself calls. */
interface StreamHandle {
  readStart?: () => number;
  readStop?: () => number;
}
const handleOf = (socket: Socket) => (socket as unknown as { _handle?: StreamHandle })._handle;

/**
 * Stops the kernel reads of a socket until `startReading`, leaving what arrives in the kernel's buffer.
 * Not `pause()`: that stops only the 'data' events, and Node goes on reading into the stream's buffer (a
 * wake-up per arriving packet) up to its high-water mark; the buffered chunks then come one per resume.
 * Below the stream: the stream stays flowing with nothing buffered, and net.Socket's own flag (`reading`)
 * still says reading, so Node does not start the handle again on its own (it would, from its read-ahead).
 */
function stopReading(socket: Socket): boolean {
  const handle = handleOf(socket);
  if (!handle?.readStop || !handle.readStart) return false;
  return handle.readStop() === 0;
}

function startReading(socket: Socket): void {
  if (!socket.destroyed) handleOf(socket)?.readStart?.();
}

export class IngestRtmpServer {
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();
  private readonly log: Logger;

  constructor(private readonly options: RtmpServerOptions) {
    this.log = options.logger;
    // NMS logs with console at its own levels; route its lines into ours (its info lines are per-packet noise).
    const nmsLog = options.logger.child({ component: 'nms' });
    nmsLogger.level = 'info';
    nmsLogger.log = (message: string, level = 'info') => {
      if (level === 'error' || level === 'warn') nmsLog.debug(message);
      else nmsLog.trace(message);
    };
    this.server = createServer((socket) => this.accept(socket));
    // Errors on the listening socket after start are logged; a busy port at start rejects listen().
    this.server.on('error', (error) => this.log.error({ err: error.message }, 'RTMP listener error'));
  }

  listen(): Promise<number> {
    return new Promise((resolve, reject) => {
      const onError = (error: Error) => reject(new Error(`RTMP port ${this.options.port}: ${error.message}`));
      this.server.once('error', onError);
      this.server.listen(this.options.port, this.options.bind, () => {
        this.server.off('error', onError);
        const address = this.server.address();
        resolve(typeof address === 'object' && address ? address.port : this.options.port);
      });
    });
  }

  /** Stops accepting and closes every connection. */
  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      for (const socket of this.sockets) socket.destroy();
    });
  }

  private accept(socket: Socket): void {
    const {
      hooks,
      app,
      handshakeTimeoutMs,
      maxMessageBytes,
      maxMetadataBytes,
      readIntervalMs,
      onPublisherRead,
    } = this.options;
    this.sockets.add(socket);
    socket.setNoDelay(true);
    const session = new RtmpSession(socket);
    // One read from a publisher fans out as several RTMP messages to each player (transcoder) within the
    // same tick; corking until the next tick sends them with one syscall instead of one per message
    // (Nagle is off, so each write would otherwise be its own TCP segment).
    const send = session.sendBuffer;
    let corked = false;
    session.sendBuffer = (buffer: Buffer) => {
      if (!corked && !socket.destroyed) {
        corked = true;
        socket.cork();
        process.nextTick(() => {
          corked = false;
          socket.uncork();
        });
      }
      send(buffer);
    };
    const rtmp = session.rtmp;
    const log = this.log.child({ component: 'rtmp', conn: session.id, peer: session.ip });
    let established = false;
    let refused = false;

    // Refuse once: log once, answer with an RTMP status if useful, and close this connection only.
    const refuse = (
      kind: 'bad_input' | 'auth' | 'timeout' | 'play',
      reason: string,
      status?: { code: string },
    ) => {
      if (refused) return;
      refused = true;
      this.options.onRefused?.(kind);
      log.warn({ kind, reason }, 'RTMP connection refused');
      if (status) {
        try {
          rtmp.sendStatusMessage(rtmp.parserPacket.header.stream_id, 'error', status.code, reason);
        } catch {
          // the status is a courtesy; the close below is what matters
        }
        socket.end();
        // Do not wait on a client that will not read its last bytes.
        setTimeout(() => socket.destroy(), 2000).unref();
      } else {
        socket.destroy();
      }
    };

    const timer = setTimeout(() => {
      if (!established) refuse('timeout', `no publish or play within ${handshakeTimeoutMs} ms`);
    }, handshakeTimeoutMs);
    timer.unref();

    // Bound what NMS allocates: it sizes a buffer from the 24-bit message length each client declares.
    const packetAlloc = rtmp.packetAlloc.bind(rtmp);
    rtmp.packetAlloc = () => {
      const { length, type } = rtmp.parserPacket.header;
      if (METADATA_TYPES.has(type) && length > maxMetadataBytes) {
        throw new RtmpInputError(`metadata/command message of ${length} bytes (limit ${maxMetadataBytes})`);
      }
      if (length > maxMessageBytes)
        throw new RtmpInputError(`message of ${length} bytes (limit ${maxMessageBytes})`);
      packetAlloc();
    };
    const packetParse = rtmp.packetParse.bind(rtmp);
    rtmp.packetParse = () => {
      packetParse();
      if (rtmp.inPackets.size > MAX_CHUNK_STREAMS) throw new RtmpInputError('too many chunk streams');
    };

    const onPublish = rtmp.onPublish.bind(rtmp);
    rtmp.onPublish = (message) => {
      const key = String(message.streamName ?? '').split('?')[0] ?? '';
      if (rtmp.streamApp !== app) {
        refuse('auth', `unknown application "${String(rtmp.streamApp).slice(0, 64)}": publish to /${app}`, {
          code: 'NetStream.Publish.BadName',
        });
        return;
      }
      if (!NAME.test(key)) {
        refuse('auth', 'stream key has characters outside A-Z a-z 0-9 _ -', {
          code: 'NetStream.Publish.BadName',
        });
        return;
      }
      const decision = hooks.authorizePublish(key, session);
      if (!decision.ok) {
        refuse('auth', decision.reason, { code: 'NetStream.Publish.BadName' });
        return;
      }
      // From here on NMS only knows the internal path; the key stays in this function.
      rtmp.streamApp = INTERNAL_APP;
      message.streamName = decision.streamId;
      const acceptedAt = Date.now();
      onPublish(message);
      if (session.isPublisher) {
        established = true;
        hooks.published(session, decision.streamId, acceptedAt);
      } else {
        refuse('auth', 'the stream is busy', { code: 'NetStream.Publish.BadName' });
      }
    };

    const onPlay = rtmp.onPlay.bind(rtmp);
    rtmp.onPlay = (message) => {
      const [name = '', query = ''] = String(message.streamName ?? '').split('?');
      const token = parseQuery(query).token;
      const reason =
        rtmp.streamApp !== INTERNAL_APP || !NAME.test(name)
          ? 'playback is not offered here (viewers watch over HLS)'
          : hooks.authorizePlay(name, typeof token === 'string' ? token : undefined);
      if (reason !== null) {
        refuse('play', reason, { code: 'NetStream.Play.Failed' });
        return;
      }
      onPlay(message);
      established = !session.socket.destroyed;
    };

    // A publisher that is done says so before it hangs up (librtmp/OBS and ffmpeg send deleteStream when
    // they stop); a network drop does not. Only the latter deserves a reconnect grace.
    let unpublished = false;
    const onDeleteStream = rtmp.onDeleteStream.bind(rtmp);
    rtmp.onDeleteStream = (message) => {
      if (session.isPublisher) unpublished = true;
      onDeleteStream(message);
    };

    const onData = session.onData;
    let readPaused = false;
    session.onData = (data: Buffer) => {
      if (refused) return;
      try {
        onData(data);
      } catch (error) {
        refuse('bad_input', `malformed RTMP: ${(error as Error).message}`);
        return;
      }
      const chunk = rtmp.inChunkSize;
      if (!(chunk >= 1 && chunk <= MAX_CHUNK_SIZE)) {
        refuse('bad_input', `invalid RTMP chunk size ${chunk}`);
        return;
      }
      if (session.isPublisher) {
        hooks.data(session);
        onPublisherRead?.();
        // Read a publisher at most once per readIntervalMs: what it sent meanwhile waits in the kernel's
        // buffer and comes in one read, relayed to the transcoders in one write. An encoder sends each
        // audio and video frame on its own (~75 writes a second at 30 fps), and every read is a wake-up of
        // this process and of each transcoder's ffmpeg: at 50 ms, 20 a second, for at most 50 ms of delay.
        // A read that filled Node's whole read buffer left more behind (a burst, or a source above
        // 64 KiB per interval, ~10 Mbit/s at 50 ms): read on until a read comes back short.
        if (
          readIntervalMs > 0 &&
          !readPaused &&
          data.length < READ_BUFFER_BYTES &&
          hooks.announced(session) &&
          stopReading(socket)
        ) {
          readPaused = true;
          setTimeout(() => {
            readPaused = false;
            startReading(socket);
          }, readIntervalMs).unref();
        }
      }
    };

    const onPacket = session.onPacket;
    session.onPacket = (packet: NmsPacket) => {
      if (refused || !session.isPublisher) return;
      hooks.packet(session, packet);
      onPacket(packet);
    };

    socket.on('close', () => {
      clearTimeout(timer);
      this.sockets.delete(socket);
      if (session.isPublisher) hooks.publisherClosed(session, unpublished);
    });
    session.run();
    nmsContext.sessions.set(session.id, session);
  }
}
