/** Every mxctl command and command group, in the order help lists them. */
import type { Command, Group } from '../cli.ts';
import { domainCommands } from './domains.ts';
import { greylistCommands } from './greylist.ts';
import { queueCommands } from './queue.ts';
import { tokenCommands } from './tokens.ts';

export const COMMANDS: readonly Command[] = [
  ...domainCommands,
  ...queueCommands,
  ...greylistCommands,
  ...tokenCommands,
];

export const GROUPS: readonly Group[] = [
  { path: ['domains'], summary: 'Member domains and their approval', defaultCommand: 'list' },
  { path: ['queue'], summary: 'The spool and actions on its messages', defaultCommand: 'list' },
  { path: ['greylist'], summary: 'Greylist triplets and the static whitelist' },
  {
    path: ['greylist', 'whitelist'],
    summary: 'The static greylist whitelist',
    defaultCommand: 'list',
  },
  { path: ['tokens'], summary: 'Stored bearer tokens', defaultCommand: 'list' },
];
