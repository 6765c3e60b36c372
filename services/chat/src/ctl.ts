// Operator endpoints of the chat (NATS request-reply, listed by `nats micro info live-chat`; any pod answers).
// They write the same records the moderators' WebSocket actions write, so every pod enforces them at once.
import {
  chatBanRequest,
  chatDeleteRequest,
  chatFilterRequest,
  chatModerationReply,
  chatSlowRequest,
  chatTimeoutRequest,
  chatTokenReply,
  chatTokenRequest,
  chatUnbanRequest,
  subjects,
} from '@live/contracts';
import { endpoint, RequestError } from '@live/runtime';
import type { Tokens } from './auth/tokens.js';
import type { Moderation } from './moderation/moderation.js';
import type { Rooms } from './rooms/rooms.js';

const OPERATOR = 'operator';

export function chatEndpoints(tokens: Tokens, moderation: Moderation, rooms: Rooms) {
  return [
    endpoint({
      name: 'chat-token',
      subject: subjects.ctl.chatToken,
      description: 'mint a chat token: {userId, name, role, rooms, caps?, ttlSeconds?}',
      request: chatTokenRequest,
      reply: chatTokenReply,
      handler: (request) => tokens.mint(request),
    }),
    endpoint({
      name: 'chat-ban',
      subject: subjects.ctl.chatBan,
      description: 'ban a user from a room (seconds: optional); their connections close on every pod',
      request: chatBanRequest,
      reply: chatModerationReply,
      handler: async ({ room, userId, seconds, reason }) => {
        await moderation.sanctionUser('ban', room, userId, OPERATOR, seconds, reason);
        return {
          ok: true as const,
          detail: `${userId} banned from ${room}${seconds ? ` for ${seconds} s` : ''}`,
        };
      },
    }),
    endpoint({
      name: 'chat-timeout',
      subject: subjects.ctl.chatTimeout,
      description: 'silence a user in a room for some seconds (they still read)',
      request: chatTimeoutRequest,
      reply: chatModerationReply,
      handler: async ({ room, userId, seconds, reason }) => {
        await moderation.sanctionUser('timeout', room, userId, OPERATOR, seconds, reason);
        return { ok: true as const, detail: `${userId} timed out in ${room} for ${seconds} s` };
      },
    }),
    endpoint({
      name: 'chat-unban',
      subject: subjects.ctl.chatUnban,
      description: "lift a user's ban and timeout in a room",
      request: chatUnbanRequest,
      reply: chatModerationReply,
      handler: async ({ room, userId }) => {
        await moderation.lift(room, userId);
        return { ok: true as const, detail: `${userId} may chat in ${room} again` };
      },
    }),
    endpoint({
      name: 'chat-delete',
      subject: subjects.ctl.chatDelete,
      description: "delete a message by its seq; every viewer's page removes it",
      request: chatDeleteRequest,
      reply: chatModerationReply,
      handler: async ({ room: roomId, seq: target }) => {
        const room = await rooms.acquire(roomId);
        try {
          const message = room.find(target);
          if (message?.event.type !== 'msg' || message.deleted)
            throw new RequestError(`no message ${target} in ${roomId}'s history`, 404);
          const seq = await room.write((next, ts) => ({
            type: 'deleted',
            seq: next,
            ts,
            target,
            by: OPERATOR,
          }));
          return { ok: true as const, detail: `message ${target} deleted (event ${seq})` };
        } finally {
          rooms.release(room);
        }
      },
    }),
    endpoint({
      name: 'chat-slow',
      subject: subjects.ctl.chatSlow,
      description: 'slow mode: minimum seconds between two messages of a viewer (0: off)',
      request: chatSlowRequest,
      reply: chatModerationReply,
      handler: async ({ room, seconds }) => {
        await moderation.updateSettings(room, { slowSeconds: seconds });
        return {
          ok: true as const,
          detail: seconds ? `slow mode ${seconds} s in ${room}` : `slow mode off in ${room}`,
        };
      },
    }),
    endpoint({
      name: 'chat-filter',
      subject: subjects.ctl.chatFilter,
      description: "replace a room's word filter (whole words masked, any case); [] clears it",
      request: chatFilterRequest,
      reply: chatModerationReply,
      handler: async ({ room, words }) => {
        await moderation.updateSettings(room, { words });
        return { ok: true as const, detail: `${words.length} filtered words in ${room}` };
      },
    }),
  ];
}
