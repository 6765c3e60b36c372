import assert from 'node:assert/strict';
import { test } from 'node:test';
import { z } from 'zod';
import { ConfigError, env, loadConfig } from '../src/index.js';

const schema = z.object({
  EXAMPLE_PORT: env.port(1935),
  EXAMPLE_TIMEOUT_MS: env.ms(600),
  EXAMPLE_ENABLED: env.bool(false),
  NATS_URL: env.natsServers(),
});

test('defaults apply and the result is frozen', () => {
  const config = loadConfig(schema, {});
  assert.deepEqual(config, {
    EXAMPLE_PORT: 1935,
    EXAMPLE_TIMEOUT_MS: 600,
    EXAMPLE_ENABLED: false,
    NATS_URL: ['nats://127.0.0.1:4222'],
  });
  assert.ok(Object.isFrozen(config));
});

test('values are coerced, NATS_URL is split into an array', () => {
  const config = loadConfig(schema, {
    EXAMPLE_PORT: '2000',
    EXAMPLE_ENABLED: 'true',
    NATS_URL: 'nats://a:1, nats://b:2',
  });
  assert.equal(config.EXAMPLE_PORT, 2000);
  assert.equal(config.EXAMPLE_ENABLED, true);
  assert.deepEqual(config.NATS_URL, ['nats://a:1', 'nats://b:2']);
});

test('errors name every bad variable and the value given', () => {
  assert.throws(
    () => loadConfig(schema, { EXAMPLE_PORT: 'abc', EXAMPLE_TIMEOUT_MS: '-5', NATS_URL: 'localhost' }),
    (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.match(error.message, /EXAMPLE_PORT: .*\(got "abc"\)/);
      assert.match(error.message, /EXAMPLE_TIMEOUT_MS: .*\(got "-5"\)/);
      assert.match(error.message, /NATS_URL.*nats:\/\/host:port/);
      assert.equal(error.problems.length, 3);
      return true;
    },
  );
});

test('an empty variable falls back to the default', () => {
  assert.equal(loadConfig(schema, { EXAMPLE_PORT: '' }).EXAMPLE_PORT, 1935);
});
