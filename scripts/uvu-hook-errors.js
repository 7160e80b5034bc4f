'use strict';
// Preloaded by scripts/run-tests.js (`node -r`) into every test process, so a failing uvu hook is
// never silent. uvu 0.5 runs a suite's `before` hooks inside try/finally and returns from the
// finally block: an exception there is dropped, the suite's tests simply count as not passed, no
// reason is printed and the exit status stays 0. An `after.each` that throws while a test is
// already failing is dropped the same way. So every hook registered through uvu's `test` or a
// `suite()` is wrapped: its error is printed (with HOOK_ERROR_MARK, which the runner looks for)
// and rethrown, so uvu behaves exactly as before, and the process exits non-zero.
const path = require('node:path');

const HOOK_ERROR_MARK = 'uvu hook error';
// Said on stderr when the file gets SIGTERM (the runner's per-file timeout sends it): which test or
// hook was running, and for how long, so a hung file's failure names what hung.
const TERM_MARK = 'SIGTERM while running';

/** What runs now: a test (uvu's state.__test__) or a before/after hook, with its suite and start. */
let current = null;

/** The uvu the test file itself will load (resolved from its directory), or null. */
function uvuOfTestFile() {
  const main = process.argv[1];
  const from = main ? [path.dirname(path.resolve(main))] : [];
  try {
    return require(require.resolve('uvu', { paths: [...from, __dirname] }));
  } catch {
    return null; // the file does not use uvu (or cannot find it): nothing to wrap
  }
}

let hookFailed = false;

function wrap(kind, handler) {
  return async function hookWithReport(...args) {
    const state = args[0];
    // (a before.each/after.each hook runs as part of its test: that test is what is named)
    if (kind === 'before' || kind === 'after') current = { suite: (state && state.__suite__) || '', what: `its ${kind} hook`, at: Date.now() };
    try {
      return await handler.apply(this, args);
    } catch (err) {
      hookFailed = true;
      const text = err && err.stack ? err.stack : String(err);
      const suite = args[0] && args[0].__suite__; // uvu passes the suite's state to each hook
      process.stderr.write(`${HOOK_ERROR_MARK} (${kind}${suite ? ` in suite "${suite}"` : ''}): ${text}\n`);
      throw err;
    }
  };
}

/** Replaces test.before/.after (and their .each) with versions that register wrapped hooks. */
function patch(test) {
  // first of the suite's before.each hooks: notes the test about to run (uvu set its name)
  test.before.each((state) => {
    current = { suite: (state && state.__suite__) || '', what: `test "${(state && state.__test__) || '?'}"`, at: Date.now() };
  });
  for (const kind of ['before', 'after']) {
    const register = test[kind];
    const registerEach = register.each;
    const wrapped = (handler) => register(wrap(kind, handler));
    wrapped.each = (handler) => registerEach(wrap(`${kind}.each`, handler));
    test[kind] = wrapped;
  }
  return test;
}

/**
 * On SIGTERM, says what was running. Only says: a file's own SIGTERM handler (test/helpers/
 * cleanup.ts) still runs; with none, the signal is raised again once this listener is gone, so the
 * process ends by SIGTERM as it would have without this one.
 */
function onTerm() {
  if (current) {
    const s = Math.round((Date.now() - current.at) / 100) / 10;
    process.stderr.write(`\n${TERM_MARK} ${current.what}${current.suite ? ` (suite "${current.suite}")` : ''}, started ${s} s before\n`);
  }
  if (process.listenerCount('SIGTERM') === 1) {
    process.removeListener('SIGTERM', onTerm);
    process.kill(process.pid, 'SIGTERM');
  }
}

const uvu = uvuOfTestFile();
if (uvu && typeof uvu.suite === 'function' && uvu.test && !uvu.__podwayHooksWrapped) {
  uvu.__podwayHooksWrapped = true;
  patch(uvu.test);
  const suite = uvu.suite;
  uvu.suite = (...args) => patch(suite(...args));
  // uvu sets process.exitCode from test failures only, after the run; a hook failure must also
  // make the exit status non-zero. 'exit' listeners run after uvu's, and may still set it.
  process.on('exit', () => {
    if (hookFailed && !process.exitCode) process.exitCode = 1;
  });
  process.on('SIGTERM', onTerm);
}

module.exports = { HOOK_ERROR_MARK, TERM_MARK };
