/**
 * Preloaded into a process under test (`NODE_OPTIONS=--require .../module-report-preload.js`): when the
 * process exits, writes one line to stderr, `podway-modules: <JSON list>`, naming every package
 * under node_modules it loaded (e.g. "zod", "etcd3", "@grpc/grpc-js") and every file of the
 * project's own dist/src it loaded (as "src/..."). Tests use it to check what a short-lived
 * command loads (module-report.ts reads the line); nothing imports this file.
 */
import { writeSync } from 'node:fs';

const LINE = 'podway-modules: ';

process.on('exit', () => {
  const names = new Set<string>();
  for (const file of Object.keys(require.cache)) {
    const nm = file.lastIndexOf('/node_modules/');
    if (nm >= 0) {
      const parts = file.slice(nm + '/node_modules/'.length).split('/');
      names.add(parts[0].startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0]);
      continue;
    }
    const src = file.lastIndexOf('/dist/src/');
    if (src >= 0) names.add(`src/${file.slice(src + '/dist/src/'.length)}`);
  }
  try {
    writeSync(2, `${LINE}${JSON.stringify([...names].sort())}\n`);
  } catch {
    /* stderr closed: nothing to report to */
  }
});
