// The parts of node-media-server 4 this service builds on, typed. NMS ships no types and no way to act
// before a publish is registered, so the ingest creates NMS's own RtmpSession per connection and wraps a
// few of its methods (see rtmp-server.ts). Pinned to node-media-server 4.4.x in package.json; the ingest
// tests exercise every wrapped method, so an upgrade that changes them fails loudly.
import { createRequire } from 'node:module';
import type { Socket } from 'node:net';

const require = createRequire(import.meta.url);

export interface NmsPacket {
  codec_id: number;
  /** 8 audio, 9 video, 18 data. */
  codec_type: number;
  /** 0 audio header, 1 audio frame, 2 video header, 3 video keyframe, 4 video frame, 5 metadata. */
  flags: number;
  dts: number;
  pts: number;
  size: number;
  /** The FLV tag body. Valid only during the callback (NMS reuses the buffer). */
  data: Buffer;
}

export interface NmsCommand {
  cmd: string;
  streamName?: unknown;
  transId?: number;
}

export interface NmsRtmp {
  streamApp: string;
  inChunkSize: number;
  inPackets: Map<number, unknown>;
  parserPacket: { header: { length: number; type: number; stream_id: number } };
  onPublish(message: NmsCommand): void;
  onPlay(message: NmsCommand): void;
  /** Called for the RTMP deleteStream command (a no-op in NMS). */
  onDeleteStream(message: NmsCommand): void;
  packetAlloc(): void;
  packetParse(): void;
  sendStatusMessage(streamId: number, level: string, code: string, description: string): void;
}

export interface NmsBroadcast {
  publisher: NmsSession | null;
  subscribers: Map<string, NmsSession>;
  publishGraceMs: number;
  donePublish(session: NmsSession): void;
  _finishPublish(): void;
}

export interface NmsSession {
  id: string;
  ip: string;
  socket: Socket;
  rtmp: NmsRtmp;
  streamPath: string;
  isPublisher: boolean;
  inBytes: number;
  outBytes: number;
  videoFramerate: number;
  videoDatarate: number;
  audioDatarate: number;
  broadcast: NmsBroadcast;
  run(): void;
  onData(data: Buffer): void;
  /** Every RTMP message NMS sends to this session's peer goes through here. */
  sendBuffer(buffer: Buffer): void;
  onPacket(packet: NmsPacket): void;
  close(): void;
}

interface NmsLogger {
  level: string;
  log(message: string, level?: string): void;
}

export const RtmpSession: new (
  socket: Socket,
) => NmsSession = require('node-media-server/src/session/rtmp_session.js');
export const nmsContext: {
  broadcasts: Map<string, NmsBroadcast>;
  sessions: Map<string, NmsSession>;
} = require('node-media-server/src/core/context.js');
export const nmsLogger: NmsLogger = require('node-media-server/src/core/logger.js');
export const parseH264Sps: (sps: Buffer) => { width: number; height: number } | null =
  require('node-media-server/src/protocol/sps_info.js').parseH264Sps;
