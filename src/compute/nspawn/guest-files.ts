import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * The files the platform gives each guest, bind-mounted read-only over the image's: what a cloud
 * image learns from its hypervisor (DMI) and DHCP, which a container has neither of.
 */
export function writeGuestFiles(vmDir: string, gateway: string): { resolvConf: string; cloudCfg: string } {
  const resolvConf = join(vmDir, 'resolv.conf');
  const cloudCfg = join(vmDir, '90-rack-nspawn.cfg');
  // No resolver serves the guest network; one that refuses at once (nothing listens on the
  // gateway's port 53) keeps cloud-init from waiting 30 s per boot on name lookups.
  writeFileSync(resolvConf, `nameserver ${gateway}\noptions timeout:1 attempts:1\n`);
  writeFileSync(
    cloudCfg,
    [
      '#cloud-config',
      '# Written by the RACK nspawn driver: the guest\'s network is configured from outside (no',
      '# DHCP here), the OpenStack metadata service answers at 169.254.169.254, and a minbase',
      '# rootfs has no locales but C.UTF-8.',
      'datasource_list: [OpenStack]',
      'network: {config: disabled}',
      'locale: C.UTF-8',
      '',
    ].join('\n'),
  );
  return { resolvConf, cloudCfg };
}
