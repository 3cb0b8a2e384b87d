export * from './broker-cleanup.ts';
export * from './dns-server.ts';
export * from './environment.ts';
export * from './services.ts';
export * from './smtp-client.ts';
export * from './smtp-primary.ts';
export * from './suite.ts';
export * from './tcp-proxy.ts';
