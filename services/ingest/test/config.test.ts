// The ingest's configuration: the shipped .env.example is true to the schema, and a bad variable stops
// the process at start with a message that names it.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { ConfigError, checkEnvExample, loadConfig } from '@live/config';
import { repoRoot, serviceCommand, startChild, within } from '@live/testing';
import { ingestConfigSchema } from '../src/config.js';

test('.env.example lists every variable with a valid value, and nothing else', () => {
  assert.deepEqual(checkEnvExample(ingestConfigSchema, join(repoRoot, 'services/ingest/.env.example')), []);
});

test('defaults match the local defaults of the design (rtmp://localhost:1935/live)', () => {
  const config = loadConfig(ingestConfigSchema, {});
  assert.equal(config.INGEST_RTMP_PORT, 1935);
  assert.equal(config.INGEST_RTMP_APP, 'live');
  assert.deepEqual(config.NATS_URL, ['nats://127.0.0.1:4222']);
});

test('a bad variable is named in the error', () => {
  assert.throws(
    () => loadConfig(ingestConfigSchema, { INGEST_RTMP_PORT: '99999', INGEST_SOURCE_STALL_MS: 'soon' }),
    (error: unknown) =>
      error instanceof ConfigError &&
      /INGEST_RTMP_PORT: .*\(got "99999"\)/.test(error.message) &&
      /INGEST_SOURCE_STALL_MS: .*\(got "soon"\)/.test(error.message),
  );
  // Reading a publisher less often than an LL-HLS part would delay every part.
  assert.throws(
    () => loadConfig(ingestConfigSchema, { INGEST_READ_INTERVAL_MS: '500' }),
    /INGEST_READ_INTERVAL_MS: at most 200 ms \(an LL-HLS part\) \(got "500"\)/,
  );
  assert.equal(loadConfig(ingestConfigSchema, { INGEST_READ_INTERVAL_MS: '0' }).INGEST_READ_INTERVAL_MS, 0);
});

test('the ingest process refuses to start on bad config, naming the variable, exit code 1', async () => {
  const { command, args } = serviceCommand('ingest');
  const child = startChild({
    name: 'ingest-bad-config',
    command,
    args,
    cwd: repoRoot,
    env: { ...process.env, NATS_URL: 'localhost:4222' },
  });
  const exit = await within(child.exited, 15_000, 'the ingest to exit');
  assert.equal(exit.code, 1);
  assert.match(
    child.tail().join('\n'),
    /ingest failed to start: invalid configuration:\n\s+NATS_URL.*nats:\/\/host:port.*\(got "localhost:4222"\)/,
  );
});
