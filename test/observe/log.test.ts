// The logger: JSON lines a shipper can parse (level names, ISO time, node and resource fields),
// level changes at run time reaching loggers made before the change, human lines for terminals,
// and the level and metrics-port settings from flags and Felix's environment.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { openSync, closeSync, readFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { createLogger, fdLines, humanLine, levelLogger, parseLogLevel, startLevel } from '../../src/observe/log';
import { metricsPortOption } from '../../src/cli/main';

function capture(level: 'info' | 'debug' = 'info') {
  const lines: string[] = [];
  const log = createLogger({ level, base: { node: 'node1' }, human: false, write: (s) => lines.push(...s.split('\n').filter(Boolean)) });
  return { log, lines };
}

test('JSON lines: level name, ISO time, node, message and the resource as a field', () => {
  const { log, lines } = capture();
  log.child({ datastore: 'etcd:http://10.0.0.5:2379' }).warn('datastore unreachable', { attempt: 2 });
  log.info('endpoint default/web: attached caliA', { workload: 'default/web', interface: 'caliA' });
  log.debug('not shown at info');
  assert.is(lines.length, 2);
  const a = JSON.parse(lines[0]);
  assert.is(a.level, 'warn');
  assert.is(a.node, 'node1');
  assert.is(a.datastore, 'etcd:http://10.0.0.5:2379');
  assert.is(a.attempt, 2);
  assert.is(a.msg, 'datastore unreachable');
  assert.ok(Number.isFinite(Date.parse(a.time)) && a.time.endsWith('Z'), a.time);
  const b = JSON.parse(lines[1]);
  assert.equal([b.level, b.workload, b.interface], ['info', 'default/web', 'caliA']);
});

test('fdLines: whole lines to the fd; a destination that fails (here /dev/full: ENOSPC, as EIO from a closed terminal) drops and counts the line instead of throwing', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'podway-fdlines-'));
  try {
    const file = path.join(dir, 'out.log');
    const fd = openSync(file, 'w');
    const ok = fdLines(fd);
    ok.write('first line\n');
    ok.write('zweite Zeile: ü\n');
    closeSync(fd);
    assert.is(readFileSync(file, 'utf8'), 'first line\nzweite Zeile: ü\n');
    assert.is(ok.lost, 0);
    const full = openSync('/dev/full', 'w');
    try {
      const gone = fdLines(full);
      for (let i = 0; i < 1000; i++) gone.write(`line ${i}\n`);
      assert.is(gone.lost, 1000, 'every line counted as lost, none kept');
      // a logger on such a destination logs on without an exception
      const log = createLogger({ human: false, write: (s) => gone.write(s) });
      log.warn('still alive');
      assert.is(gone.lost, 1001);
    } finally {
      closeSync(full);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a level change reaches child loggers made before it', () => {
  const { log, lines } = capture();
  const child = log.child({ component: 'metrics' });
  child.debug('hidden');
  assert.is(lines.length, 0);
  log.level = 'debug';
  child.debug('shown');
  assert.is(JSON.parse(lines[0]).msg, 'shown');
  assert.is(JSON.parse(lines[0]).component, 'metrics');
  log.level = 'error';
  child.warn('hidden too');
  log.error('kept');
  assert.is(lines.length, 2);
  assert.is(log.level, 'error');
});

test('(level, message) loggers (the BGP speaker) go through the same logger and level', () => {
  const { log, lines } = capture();
  const say = levelLogger(log.child({ component: 'bgp' }));
  say('info', 'peer 10.0.0.2 established');
  say('debug', 'keepalive');
  assert.is(lines.length, 1);
  assert.equal([JSON.parse(lines[0]).level, JSON.parse(lines[0]).component], ['info', 'bgp']);
});

test('human lines for a terminal: time, LEVEL, node/worker, message, fields', () => {
  const json = JSON.stringify({ level: 'warn', time: '2026-12-04T20:01:02.345Z', node: 'node1', worker: 1, msg: 'port caliA: send failed', port: 'caliA', errno: 'ENXIO' });
  assert.is(humanLine(json), '20:01:02.345 WARN  [node1/w1] port caliA: send failed port=caliA errno=ENXIO\n');
  assert.is(humanLine('not json\n'), 'not json\n');
});

test('levels from flags and environment (Felix names too); bad ones named', () => {
  assert.is(parseLogLevel('Warning', '$FELIX_LOGSEVERITYSCREEN'), 'warn');
  assert.is(parseLogLevel('DEBUG', 'x'), 'debug');
  assert.is(parseLogLevel('Panic', 'x'), 'fatal');
  assert.throws(() => parseLogLevel('loud', '--log-level'), /--log-level: unknown log level "loud"/);
  assert.is(startLevel(undefined, {}), 'info');
  assert.is(startLevel(undefined, { FELIX_LOGSEVERITYSCREEN: 'Error' }), 'error');
  assert.is(startLevel(undefined, { LOG_LEVEL: 'debug', FELIX_LOGSEVERITYSCREEN: 'Error' }), 'debug');
  assert.is(startLevel('warn', { LOG_LEVEL: 'debug' }), 'warn');
  assert.throws(() => startLevel(undefined, { LOG_LEVEL: 'verbose' }), /\$LOG_LEVEL/);
});

test('metrics port: the flag, else Felix\'s FELIX_PROMETHEUSMETRICS* (9091 by default), else off', () => {
  assert.is(metricsPortOption(undefined, {}), undefined);
  assert.is(metricsPortOption(undefined, { FELIX_PROMETHEUSMETRICSPORT: '9200' }), undefined, 'the port alone does not enable it');
  assert.is(metricsPortOption(undefined, { FELIX_PROMETHEUSMETRICSENABLED: 'true' }), 9091);
  assert.is(metricsPortOption(undefined, { FELIX_PROMETHEUSMETRICSENABLED: 'True', FELIX_PROMETHEUSMETRICSPORT: '9200' }), 9200);
  assert.is(metricsPortOption('9300', { FELIX_PROMETHEUSMETRICSENABLED: 'true' }), 9300);
  assert.throws(() => metricsPortOption('70000'), /--metrics-port: "70000" is not a port/);
  assert.throws(() => metricsPortOption('9o91'), /--metrics-port/);
  assert.throws(() => metricsPortOption(undefined, { FELIX_PROMETHEUSMETRICSENABLED: 'true', FELIX_PROMETHEUSMETRICSPORT: 'x' }), /\$FELIX_PROMETHEUSMETRICSPORT/);
  // Felix's other boolean words; a value that is none of them is an error, not a silent "off".
  assert.is(metricsPortOption(undefined, { FELIX_PROMETHEUSMETRICSENABLED: 'yes' }), 9091);
  assert.is(metricsPortOption(undefined, { FELIX_PROMETHEUSMETRICSENABLED: '1' }), 9091);
  assert.is(metricsPortOption(undefined, { FELIX_PROMETHEUSMETRICSENABLED: 'false' }), undefined);
  assert.is(metricsPortOption(undefined, { FELIX_PROMETHEUSMETRICSENABLED: 'No' }), undefined);
  assert.throws(() => metricsPortOption(undefined, { FELIX_PROMETHEUSMETRICSENABLED: 'enabled' }), /\$FELIX_PROMETHEUSMETRICSENABLED: "enabled" is not a boolean/);
});

test.run();
