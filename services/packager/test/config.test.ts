import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { ConfigError, checkEnvExample, loadConfig } from '@live/config';
import { repoRoot } from '@live/testing';
import { packagerConfigSchema } from '../src/config.js';

test('.env.example lists every variable with a valid value, and nothing else', () => {
  assert.deepEqual(
    checkEnvExample(packagerConfigSchema, join(repoRoot, 'services/packager/.env.example')),
    [],
  );
});

test('a bad variable is named in the error', () => {
  assert.throws(
    () => loadConfig(packagerConfigSchema, { NATS_URL: 'localhost' }),
    (error: unknown) => error instanceof ConfigError && /NATS_URL/.test(error.message),
  );
});
