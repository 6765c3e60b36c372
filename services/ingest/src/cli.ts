#!/usr/bin/env node
// live-keys: create and revoke stream keys from a terminal (local use; operators can use
// `nats req live.ctl.keys.create '{"streamId":"..."}'` directly). Talks to the ingest over NATS.
import { requestEndpoint } from '@live/bus';
import { createKeyReply, revokeKeyReply, STREAM_ID_PATTERN, subjects } from '@live/contracts';
import { connect } from '@nats-io/transport-node';
import { Command, InvalidArgumentError } from 'commander';
import type { z } from 'zod';

const streamIdArg = (value: string) => {
  if (!STREAM_ID_PATTERN.test(value))
    throw new InvalidArgumentError('use lowercase letters, digits, - and _ (max 64)');
  return value;
};

async function request<S extends z.ZodType>(natsUrl: string, subject: string, body: unknown, schema: S) {
  const nc = await connect({ servers: natsUrl.split(','), name: 'live-keys' });
  try {
    return await requestEndpoint(nc, subject, body, schema);
  } finally {
    await nc.close();
  }
}

const program = new Command('live-keys')
  .description('create and revoke RTMP stream keys')
  .option(
    '--nats <urls>',
    'NATS server URLs, comma-separated',
    process.env.NATS_URL ?? 'nats://127.0.0.1:4222',
  );

program
  .command('create')
  .argument('<streamId>', 'stream (channel) id', streamIdArg)
  .option('--label <text>', 'a note to recognise the key by')
  .option('--json', 'print the reply as JSON')
  .action(async (streamId: string, options: { label?: string; json?: boolean }) => {
    const reply = await request(
      program.opts().nats,
      subjects.ctl.keysCreate,
      { streamId, ...(options.label ? { label: options.label } : {}) },
      createKeyReply,
    );
    if (options.json) console.log(JSON.stringify(reply));
    else
      console.log(`stream key for ${reply.streamId} (shown once, keyId ${reply.keyId}):\n${reply.streamKey}`);
  });

program
  .command('revoke')
  .description('revoke by stream id (all its keys), by key, or by key id')
  .option('--stream <streamId>', 'revoke every key of this stream', streamIdArg)
  .option('--key <streamKey>', 'revoke this key')
  .option('--key-id <keyId>', 'revoke the key with this id')
  .action(async (options: { stream?: string; key?: string; keyId?: string }) => {
    const given = [
      options.stream && { streamId: options.stream },
      options.key && { streamKey: options.key },
      options.keyId && { keyId: options.keyId },
    ].filter(Boolean);
    if (given.length !== 1) program.error('give exactly one of --stream, --key, --key-id');
    const reply = await request(program.opts().nats, subjects.ctl.keysRevoke, given[0], revokeKeyReply);
    console.log(`revoked ${reply.revoked} key(s), disconnected ${reply.kicked} live publisher(s)`);
  });

program.parseAsync().catch((error: unknown) => {
  console.error(`live-keys: ${(error as Error).message}`);
  process.exit(1);
});
