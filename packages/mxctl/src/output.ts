/** Plain-text output: aligned tables, label-value lists and compact times. */

export type Cell = string | number | boolean | null | undefined;

/** Returns the cell as one line: `-` for none, and line breaks and tabs as spaces. */
export function cellText(value: Cell): string {
  if (value === null || value === undefined || value === '') {
    return '-';
  }
  return String(value).replace(/[\r\n\t]+/g, ' ');
}

/** Returns the text cut to `max` characters, ending in `…` when cut. */
export function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

/** Returns a table with a header row, columns separated by two spaces. */
export function formatTable(headers: readonly string[], rows: readonly Cell[][]): string {
  const texts = rows.map((row) => row.map(cellText));
  const widths = headers.map((header, column) =>
    Math.max(header.length, ...texts.map((row) => row[column]?.length ?? 0)),
  );
  const line = (cells: readonly string[]) =>
    cells
      .map((cell, column) =>
        column === cells.length - 1 ? cell : cell.padEnd(widths[column] ?? 0),
      )
      .join('  ');
  return [line(headers), ...texts.map(line)].join('\n');
}

/** Returns `label: value` lines with the values aligned. */
export function formatFields(fields: readonly [label: string, value: Cell][]): string {
  const width = Math.max(...fields.map(([label]) => label.length)) + 1;
  return fields
    .map(([label, value]) => `${`${label}:`.padEnd(width)} ${cellText(value)}`)
    .join('\n');
}

/** Returns an ISO 8601 time without its milliseconds (`2026-12-04T09:00:00Z`), or undefined. */
export function formatTime(value: string | null | undefined): string | undefined {
  if (value === null || value === undefined) {
    return undefined;
  }
  const time = new Date(value);
  return Number.isNaN(time.getTime()) ? value : time.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** Returns a number of seconds as `45s`, `12m`, `3h 5m` or `2d 4h`. */
export function formatAge(seconds: number | null | undefined): string | undefined {
  if (seconds === null || seconds === undefined) {
    return undefined;
  }
  const whole = Math.max(0, Math.floor(seconds));
  if (whole < 60) {
    return `${whole}s`;
  }
  if (whole < 3600) {
    return `${Math.floor(whole / 60)}m`;
  }
  if (whole < 86_400) {
    return `${Math.floor(whole / 3600)}h ${Math.floor((whole % 3600) / 60)}m`;
  }
  return `${Math.floor(whole / 86_400)}d ${Math.floor((whole % 86_400) / 3600)}h`;
}

/** Returns the JSON text that --json prints. */
export function formatJson(value: unknown): string {
  return JSON.stringify(value, null, 2);
}
