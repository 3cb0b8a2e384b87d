/** HTTP calls to the admin API with the bearer token, and their failures as errors to report. */

/** The API replied with an error status. The message is the API's own. */
export class ApiError extends Error {
  override name = 'ApiError';
  constructor(
    readonly statusCode: number,
    message: string,
  ) {
    super(message);
  }
}

/** No HTTP reply: connection refused, unknown host, reset, or no reply in time. */
export class UnreachableError extends Error {
  override name = 'UnreachableError';
}

export type Query = Record<string, string | number | undefined>;

export interface RequestOptions {
  /** Query parameters; undefined ones are left out. */
  query?: Query;
  /** Sent as JSON. */
  body?: unknown;
}

/** How long one request may take, connect included. */
export const REQUEST_TIMEOUT_MS = 30_000;

const CONNECT_ERRORS: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ENOTFOUND: 'host not found',
  EAI_AGAIN: 'host name lookup failed',
  ECONNRESET: 'connection reset',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  ETIMEDOUT: 'connection timed out',
  UND_ERR_CONNECT_TIMEOUT: 'connection timed out',
  UND_ERR_SOCKET: 'connection closed',
};

export class ApiClient {
  private readonly baseUrl: string;

  /** `baseUrl` may carry a path, such as `https://admin.example/mx`, which prefixes every route. */
  constructor(
    baseUrl: string,
    private readonly token: string,
  ) {
    this.baseUrl = baseUrl.endsWith('/') ? baseUrl : `${baseUrl}/`;
  }

  /** Sends a request and returns the parsed JSON reply. Throws ApiError or UnreachableError. */
  async request(method: string, path: string, options: RequestOptions = {}): Promise<unknown> {
    return (await this.requestWithStatus(method, path, options)).body;
  }

  /** Sends a request and returns the status and parsed JSON reply. Throws as request(). */
  async requestWithStatus(
    method: string,
    path: string,
    options: RequestOptions = {},
  ): Promise<{ status: number; body: unknown }> {
    const response = await this.fetch(method, path, options.query, options.body);
    const text = await response.text();
    if (!response.ok) {
      throw apiError(response, text);
    }
    return { status: response.status, body: text === '' ? undefined : JSON.parse(text) };
  }

  /** Sends a GET request and returns the reply's bytes. Throws ApiError or UnreachableError. */
  async requestBytes(path: string): Promise<Buffer> {
    const response = await this.fetch('GET', path);
    if (!response.ok) {
      throw apiError(response, await response.text());
    }
    return Buffer.from(await response.arrayBuffer());
  }

  private async fetch(method: string, path: string, query?: Query, body?: unknown) {
    const url = new URL(path.replace(/^\//, ''), this.baseUrl);
    for (const [name, value] of Object.entries(query ?? {})) {
      if (value !== undefined) {
        url.searchParams.set(name, String(value));
      }
    }
    const headers: Record<string, string> = { authorization: `Bearer ${this.token}` };
    if (body !== undefined) {
      headers['content-type'] = 'application/json';
    }
    try {
      return await fetch(url, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      });
    } catch (error) {
      throw new UnreachableError(
        `cannot reach the admin API at ${this.baseUrl}: ${describeFailure(error)}; ` +
          'check --url or MX_ADMIN_URL and that admin-api is running',
      );
    }
  }
}

/** Builds the error of a reply with an error status, from the API's `{error, message}` body. */
function apiError(response: Response, text: string): ApiError {
  let message = `${response.status} ${response.statusText} from ${response.url}`;
  try {
    const body = JSON.parse(text) as { error?: unknown; message?: unknown };
    if (typeof body.message === 'string') {
      const reason = typeof body.error === 'string' ? body.error : response.statusText;
      message = `${response.status} ${reason}: ${body.message}`;
    }
  } catch {
    // Not the API's JSON error body, such as a proxy's HTML page: the status line must do.
  }
  return new ApiError(response.status, message);
}

/**
 * Names why fetch failed, on one line: OpenSSL's messages, such as the one for https:// to a
 * plain HTTP server, end in a newline.
 */
function describeFailure(error: unknown): string {
  return describeCause(error).replace(/\s+/g, ' ').trim();
}

/** Names why fetch failed, from the error code that undici puts on the cause. */
function describeCause(error: unknown): string {
  if (error instanceof DOMException && error.name === 'TimeoutError') {
    return `no reply within ${REQUEST_TIMEOUT_MS / 1000} s`;
  }
  const cause = (error as { cause?: { code?: string; message?: string } }).cause;
  const code = cause?.code;
  if (code !== undefined) {
    return `${CONNECT_ERRORS[code] ?? cause?.message ?? 'request failed'} (${code})`;
  }
  return cause?.message ?? (error as Error).message;
}
