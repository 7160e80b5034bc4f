// Public API of the longest-prefix-match routing tables (see bench/lpm/README.md for the design).
export { NO_ROUTE, MAX_NEXT_HOP } from './constants';
export {
  Cidr4, Cidr6, parseIp4, formatIp4, parseCidr4, formatCidr4, parseIp6, formatIp6, parseCidr6, formatCidr6,
} from './cidr';
export { Rib4, Route4 } from './rib4';
export { Rib6, Route6 } from './rib6';
export { Fib4 } from './fib4';
export { Fib6 } from './fib6';
export { RouteTable4, RouteChange4, change4 } from './route-table4';
export { RouteTable6, RouteChange6, change6 } from './route-table6';
