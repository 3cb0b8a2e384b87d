export { buildDsn } from './build.ts';
export {
  type Dsn,
  type DsnAction,
  type DsnInput,
  DsnInputError,
  type DsnRecipient,
} from './types.ts';
export { encodeXtext } from './xtext.ts';
