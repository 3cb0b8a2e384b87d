/**
 * mxctl, the command-line client of the admin API: reads the command line, runs one command
 * and returns the exit status. bin/mxctl.js runs it through tsx. Every failure is one line on
 * standard error that starts with `mxctl: `.
 */
import { SETTINGS } from '@secondary-mx/config';
import { ApiClient, ApiError, UnreachableError } from './api-client.ts';
import {
  CommandFailedError,
  type Context,
  type GlobalOptions,
  resolve,
  UsageError,
} from './cli.ts';
import { COMMANDS, GROUPS } from './commands/index.ts';

/** Exit statuses; 64, 69, 70 and 78 are those of BSD sysexits.h. */
export const EXIT = {
  ok: 0,
  apiError: 1,
  usage: 64,
  unavailable: 69,
  software: 70,
  config: 78,
} as const;

class ConfigurationError extends Error {
  override name = 'ConfigurationError';
}

function fail(status: number, message: string): number {
  process.stderr.write(`mxctl: ${message}\n`);
  return status;
}

/** Returns the admin API URL from --url, else MX_ADMIN_URL, else the setting's default. */
function adminUrl(global: GlobalOptions, env: NodeJS.ProcessEnv): string {
  const spec = SETTINGS.MX_ADMIN_URL;
  let raw = String(spec.defaultValue);
  let source = 'the default';
  if (global.url !== undefined) {
    raw = global.url;
    source = '--url';
  } else if (env.MX_ADMIN_URL !== undefined) {
    raw = env.MX_ADMIN_URL;
    source = 'MX_ADMIN_URL';
  }
  const parsed = spec.parse(raw);
  if (parsed instanceof Error) {
    throw new ConfigurationError(`${source} ${JSON.stringify(raw)} ${parsed.message}`);
  }
  return parsed;
}

function adminToken(global: GlobalOptions, env: NodeJS.ProcessEnv): string {
  const token = global.token ?? env.MX_ADMIN_TOKEN;
  if (token === undefined || token.trim() === '') {
    throw new ConfigurationError('no token given: set MX_ADMIN_TOKEN or pass --token');
  }
  return token.trim();
}

/** Runs one command line and returns the exit status. */
export async function main(argv: readonly string[], env = process.env): Promise<number> {
  // A closed pipe (mxctl queue list | head) ends the output, which is no error.
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') {
      process.exit(EXIT.ok);
    }
    throw error;
  });

  let resolved: ReturnType<typeof resolve>;
  try {
    resolved = resolve(argv, COMMANDS, GROUPS);
  } catch (error) {
    if (error instanceof UsageError) {
      return fail(EXIT.usage, error.message);
    }
    throw error;
  }
  if (resolved.kind === 'help') {
    process.stdout.write(resolved.text);
    return EXIT.ok;
  }

  const { command, input, global } = resolved;
  try {
    const context: Context = {
      api: new ApiClient(adminUrl(global, env), adminToken(global, env)),
      json: global.json,
      print: (text) => process.stdout.write(`${text}\n`),
      write: (data) => process.stdout.write(data),
      note: (text) => process.stderr.write(`${text}\n`),
    };
    await command.run(context, input);
    return EXIT.ok;
  } catch (error) {
    return report(error);
  }
}

function report(error: unknown): number {
  if (error instanceof ApiError || error instanceof CommandFailedError) {
    return fail(EXIT.apiError, error.message);
  }
  if (error instanceof UnreachableError) {
    return fail(EXIT.unavailable, error.message);
  }
  if (error instanceof UsageError) {
    return fail(EXIT.usage, error.message);
  }
  if (error instanceof ConfigurationError) {
    return fail(EXIT.config, error.message);
  }
  if (error instanceof SyntaxError) {
    return fail(EXIT.apiError, `the admin API sent a reply that is not JSON: ${error.message}`);
  }
  return fail(EXIT.software, `unexpected error: ${(error as Error).message ?? String(error)}`);
}
