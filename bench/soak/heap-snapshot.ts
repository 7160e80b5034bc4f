// A heap snapshot of the main thread of a Node process started with --inspect=127.0.0.1:PORT:
// `node --experimental-websocket dist/bench/soak/heap-snapshot.js PORT FILE` (where that address is
// reached: `ip netns exec NS ...`), and `... heap-snapshot.js --diff A B` prints the node types
// and constructors whose count or self size grew most from snapshot A to snapshot B.
import { readFileSync, writeFileSync } from 'node:fs';

const WS = (globalThis as unknown as { WebSocket: new (url: string) => any }).WebSocket;

async function take(port: number, file: string): Promise<void> {
  const list = (await (await fetch(`http://127.0.0.1:${port}/json/list`)).json()) as { webSocketDebuggerUrl: string }[];
  const ws = new WS(list[0].webSocketDebuggerUrl);
  await new Promise((res, rej) => {
    ws.onopen = res;
    ws.onerror = rej;
  });
  const chunks: string[] = [];
  await new Promise<void>((res) => {
    ws.onmessage = (ev: { data: string }) => {
      const m = JSON.parse(ev.data);
      if (m.method === 'HeapProfiler.addHeapSnapshotChunk') chunks.push(m.params.chunk);
      else if (m.id === 2) res();
    };
    ws.send(JSON.stringify({ id: 1, method: 'HeapProfiler.enable' }));
    ws.send(JSON.stringify({ id: 2, method: 'HeapProfiler.takeHeapSnapshot', params: { reportProgress: false } }));
  });
  writeFileSync(file, chunks.join(''));
  ws.close();
}

function summary(file: string): Map<string, [number, number]> {
  const s = JSON.parse(readFileSync(file, 'utf8'));
  const f = s.snapshot.meta.node_fields as string[];
  const types = s.snapshot.meta.node_types[0] as string[];
  const n = f.length;
  const iType = f.indexOf('type');
  const iName = f.indexOf('name');
  const iSize = f.indexOf('self_size');
  const out = new Map<string, [number, number]>();
  for (let i = 0; i < s.nodes.length; i += n) {
    const t = types[s.nodes[i + iType]];
    const name = t === 'object' || t === 'closure' || t === 'native' ? `${t}:${s.strings[s.nodes[i + iName]]}` : t === 'string' || t === 'concatenated string' || t === 'sliced string' ? `${t}:${String(s.strings[s.nodes[i + iName]]).slice(0, 60)}` : t;
    const e = out.get(name) ?? [0, 0];
    e[0]++;
    e[1] += s.nodes[i + iSize];
    out.set(name, e);
  }
  return out;
}

if (process.argv[2] === '--diff') {
  const a = summary(process.argv[3]);
  const b = summary(process.argv[4]);
  const rows = [...b].map(([k, [c, sz]]) => [k, c - (a.get(k)?.[0] ?? 0), sz - (a.get(k)?.[1] ?? 0)] as const).filter((r) => r[1] !== 0 || r[2] !== 0);
  rows.sort((x, y) => y[2] - x[2]);
  for (const r of rows.slice(0, Number(process.argv[5] ?? 40))) console.log(`${String(r[1]).padStart(8)} ${String(r[2]).padStart(10)}  ${r[0]}`);
} else {
  take(Number(process.argv[2]), process.argv[3]).then(() => process.exit(0), (e) => {
    console.error(e);
    process.exit(1);
  });
}
