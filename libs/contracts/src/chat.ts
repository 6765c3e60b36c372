// Chat: the WebSocket protocol between browsers and chat pods (ws://HOST/chat/<room>, JSON text frames), the
// token claims, the room events stored in the CHAT stream, the moderation records, the pods' load records
// and the operator endpoints. docs/architecture.md (Chat) describes the protocol for client authors.
import { z } from 'zod';
import { streamId } from './events.js';

/** A room is a stream's chat: its id is the stream id. */
export const roomId = streamId;

/** User ids come from the site's login; they are KV keys and log fields, so a safe alphabet. */
export const userId = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'user id must match ^[A-Za-z0-9_-]{1,64}$');

export const CHAT_ROLES = ['viewer', 'moderator', 'streamer'] as const;
export type ChatRole = (typeof CHAT_ROLES)[number];

/** What a token allows. delete: remove any message; timeout/ban: silence or remove users; room: slow mode
 * and word filter. Everyone may read; `send` may be withheld (a read-only guest). */
export const CHAT_CAPABILITIES = ['send', 'delete', 'timeout', 'ban', 'room'] as const;
export type ChatCapability = (typeof CHAT_CAPABILITIES)[number];

/** The capabilities a role gets when a token is minted without an explicit list. */
export const ROLE_CAPABILITIES: Record<ChatRole, ChatCapability[]> = {
  viewer: ['send'],
  moderator: ['send', 'delete', 'timeout', 'ban'],
  streamer: ['send', 'delete', 'timeout', 'ban', 'room'],
};

/** JWT claims (HS256, signed with CHAT_TOKEN_SECRET; `exp` is required and checked by jose). */
export const chatTokenClaims = z.object({
  sub: userId,
  name: z.string().trim().min(1).max(40),
  role: z.enum(CHAT_ROLES),
  /** Rooms this token may join; ["*"] for every room (operators, site-wide moderators). */
  rooms: z.array(z.union([roomId, z.literal('*')])).min(1),
  caps: z.array(z.enum(CHAT_CAPABILITIES)),
});
export type ChatTokenClaims = z.infer<typeof chatTokenClaims>;

/** The author as shown to everyone. */
export const chatAuthor = z.object({ id: userId, name: z.string(), role: z.enum(CHAT_ROLES) });
export type ChatAuthor = z.infer<typeof chatAuthor>;

// ---------------------------------------------------------------------------------------------------------
// Room events: stored in the CHAT stream (subject live.chat.room.<room>), one per message or several together
// (chatStoredEvents), and sent to clients as stored.
// `seq` is the room's own sequence: 1, 2, 3, ... with no gaps (written with compare-and-set on the subject).

const roomEventBase = { seq: z.number().int().positive(), ts: z.number().int() };

export const chatMessageEvent = z.object({
  type: z.literal('msg'),
  ...roomEventBase,
  user: chatAuthor,
  /** Plain text, never HTML: clients must render it as text. */
  text: z.string(),
});
export const chatDeletedEvent = z.object({
  type: z.literal('deleted'),
  ...roomEventBase,
  /** The seq of the message removed. */
  target: z.number().int().positive(),
  by: userId,
});
export const chatRoomEvent = z.discriminatedUnion('type', [chatMessageEvent, chatDeletedEvent]);
export type ChatRoomEvent = z.infer<typeof chatRoomEvent>;
export type ChatMessageEvent = z.infer<typeof chatMessageEvent>;

/** The most events a pod stores in one message (a group commit); bounds a message at ~0.2 MB of text. */
export const CHAT_EVENTS_PER_WRITE = 100;
/**
 * One message stored on a room's subject: one event, or a JSON array of consecutive events a pod wrote
 * together (the writes that queued while its previous write was in flight: one JetStream round trip for
 * all of them). Read as the list of its events.
 */
export const chatStoredEvents = z.union([
  chatRoomEvent.transform((event) => [event]),
  z
    .array(chatRoomEvent)
    .min(1)
    .max(CHAT_EVENTS_PER_WRITE)
    .refine(
      (events) => events.every((e, i) => i === 0 || e.seq === (events[i - 1] as ChatRoomEvent).seq + 1),
      {
        message: 'the events of one stored message have consecutive seqs',
      },
    ),
]);

// ---------------------------------------------------------------------------------------------------------
// Client -> server frames. The first frame must be `join`; a connection that does not join is closed.

export const clientJoin = z.object({
  type: z.literal('join'),
  token: z.string().min(1).max(4096),
  /** Resume: the last seq this client saw; the server sends every event after it, then live ones. */
  since: z.number().int().nonnegative().optional(),
});
export const clientSend = z.object({
  type: z.literal('send'),
  text: z.string().min(1),
  /** Client's id for this send, echoed in the ack or error. */
  cid: z.string().max(64).optional(),
});
export const clientHistory = z.object({
  type: z.literal('history'),
  /** Events with seq below this (default: the newest). */
  before: z.number().int().positive().optional(),
  limit: z.number().int().positive().max(200).optional(),
});
export const clientDelete = z.object({ type: z.literal('delete'), seq: z.number().int().positive() });
export const clientTimeout = z.object({
  type: z.literal('timeout'),
  userId,
  seconds: z
    .number()
    .int()
    .positive()
    .max(7 * 24 * 3600),
  reason: z.string().max(200).optional(),
});
export const clientBan = z.object({
  type: z.literal('ban'),
  userId,
  /** Omitted: until unbanned. */
  seconds: z.number().int().positive().optional(),
  reason: z.string().max(200).optional(),
});
export const clientUnban = z.object({ type: z.literal('unban'), userId });
export const clientSlow = z.object({
  type: z.literal('slow'),
  /** Minimum seconds between two messages of one viewer; 0 turns slow mode off. */
  seconds: z.number().int().min(0).max(3600),
});
export const clientFilter = z.object({
  type: z.literal('filter'),
  /** Words masked in this room's messages (whole words, any case); [] clears the list. */
  words: z.array(z.string().trim().min(1).max(40)).max(200),
});
export const clientFrame = z.discriminatedUnion('type', [
  clientJoin,
  clientSend,
  clientHistory,
  clientDelete,
  clientTimeout,
  clientBan,
  clientUnban,
  clientSlow,
  clientFilter,
]);
export type ClientFrame = z.infer<typeof clientFrame>;

// ---------------------------------------------------------------------------------------------------------
// Server -> client frames (besides the room events above).

export const roomSettings = z.object({
  slowSeconds: z.number().int().min(0),
  words: z.array(z.string()),
});
export type RoomSettings = z.infer<typeof roomSettings>;

export const CHAT_ERROR_CODES = [
  'invalid', // a frame that is not valid JSON or not a known message
  'unauthorized', // missing, forged, expired token or a token for another room
  'forbidden', // the token lacks the capability
  'rate_limited', // too many messages; wait retryMs
  'slow_mode', // slow mode is on; wait retryMs
  'timed_out', // a moderator silenced you until `until`
  'banned',
  'too_long',
  'denied', // the review hook refused the message
  'not_found',
  'unavailable', // the chat could not store the message (NATS down); try again
] as const;
export type ChatErrorCode = (typeof CHAT_ERROR_CODES)[number];

export const serverWelcome = z.object({
  type: z.literal('welcome'),
  room: roomId,
  user: chatAuthor.extend({ caps: z.array(z.enum(CHAT_CAPABILITIES)) }),
  /** The room's newest seq when you joined (0: no messages yet). */
  seq: z.number().int().nonnegative(),
  settings: roomSettings,
  /** The oldest seq the server still holds; a resume from before it has a gap (see `gap`). */
  oldest: z.number().int().nonnegative(),
});
export const serverAck = z.object({
  type: z.literal('ack'),
  cid: z.string().optional(),
  seq: z.number().int(),
});
export const serverError = z.object({
  type: z.literal('error'),
  code: z.enum(CHAT_ERROR_CODES),
  message: z.string(),
  cid: z.string().optional(),
  /** When to try again (rate limits, slow mode). */
  retryMs: z.number().int().nonnegative().optional(),
  /** End of a timeout or ban (ms since epoch). */
  until: z.number().int().optional(),
});
export const serverHistory = z.object({
  type: z.literal('history'),
  events: z.array(chatRoomEvent),
  /** True when there is nothing older to ask for. */
  complete: z.boolean(),
});
export const serverGap = z.object({
  type: z.literal('gap'),
  /** Events in [from, to] are beyond the server's history and cannot be resent. */
  from: z.number().int(),
  to: z.number().int(),
});
export const serverNotice = z.object({
  type: z.literal('notice'),
  kind: z.enum(['settings', 'timeout', 'ban', 'unban']),
  settings: roomSettings.optional(),
  userId: userId.optional(),
  until: z.number().int().nullable().optional(),
  reason: z.string().optional(),
});
/** Sent before the server closes with CHAT_CLOSE.reconnect: connect again (any pod) after delayMs and
 * join with `since` = the last seq you saw. */
export const serverReconnect = z.object({
  type: z.literal('reconnect'),
  delayMs: z.number().int().nonnegative(),
  reason: z.enum(['rebalance', 'shutdown']),
});
export const serverFrame = z.discriminatedUnion('type', [
  chatMessageEvent,
  chatDeletedEvent,
  serverWelcome,
  serverAck,
  serverError,
  serverHistory,
  serverGap,
  serverNotice,
  serverReconnect,
]);
export type ServerFrame = z.infer<typeof serverFrame>;

/** Room events that arrive close together come in one frame, as a JSON array (at most one per
 * CHAT_BATCH_MS); a client handles an array exactly like its events one after another. */
export const serverEventBatch = z.array(chatRoomEvent);

/** WebSocket close codes the chat uses (4000-4999 are the application's). */
export const CHAT_CLOSE = {
  /** Reconnect (to any pod) after the delay in the preceding `reconnect` frame, resuming from your seq. */
  reconnect: 4000,
  /** The token was refused: do not reconnect with it. */
  unauthorized: 4001,
  banned: 4003,
  /** Too many messages or invalid frames after warnings. */
  flooding: 4008,
  /** No `join` in time. */
  joinTimeout: 4009,
  /** The client did not read its messages (the server's buffer for it filled up). */
  slowConsumer: 4010,
} as const;

// ---------------------------------------------------------------------------------------------------------
// Shared state in KV.

/** chat-moderation: `<room>.ban.<user>` and `<room>.timeout.<user>`. */
export const chatSanction = z.object({
  /** ms since epoch; null: until lifted. */
  until: z.number().int().nullable(),
  by: z.string(),
  reason: z.string().optional(),
  at: z.number().int(),
});
export type ChatSanction = z.infer<typeof chatSanction>;

/** chat-moderation: `<room>.settings`. */
export const chatRoomSettingsRecord = roomSettings;

/** chat-nodes: `<podId>` -> its load, written every CHAT_NODE_REPORT_MS. */
export const chatNodeRecord = z.object({
  podId: z.string(),
  connections: z.number().int().nonnegative(),
  /** CHAT_MAX_CONNECTIONS. */
  capacity: z.number().int().positive(),
  /** Shutting down: counts for nobody's fair share. */
  draining: z.boolean(),
  /** ms since epoch, by the pod's clock; a record older than 3 reports is a dead pod. */
  at: z.number().int(),
});
export type ChatNodeRecord = z.infer<typeof chatNodeRecord>;

// ---------------------------------------------------------------------------------------------------------
// Review hook (optional): live.chat.review.<room>, request-reply, answered within CHAT_REVIEW_TIMEOUT_MS.

export const chatReviewRequest = z.object({ room: roomId, user: chatAuthor, text: z.string() });
export const chatReviewReply = z.discriminatedUnion('action', [
  z.object({ action: z.literal('allow') }),
  z.object({ action: z.literal('deny'), reason: z.string().max(200).optional() }),
  z.object({ action: z.literal('rewrite'), text: z.string().min(1) }),
]);
export type ChatReviewReply = z.infer<typeof chatReviewReply>;

// ---------------------------------------------------------------------------------------------------------
// Operator endpoints (live-chat service; any pod answers).

export const chatTokenRequest = z
  .object({
    userId,
    name: z.string().trim().min(1).max(40),
    role: z.enum(CHAT_ROLES).default('viewer'),
    rooms: z.array(z.union([roomId, z.literal('*')])).min(1),
    /** Default: the role's capabilities. */
    caps: z.array(z.enum(CHAT_CAPABILITIES)).optional(),
    /** Lifetime; default CHAT_TOKEN_TTL_S. */
    ttlSeconds: z
      .number()
      .int()
      .positive()
      .max(30 * 24 * 3600)
      .optional(),
  })
  .strict();
export const chatTokenReply = z.object({ token: z.string(), expiresAt: z.number().int() });

export const chatBanRequest = z
  .object({
    room: roomId,
    userId,
    seconds: z.number().int().positive().optional(),
    reason: z.string().max(200).optional(),
  })
  .strict();
export const chatTimeoutRequest = chatBanRequest.extend({
  seconds: z
    .number()
    .int()
    .positive()
    .max(7 * 24 * 3600),
});
export const chatUnbanRequest = z.object({ room: roomId, userId }).strict();
export const chatDeleteRequest = z.object({ room: roomId, seq: z.number().int().positive() }).strict();
export const chatSlowRequest = z
  .object({ room: roomId, seconds: z.number().int().min(0).max(3600) })
  .strict();
export const chatFilterRequest = z
  .object({ room: roomId, words: z.array(z.string().trim().min(1).max(40)).max(200) })
  .strict();
export const chatModerationReply = z.object({
  ok: z.literal(true),
  /** Connections closed or told, on this pod (other pods act on the same record at once). */
  detail: z.string(),
});
