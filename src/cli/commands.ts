/**
 * The CLI's command table: each src/cli/<file>.ts's commands, in the order `--help` lists them.
 * dist/cliMain.js does not bundle this file: esbuild.mjs evaluates it at build time and puts in
 * its place the same table without the code (names, summaries, usage, flags), each command
 * loading its file when it runs (the one-shot ones from dist/cliMain.js itself, the others from
 * dist/cliCommands.js, this file's own bundle). The key is the file's name.
 */
import type { Subcommand } from './base';
import { BACKUP_COMMANDS } from './backup';
import { CERTS_COMMANDS } from './certs';
import { ETCDCTL_COMMANDS } from './etcdctl';
import { HEALTH_COMMANDS } from './health';
import { INVENTORY_COMMANDS } from './inventory';
import { K3S_COMMANDS } from './k3s';
import { KEYSPACE_COMMANDS } from './keyspace';
import { MAINTAIN_COMMANDS } from './maintain';
import { MEMBER_COMMANDS } from './member';
import { METRICS_COMMANDS } from './metrics';
import { MIGRATE_COMMANDS } from './migrate';
import { MONITORING_COMMANDS } from './monitoring';
import { PERF_COMMANDS } from './perf';
import { PROVISION_COMMANDS } from './provision';
import { RECOVER_COMMANDS } from './recover';
import { RENEW_COMMANDS } from './renew';
import { REPAIR_COMMANDS } from './repair';
import { RESTORE_COMMANDS } from './restore';
import { ROTATE_COMMANDS } from './rotate';
import { SNAPSHOT_COMMANDS } from './snapshot';
import { UPGRADE_COMMANDS } from './upgrade';

export const COMMAND_FILES: Record<string, Subcommand[]> = {
  inventory: INVENTORY_COMMANDS,
  health: HEALTH_COMMANDS,
  perf: PERF_COMMANDS,
  metrics: METRICS_COMMANDS,
  monitoring: MONITORING_COMMANDS,
  maintain: MAINTAIN_COMMANDS,
  keyspace: KEYSPACE_COMMANDS,
  certs: CERTS_COMMANDS,
  renew: RENEW_COMMANDS,
  rotate: ROTATE_COMMANDS,
  provision: PROVISION_COMMANDS,
  upgrade: UPGRADE_COMMANDS,
  member: MEMBER_COMMANDS,
  repair: REPAIR_COMMANDS,
  k3s: K3S_COMMANDS,
  etcdctl: ETCDCTL_COMMANDS,
  migrate: MIGRATE_COMMANDS,
  snapshot: SNAPSHOT_COMMANDS,
  restore: RESTORE_COMMANDS,
  recover: RECOVER_COMMANDS,
  backup: BACKUP_COMMANDS,
};
