// @live/config: configuration as data. Each service declares one zod object whose keys are the environment
// variable names (with defaults and a comment each); loadConfig validates an env map against it.
import { readFileSync } from 'node:fs';
import { parseEnv } from 'node:util';
import { z } from 'zod';

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
  }
}

type EnvShape = Record<string, z.ZodType>;

/**
 * Pure: reads only the given env map, returns a frozen object, throws ConfigError naming every bad variable.
 */
export function loadConfig<S extends EnvShape>(
  schema: z.ZodObject<S>,
  env: Record<string, string | undefined> = process.env,
): Readonly<z.infer<z.ZodObject<S>>> {
  const picked: Record<string, string | undefined> = {};
  for (const key of Object.keys(schema.shape)) {
    const value = env[key];
    // An empty variable means "not set", so `FOO=` in a .env file falls back to the default.
    picked[key] = value === '' ? undefined : value;
  }
  const result = schema.safeParse(picked);
  if (!result.success) {
    const problems = result.error.issues.map((issue) => {
      const variable = issue.path.join('.') || '(config)';
      const given = picked[String(issue.path[0])];
      return `${variable}: ${issue.message}${given === undefined ? ' (not set)' : ` (got ${JSON.stringify(given)})`}`;
    });
    throw new ConfigError(problems);
  }
  return Object.freeze(result.data);
}

/** Reads a .env file into a map (node's own parser). */
export function readEnvFile(path: string): Record<string, string> {
  return parseEnv(readFileSync(path, 'utf8')) as Record<string, string>;
}

/**
 * Checks a service's .env.example against its schema: same variables, and the example values load.
 * Returns the problems (empty when the example is true to the schema).
 */
export function checkEnvExample(schema: z.ZodObject<EnvShape>, path: string): string[] {
  const example = readEnvFile(path);
  const problems: string[] = [];
  const declared = new Set(Object.keys(schema.shape));
  for (const key of Object.keys(example)) {
    if (!declared.has(key)) problems.push(`${key} is in ${path} but not in the schema`);
  }
  for (const key of declared) {
    if (!(key in example)) problems.push(`${key} is in the schema but missing from ${path}`);
  }
  try {
    loadConfig(schema, example);
  } catch (error) {
    if (error instanceof ConfigError) problems.push(...error.problems);
    else throw error;
  }
  return problems;
}

// Field helpers shared by the services' schemas.
export const env = {
  port: (fallback: number) => z.coerce.number().int().min(0).max(65535).default(fallback),
  /** A duration in milliseconds. */
  ms: (fallback: number) => z.coerce.number().int().positive().default(fallback),
  int: (fallback: number, min = 0) => z.coerce.number().int().min(min).default(fallback),
  /** "true"/"false"/"1"/"0". */
  bool: (fallback: boolean) =>
    z
      .enum(['true', 'false', '1', '0'], { message: 'expected true or false' })
      .default(fallback ? 'true' : 'false')
      .transform((v) => v === 'true' || v === '1'),
  /** Comma-separated NATS URLs -> array (the client wants an array, not a comma string). */
  natsServers: (fallback = 'nats://127.0.0.1:4222') =>
    z
      .string()
      .default(fallback)
      .transform((v) => v.split(',').map((s) => s.trim()))
      .pipe(z.array(z.string().regex(/^(nats|tls|wss?):\/\/[^\s]+$/, 'expected nats://host:port')).min(1)),
  logLevel: () => z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal']).default('info'),
  /** An optional secret or name (NATS user and password: from a Kubernetes Secret, never the repo). */
  optional: () => z.string().min(1).optional(),
};
