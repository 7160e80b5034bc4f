// One node's pipeline on in-memory I/O for the micro-benchmarks (capture.ts, decap-source.ts):
// the node's model from a resources YAML, every endpoint a veth pod port, sends free (the
// pipeline's own work is what is measured; on a real node syscalls dilute it).
import { computeNodeModel, parseClusterYaml, type NodeDataplaneModel } from '../src/control';
import { MemoryIO } from '../src/dataplane/memory-io';
import { FramePool } from '../src/dataplane/frame-pool';
import { Pipeline, Role } from '../src/dataplane/pipeline';
import { parseMac } from '../src/packet/ethernet';

export interface MemoryPipeline {
  model: NodeDataplaneModel;
  io: MemoryIO;
  pool: FramePool;
  pipe: Pipeline;
  /** Pod ports by interface name. */
  ports: Map<string, number>;
}

/** node1's pipeline for `yaml` (batches of `batch` frames; the pool holds a few more). */
export function memoryPipeline(yaml: string, batch: number, node = 'node1'): MemoryPipeline {
  const model = computeNodeModel(parseClusterYaml(yaml, 'bench.yaml'), node);
  const io = new MemoryIO();
  const pool = new FramePool(batch + 8);
  io.setPool(pool);
  io.send = (_port: number, _first: number, count: number) => count;
  const pipe = new Pipeline(pool, batch, io);
  const ports = new Map<string, number>();
  for (const ep of model.endpoints) {
    const p = io.openPacket(ep.interfaceName, {});
    ports.set(ep.interfaceName, p);
    pipe.setPort(p, Role.POD_L2, ep.interfaceName, ep.ips, parseMac(ep.mac!), true);
  }
  return { model, io, pool, pipe, ports };
}
