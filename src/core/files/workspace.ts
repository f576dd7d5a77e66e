/** Folders this tool writes in the workspace (each kept out of git: they hold secrets). */

/** K3s state backups (`backups/<host>/<time>/`) and etcd snapshots (`backups/<cluster>/`). */
export const BACKUPS_DIR = 'backups';
/** Kubeconfigs fetched from the K3s servers. */
export const KUBECONFIG_DIR = 'kubeconfig';
