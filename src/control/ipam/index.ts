// Calico-compatible IPAM over a KvStore: see ipam.ts for the algorithm, block.ts and records.ts
// for the stored values, selector.ts for pool nodeSelectors.
export { AllocationBlock, sanitizeHandle } from './block';
export type { AllocationAttribute } from './block';
export {
  blockInconsistencies, DATASTORE_RETRIES, Ipam,
} from './ipam';
export type {
  AssignIpRequest, AssignUse, AutoAssignRequest, AutoAssignResult, BlockUsage, IpamOptions, IpamProblem, IpamProblemKind,
  NodeBlock, PoolUsage, ReleaseResult, RouteInputs,
} from './ipam';
export * from './keys';
export {
  auditIpam, DEFAULT_LEAK_GRACE_MS, formatAttrs, formatDuration, ownersOf, parseAllocationTimestamp, parseDuration, readOwners,
} from './audit';
export type { AuditedAllocation, AuditProblem, AuditProblemKind, IpamAudit, IpOwner } from './audit';
export { DEFAULT_IPAM_CONFIG, DEFAULT_MAX_BLOCKS_PER_HOST, encodeIpamConfig } from './records';
export type { IpamConfig, PoolInfo } from './records';
export { evaluateSelector, parseSelector, Selector, SelectorSyntaxError } from './selector';
export type { Labels, SelectorNode } from './selector';
