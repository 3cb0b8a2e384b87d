/**
 * Command-line parsing with node:util parseArgs: the command table, the words that select a
 * command, option checks and help text. Global options may stand anywhere on the line.
 */
import { type ParseArgsConfig, parseArgs } from 'node:util';
import type { ApiClient } from './api-client.ts';

export interface OptionSpec {
  type: 'string' | 'boolean';
  short?: string;
  /** Placeholder of the value in help text, such as `DOMAIN`. */
  value?: string;
  /** Allowed values of a string option. */
  choices?: readonly string[];
  required?: boolean;
  help: string;
}

export interface CommandInput {
  /** Positional arguments after the command words. */
  args: string[];
  options: Record<string, string | boolean | undefined>;
}

/** The API client and output streams that a command uses. */
export interface Context {
  api: ApiClient;
  /** True with --json: print the API's replies as JSON instead of tables. */
  json: boolean;
  /** Writes the text and a line break to standard output. */
  print(text: string): void;
  /** Writes bytes to standard output as they are. */
  write(data: Uint8Array): void;
  /** Writes a note to standard error, such as how to get the next page. */
  note(text: string): void;
}

export interface Command {
  /** The words that select the command, such as `['domains', 'list']`. */
  path: readonly string[];
  /** Positional arguments as help shows them: `DOMAIN`, or `[ID]` when optional. */
  args: readonly string[];
  summary: string;
  /** Further help text, printed after the options. */
  details?: string;
  options?: Readonly<Record<string, OptionSpec>>;
  run(context: Context, input: CommandInput): Promise<void>;
}

/** A command group, such as `domains`, with the subcommand run when none is given. */
export interface Group {
  path: readonly string[];
  summary: string;
  defaultCommand?: string;
}

/** A command whose requests succeeded but whose result is a failure, such as a DNS check. */
export class CommandFailedError extends Error {
  override name = 'CommandFailedError';
}

/** An invalid command line. The message states what is wrong and which help to read. */
export class UsageError extends Error {
  override name = 'UsageError';
}

export const GLOBAL_OPTIONS: Readonly<Record<string, OptionSpec>> = {
  url: {
    type: 'string',
    value: 'URL',
    help: 'admin API base URL (default: MX_ADMIN_URL, else http://127.0.0.1:8025)',
  },
  token: {
    type: 'string',
    value: 'TOKEN',
    help: 'bearer token (default: MX_ADMIN_TOKEN, which keeps it out of the process list)',
  },
  json: { type: 'boolean', help: "print the API's JSON replies instead of tables" },
  help: { type: 'boolean', short: 'h', help: 'print help for mxctl or for one command' },
};

export const EXIT_STATUS_HELP =
  'Exit status: 0 success, 1 the API returned an error, 64 invalid command line, ' +
  '69 admin API unreachable, 78 missing token or invalid URL.';

/** The outcome of reading the command line. */
export type Resolved =
  | { kind: 'command'; command: Command; input: CommandInput; global: GlobalOptions }
  | { kind: 'help'; text: string };

export interface GlobalOptions {
  url?: string;
  token?: string;
  json: boolean;
}

type ParseOptions = NonNullable<ParseArgsConfig['options']>;

function parseOptionsOf(specs: Readonly<Record<string, OptionSpec>>): ParseOptions {
  const options: ParseOptions = {};
  for (const [name, spec] of Object.entries(specs)) {
    options[name] = spec.short ? { type: spec.type, short: spec.short } : { type: spec.type };
  }
  return options;
}

/**
 * Reads the command line. Returns the command to run, or the help text that --help requests
 * for mxctl, a group or a command. Throws UsageError for unknown commands or options, missing
 * or extra arguments and values outside an option's choices.
 */
export function resolve(
  argv: readonly string[],
  commands: readonly Command[],
  groups: readonly Group[],
): Resolved {
  // Every option of every command, so the values of string options are not taken for words.
  const allSpecs: Record<string, OptionSpec> = { ...GLOBAL_OPTIONS };
  for (const command of commands) {
    Object.assign(allSpecs, command.options);
  }
  const loose = parseArgs({
    args: [...argv],
    options: parseOptionsOf(allSpecs),
    strict: false,
    allowPositionals: true,
  });
  const words = loose.positionals;
  const wantsHelp = loose.values.help === true;

  const command = longestMatch(commands, words);
  if (command !== undefined) {
    if (wantsHelp) {
      return { kind: 'help', text: commandHelp(command) };
    }
    return { kind: 'command', command, ...parseCommandLine(argv, command, command.path.length) };
  }

  const group = resolveGroup(words, wantsHelp, commands, groups);
  if (group.kind === 'help') {
    return group;
  }
  const { fallback, wordCount } = group;
  return { kind: 'command', command: fallback, ...parseCommandLine(argv, fallback, wordCount) };
}

function longestMatch(commands: readonly Command[], words: readonly string[]): Command | undefined {
  let best: Command | undefined;
  for (const command of commands) {
    const matches = command.path.every((word, index) => words[index] === word);
    if (matches && (best === undefined || command.path.length > best.path.length)) {
      best = command;
    }
  }
  return best;
}

/**
 * Handles words that name a group or nothing. Returns the help text to print, or the group's
 * default command with the number of words that selected it. Throws UsageError otherwise.
 */
function resolveGroup(
  words: readonly string[],
  wantsHelp: boolean,
  commands: readonly Command[],
  groups: readonly Group[],
): { kind: 'help'; text: string } | { kind: 'default'; fallback: Command; wordCount: number } {
  if (words.length === 0) {
    if (wantsHelp) {
      return { kind: 'help', text: mainHelp(commands) };
    }
    throw new UsageError('no command given; run mxctl --help for the list of commands');
  }
  const group = [...groups]
    .sort((a, b) => b.path.length - a.path.length)
    .find((candidate) => candidate.path.every((word, index) => words[index] === word));
  if (group === undefined) {
    throw new UsageError(
      `unknown command "${words[0]}"; run mxctl --help for the list of commands`,
    );
  }
  const rest = words.slice(group.path.length);
  if (wantsHelp) {
    return { kind: 'help', text: groupHelp(group, commands) };
  }
  if (rest.length > 0) {
    const name = [...group.path, rest[0]].join(' ');
    throw new UsageError(`unknown command "${name}"; run mxctl ${group.path.join(' ')} --help`);
  }
  const fallback = commands.find(
    (command) =>
      command.path.length === group.path.length + 1 &&
      group.path.every((word, index) => command.path[index] === word) &&
      command.path[group.path.length] === group.defaultCommand,
  );
  if (fallback === undefined) {
    throw new UsageError(
      `"mxctl ${group.path.join(' ')}" needs a subcommand; run mxctl ${group.path.join(' ')} --help`,
    );
  }
  return { kind: 'default', fallback, wordCount: group.path.length };
}

/**
 * Parses the line strictly with the command's and the global options. The first `skipWords`
 * positionals are the words that selected the command.
 */
function parseCommandLine(
  argv: readonly string[],
  command: Command,
  skipWords: number,
): { input: CommandInput; global: GlobalOptions } {
  const specs = { ...GLOBAL_OPTIONS, ...command.options };
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      args: [...argv],
      options: parseOptionsOf(specs),
      strict: true,
      allowPositionals: true,
    });
  } catch (error) {
    // parseArgs adds advice on `--` to its first sentence, which does not help here.
    const problem = (error as Error).message.split('. ')[0] ?? '';
    const message = problem.charAt(0).toLowerCase() + problem.slice(1);
    throw new UsageError(`${message}; run ${helpCommand(command)}`);
  }
  const args = parsed.positionals.slice(skipWords);
  checkArgs(command, args);

  const options: Record<string, string | boolean | undefined> = {};
  for (const [name, spec] of Object.entries(command.options ?? {})) {
    const value = parsed.values[name] as string | boolean | undefined;
    if (spec.required && value === undefined) {
      throw new UsageError(`missing --${name}; run ${helpCommand(command)}`);
    }
    if (spec.choices && typeof value === 'string' && !spec.choices.includes(value)) {
      throw new UsageError(
        `--${name} must be one of ${spec.choices.join(', ')}, not "${value}"; run ${helpCommand(command)}`,
      );
    }
    options[name] = value;
  }
  const global: GlobalOptions = {
    url: parsed.values.url as string | undefined,
    token: parsed.values.token as string | undefined,
    json: parsed.values.json === true,
  };
  return { input: { args, options }, global };
}

function checkArgs(command: Command, args: readonly string[]): void {
  const required = command.args.filter((arg) => !arg.startsWith('['));
  if (args.length < required.length) {
    const missing = required.slice(args.length).join(' ');
    throw new UsageError(`missing ${missing}; run ${helpCommand(command)}`);
  }
  if (args.length > command.args.length) {
    const extra = args.slice(command.args.length).join(' ');
    throw new UsageError(`unexpected argument "${extra}"; run ${helpCommand(command)}`);
  }
}

function helpCommand(command: Command): string {
  return `mxctl ${command.path.join(' ')} --help`;
}

function usageLine(command: Command): string {
  const options = Object.entries(command.options ?? {}).map(([name, spec]) => {
    const option = spec.type === 'string' ? `--${name} ${spec.value ?? 'VALUE'}` : `--${name}`;
    return spec.required ? option : `[${option}]`;
  });
  return ['mxctl', ...command.path, ...command.args, ...options].join(' ');
}

function optionLines(specs: Readonly<Record<string, OptionSpec>>): string[] {
  const rows = Object.entries(specs).map(([name, spec]) => {
    const flag = `${spec.short ? `-${spec.short}, ` : ''}--${name}`;
    const label = spec.type === 'string' ? `${flag} ${spec.value ?? 'VALUE'}` : flag;
    return [label, spec.help] as const;
  });
  const width = Math.max(...rows.map(([label]) => label.length));
  return rows.map(([label, help]) => `  ${label.padEnd(width)}  ${help}`);
}

function commandList(commands: readonly Command[]): string[] {
  const rows = commands.map((command) => [
    [...command.path, ...command.args].join(' '),
    command.summary,
  ]);
  const width = Math.max(...rows.map(([label = '']) => label.length));
  return rows.map(([label = '', summary]) => `  ${label.padEnd(width)}  ${summary}`);
}

export function mainHelp(commands: readonly Command[]): string {
  return [
    'Usage: mxctl [--url URL] [--token TOKEN] [--json] COMMAND [ARGUMENTS] [OPTIONS]',
    '',
    'Manages secondary-mx through its admin API.',
    '',
    'Commands:',
    ...commandList(commands),
    '',
    'Options:',
    ...optionLines(GLOBAL_OPTIONS),
    '',
    'Run mxctl COMMAND --help for the options of one command.',
    EXIT_STATUS_HELP,
    '',
  ].join('\n');
}

function groupHelp(group: Group, commands: readonly Command[]): string {
  const members = commands.filter((command) =>
    group.path.every((word, index) => command.path[index] === word),
  );
  const fallback =
    group.defaultCommand === undefined
      ? []
      : ['', `Without a subcommand, mxctl ${group.path.join(' ')} runs ${group.defaultCommand}.`];
  return [
    `Usage: mxctl ${group.path.join(' ')} SUBCOMMAND [ARGUMENTS] [OPTIONS]`,
    '',
    `${group.summary}.`,
    '',
    'Commands:',
    ...commandList(members),
    ...fallback,
    '',
    `Run mxctl ${group.path.join(' ')} SUBCOMMAND --help for its options.`,
    '',
  ].join('\n');
}

export function commandHelp(command: Command): string {
  const options = command.options ?? {};
  const lines = [`Usage: ${usageLine(command)}`, '', `${command.summary}.`];
  if (Object.keys(options).length > 0) {
    lines.push('', 'Options:', ...optionLines(options));
  }
  if (command.details) {
    lines.push('', command.details);
  }
  lines.push('', 'Global options: --url URL, --token TOKEN, --json; see mxctl --help.', '');
  return lines.join('\n');
}
