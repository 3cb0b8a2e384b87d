export { formatDuration, parseDuration } from './duration.ts';
export {
  ConfigError,
  type ListenAddress,
  loadSettings,
  loadSettingsOrExit,
  parseHostPort,
  SETTINGS,
  type SettingName,
  type Settings,
} from './settings.ts';
