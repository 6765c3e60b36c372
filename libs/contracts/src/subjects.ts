// Every NATS subject, stream and bucket name of the platform, built only here.
// A subject token must match ^[-\w]+$ so that a stream id can never inject a wildcard or an extra level.

const TOKEN = /^[-\w]+$/;

/** Stream (channel) ids: lowercase, usable as a subject token, an RTMP stream name and a storage prefix. */
export const STREAM_ID_PATTERN = /^[a-z0-9][a-z0-9_-]{0,63}$/;

export class InvalidSubjectTokenError extends Error {
  constructor(readonly token: string) {
    super(`invalid subject token ${JSON.stringify(token)}: must match ${TOKEN}`);
    this.name = 'InvalidSubjectTokenError';
  }
}

export function token(value: string): string {
  if (!TOKEN.test(value)) throw new InvalidSubjectTokenError(value);
  return value;
}

export const LIFECYCLE_TYPES = [
  'started',
  'ended',
  'source_stalled',
  'source_resumed',
  'rejected',
  'transcode_failed',
  'assigned',
  'failover',
  'moved',
] as const;
export type LifecycleType = (typeof LIFECYCLE_TYPES)[number];

export const subjects = {
  /** live.stream.<streamId>.<type>: lifecycle events, stored in LIVE_EVENTS. */
  streamEvent: (streamId: string, type: LifecycleType) => `live.stream.${token(streamId)}.${token(type)}`,
  /** Every lifecycle event of every stream (for consumers and `nats sub`). */
  allStreamEvents: 'live.stream.>',
  /** live.media.<streamId>.segment: segment-ready events, stored in LIVE_MEDIA. */
  mediaSegment: (streamId: string) => `live.media.${token(streamId)}.segment`,
  allMedia: 'live.media.>',
  /**
   * live.part.<streamId>: LL-HLS part-ready events, core NATS (not stored: a part matters for seconds and an
   * origin that starts later lists segments until new parts arrive). Metadata only: the origin fetches the
   * bytes from the worker's URL in the event.
   */
  mediaPart: (streamId: string) => `live.part.${token(streamId)}`,
  allParts: 'live.part.*',
  /**
   * live.ll.watch.<streamId>: an LL-HLS origin replica hears this stream's parts (someone watches it in LL
   * through it), core NATS, once when it starts and then every second. A worker announces a stream's parts
   * only while one was heard within PARTS_WANTED_MS (and in a job's first PARTS_WANTED_MS).
   */
  llWatch: (streamId: string) => `live.ll.watch.${token(streamId)}`,
  allLlWatches: 'live.ll.watch.*',
  /** live.health.ingest.<streamId>: source health, core NATS, ~5/s. */
  ingestHealth: (streamId: string) => `live.health.ingest.${token(streamId)}`,
  allIngestHealth: 'live.health.ingest.*',
  /** live.health.transcoder.<workerId>: worker heartbeat, core NATS, ~5/s. */
  transcoderHealth: (workerId: string) => `live.health.transcoder.${token(workerId)}`,
  /** live.health.origin.<originId>: an LL-HLS origin (packager replica) says it is there, every second. */
  originHealth: (originId: string) => `live.health.origin.${token(originId)}`,
  /** live.dlq.<original subject>: messages that failed validation, with the reason; stored in LIVE_DLQ. */
  deadLetter: (originalSubject: string) => `live.dlq.${originalSubject}`,
  allDeadLetters: 'live.dlq.>',
  /** Operator endpoints (request-reply through the NATS services framework). */
  ctl: {
    keysCreate: 'live.ctl.keys.create',
    keysRevoke: 'live.ctl.keys.revoke',
    /** Per worker: the supervisor addresses one worker, not a queue group. */
    transcoderAssign: (workerId: string) => `live.ctl.transcoder.${token(workerId)}.assign`,
    transcoderRevoke: (workerId: string) => `live.ctl.transcoder.${token(workerId)}.revoke`,
    /** Supervisor -> one worker: stop taking streams, hand yours over (the supervisor moves them). */
    transcoderDrain: (workerId: string) => `live.ctl.transcoder.${token(workerId)}.drain`,
    /** Operator -> supervisor leader: drain a worker (make-before-break for each of its streams). */
    workerDrain: 'live.ctl.worker.drain',
    /** Operator -> supervisor leader: move one stream to another worker (make-before-break). */
    streamMove: 'live.ctl.stream.move',
    /** Operator -> any chat pod: mint a chat token. */
    chatToken: 'live.ctl.chat.token',
    /** Operator -> any chat pod: moderation (enforced by every pod through chat-moderation). */
    chatBan: 'live.ctl.chat.ban',
    chatUnban: 'live.ctl.chat.unban',
    chatTimeout: 'live.ctl.chat.timeout',
    chatDelete: 'live.ctl.chat.delete',
    chatSlow: 'live.ctl.chat.slow',
    chatFilter: 'live.ctl.chat.filter',
  },
  /** live.chat.room.<room>: a room's events (messages, deletions), stored in CHAT. */
  chatRoom: (room: string) => `live.chat.room.${token(room)}`,
  allChatRooms: 'live.chat.room.*',
  /** live.chat.review.<room>: the optional message review hook (request-reply). */
  chatReview: (room: string) => `live.chat.review.${token(room)}`,
  /** live.alert.standby: the warm standby pool is short (or restored); stored in LIVE_EVENTS. */
  standbyAlert: 'live.alert.standby',
  /**
   * live.alert.placement.<streamId>: a stream waits for a worker with a free slot (or got one, or ended while
   * waiting); stored in LIVE_EVENTS, one subject per stream so the last message per subject is its state.
   */
  placementAlert: (streamId: string) => `live.alert.placement.${token(streamId)}`,
  allPlacementAlerts: 'live.alert.placement.*',
  allAlerts: 'live.alert.>',
  allTranscoderHealth: 'live.health.transcoder.*',
  allOriginHealth: 'live.health.origin.*',
  /** live.health.local: the local runner's process table (`npm start`), core NATS, every second. */
  localProcesses: 'live.health.local',
} as const;

/** JetStream stream names. */
export const streams = {
  events: 'LIVE_EVENTS',
  media: 'LIVE_MEDIA',
  deadLetters: 'LIVE_DLQ',
  chat: 'CHAT',
} as const;

/** JetStream KV bucket names. */
export const buckets = {
  assignments: 'live-assignments',
  workers: 'live-workers',
  streamKeys: 'stream-keys',
  /** Leader leases of replicated roles (packager, supervisor): <role> -> lease. */
  leases: 'live-leases',
  /** Chat pods' load: <podId> -> connections, capacity, draining. */
  chatNodes: 'chat-nodes',
  /** Chat bans, timeouts and room settings: <room>.ban.<user>, <room>.timeout.<user>, <room>.settings. */
  chatModeration: 'chat-moderation',
  /**
   * LL-HLS media sequence numbering shared by the packager replicas: <streamId>.<rendition> -> which segment
   * has which number (written by the stream's owner replica when its numbering starts or moves).
   */
  llNumbering: 'live-ll-numbering',
} as const;

/** Key of a rendition's entry in the live-ll-numbering bucket (stream ids and rendition names are tokens). */
export const llNumberingKey = (streamId: string, rendition: string): string => `${streamId}.${rendition}`;

/** Names under which each service registers with the NATS services framework ($SRV.*). */
export const serviceNames = {
  ingest: 'live-ingest',
  transcoder: 'live-transcoder',
  packager: 'live-packager',
  chat: 'live-chat',
  supervisor: 'live-supervisor',
  web: 'live-web',
} as const;
