/**
 * Types of the SPF module of mailauth 4.x, which ships none. Only the fields this service uses
 * are declared.
 */
declare module 'mailauth/lib/spf/index.js' {
  export interface SpfOptions {
    /** Envelope sender; an empty one checks `postmaster@<helo>`. */
    sender: string;
    /** Client IP address. */
    ip: string;
    /** Name the client gave in EHLO or HELO. */
    helo: string;
    /** Our host name, for the `%{r}` macro. */
    mta?: string;
    /** DNS lookup with the signature of dns.promises.resolve. */
    resolver?: (name: string, type: string) => Promise<unknown>;
    maxResolveCount?: number;
    maxVoidCount?: number;
  }

  export interface SpfResult {
    domain: string;
    status: {
      result: 'pass' | 'fail' | 'softfail' | 'neutral' | 'none' | 'temperror' | 'permerror';
      comment?: string | false;
    };
  }

  export function spf(options: SpfOptions): Promise<SpfResult>;
}
