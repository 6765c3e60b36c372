#!/usr/bin/env node
// live-chat-token: mint a chat token from a terminal (local use and scripts; operators can also run
// `nats req live.ctl.chat.token '{"userId":"...","name":"...","role":"moderator","rooms":["demo"]}'`).
// Talks to any chat pod over NATS, so the secret never leaves the chat service.
import { requestEndpoint } from '@live/bus';
import { CHAT_ROLES, chatTokenReply, STREAM_ID_PATTERN, subjects } from '@live/contracts';
import { connect } from '@nats-io/transport-node';
import { Command, InvalidArgumentError, Option } from 'commander';

const program = new Command('live-chat-token')
  .description('mint a chat token (JWT) for a user and room(s)')
  .requiredOption('--user <id>', 'user id (letters, digits, - and _)')
  .option('--name <display name>', 'name shown in the chat (default: the user id)')
  .addOption(new Option('--role <role>', 'capabilities of the role').choices(CHAT_ROLES).default('viewer'))
  .requiredOption(
    '--room <streamId...>',
    'room(s) the token may join; * for all',
    (value: string, previous: string[] = []) => {
      if (value !== '*' && !STREAM_ID_PATTERN.test(value)) throw new InvalidArgumentError('not a stream id');
      return [...previous, value];
    },
  )
  .option('--ttl <seconds>', 'lifetime in seconds (default: the service’s CHAT_TOKEN_TTL_S)', (v) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError('a positive number of seconds');
    return n;
  })
  .option('--json', 'print the reply as JSON')
  .option(
    '--nats <urls>',
    'NATS server URLs, comma-separated',
    process.env.NATS_URL ?? 'nats://127.0.0.1:4222',
  )
  .action(
    async (options: {
      user: string;
      name?: string;
      role: string;
      room: string[];
      ttl?: number;
      json?: boolean;
      nats: string;
    }) => {
      const nc = await connect({ servers: options.nats.split(','), name: 'live-chat-token' });
      try {
        const reply = await requestEndpoint(
          nc,
          subjects.ctl.chatToken,
          {
            userId: options.user,
            name: options.name ?? options.user,
            role: options.role,
            rooms: options.room,
            ...(options.ttl ? { ttlSeconds: options.ttl } : {}),
          },
          chatTokenReply,
        );
        if (options.json) console.log(JSON.stringify(reply));
        else console.log(`${reply.token}\n(valid until ${new Date(reply.expiresAt).toISOString()})`);
      } finally {
        await nc.close();
      }
    },
  );

program.parseAsync().catch((error: unknown) => {
  console.error(`live-chat-token: ${(error as Error).message}`);
  process.exit(1);
});
