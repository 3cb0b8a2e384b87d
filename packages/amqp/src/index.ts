export type { ConsumeMessage } from 'amqplib';
export {
  Broker,
  type BrokerOptions,
  BrokerUnavailableError,
  type ConsumeOptions,
  RpcTimeoutError,
  RpcUnroutableError,
} from './broker.ts';
export { queueOptions } from './topology.ts';
