// Sinks: where batches go. One folder per sink type; this is the only place that knows them all.

import type pino from 'pino';
import type { SinkConfig } from '../config/types';
import type { Sink } from '../event';
import { ElasticsearchSink } from './elasticsearch/elasticsearch-sink';
import { FileSink } from './file/file-sink';
import { HttpSink } from './http/http-sink';
import { KafkaSink } from './kafka/kafka-sink';
import { LokiSink } from './loki/loki-sink';
import { OtlpSink } from './otlp/otlp-sink';
import { SplunkHecSink } from './splunk_hec/splunk-hec-sink';
import { SyslogSink } from './syslog/syslog-sink';

/** Builds the sink a validated `[sink.NAME]` section describes. Throws a coded SinkError on unusable TLS/token files. */
export function createSink(
  cfg: SinkConfig,
  opts: { stateDir: string; logger: pino.Logger; hostname?: string },
): Sink {
  switch (cfg.type) {
    case 'http':
      return new HttpSink(cfg, opts);
    case 'elasticsearch':
      return new ElasticsearchSink(cfg, opts);
    case 'splunk_hec':
      return new SplunkHecSink(cfg, opts);
    case 'otlp':
      return new OtlpSink(cfg, opts);
    case 'loki':
      return new LokiSink(cfg, opts);
    case 'kafka':
      return new KafkaSink(cfg, opts);
    case 'file':
      return new FileSink(cfg, opts);
    case 'syslog':
      return new SyslogSink(cfg, opts);
    default: {
      const unknown: never = cfg;
      throw new Error(`unknown sink type ${(unknown as { type: string }).type}`);
    }
  }
}
