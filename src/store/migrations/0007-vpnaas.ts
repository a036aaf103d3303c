// VPNaaS (neutron-vpnaas): IKE and IPsec policies, VPN services on routers,
// endpoint groups and IPsec site connections. The PSK column holds the
// secret-box's sealed text, never the key itself. Lists and dicts (lifetime,
// dpd, peer_cidrs, endpoints) are JSON text like everywhere else in the store.
//
// router_id and subnet_id carry no foreign key: those rows belong to the L3
// services, and a key here would turn their deletes into database errors
// instead of Neutron's answers.
import type { Kysely } from 'kysely';

type Builder = ReturnType<Kysely<any>['schema']['createTable']>;

function standard(t: Builder): Builder {
  return t.addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('project_id', 'text', (c) => c.notNull())
    .addColumn('name', 'text', (c) => c.notNull().defaultTo(''))
    .addColumn('description', 'text', (c) => c.notNull().defaultTo(''));
}

function times(t: Builder): Builder {
  return t.addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .addColumn('revision_number', 'integer', (c) => c.notNull().defaultTo(0));
}

export async function up(db: Kysely<any>): Promise<void> {
  await times(standard(db.schema.createTable('vpn_ikepolicies'))
    .addColumn('auth_algorithm', 'text', (c) => c.notNull())
    .addColumn('encryption_algorithm', 'text', (c) => c.notNull())
    .addColumn('phase1_negotiation_mode', 'text', (c) => c.notNull())
    .addColumn('lifetime', 'text', (c) => c.notNull())
    .addColumn('ike_version', 'text', (c) => c.notNull())
    .addColumn('pfs', 'text', (c) => c.notNull())).execute();

  await times(standard(db.schema.createTable('vpn_ipsecpolicies'))
    .addColumn('transform_protocol', 'text', (c) => c.notNull())
    .addColumn('auth_algorithm', 'text', (c) => c.notNull())
    .addColumn('encryption_algorithm', 'text', (c) => c.notNull())
    .addColumn('encapsulation_mode', 'text', (c) => c.notNull())
    .addColumn('lifetime', 'text', (c) => c.notNull())
    .addColumn('pfs', 'text', (c) => c.notNull())).execute();

  await times(standard(db.schema.createTable('vpn_services'))
    .addColumn('router_id', 'text', (c) => c.notNull())
    .addColumn('subnet_id', 'text')
    .addColumn('admin_state_up', 'integer', (c) => c.notNull().defaultTo(1))
    .addColumn('status', 'text', (c) => c.notNull())).execute();
  await db.schema.createIndex('vpn_services_router').on('vpn_services').column('router_id').execute();

  await times(standard(db.schema.createTable('vpn_endpoint_groups'))
    .addColumn('type', 'text', (c) => c.notNull())
    .addColumn('endpoints', 'text', (c) => c.notNull().defaultTo('[]'))).execute();

  await times(standard(db.schema.createTable('vpn_ipsec_site_connections'))
    .addColumn('peer_address', 'text', (c) => c.notNull())
    .addColumn('peer_id', 'text', (c) => c.notNull())
    .addColumn('local_id', 'text', (c) => c.notNull().defaultTo(''))
    .addColumn('route_mode', 'text', (c) => c.notNull().defaultTo('static'))
    .addColumn('mtu', 'integer', (c) => c.notNull())
    .addColumn('auth_mode', 'text', (c) => c.notNull().defaultTo('psk'))
    .addColumn('psk', 'text', (c) => c.notNull())
    .addColumn('initiator', 'text', (c) => c.notNull())
    .addColumn('dpd', 'text', (c) => c.notNull())
    .addColumn('admin_state_up', 'integer', (c) => c.notNull().defaultTo(1))
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('vpnservice_id', 'text', (c) => c.notNull().references('vpn_services.id'))
    .addColumn('ikepolicy_id', 'text', (c) => c.notNull().references('vpn_ikepolicies.id'))
    .addColumn('ipsecpolicy_id', 'text', (c) => c.notNull().references('vpn_ipsecpolicies.id'))
    .addColumn('peer_cidrs', 'text', (c) => c.notNull().defaultTo('[]'))
    .addColumn('local_ep_group_id', 'text', (c) => c.references('vpn_endpoint_groups.id'))
    .addColumn('peer_ep_group_id', 'text', (c) => c.references('vpn_endpoint_groups.id'))).execute();
  for (const col of ['vpnservice_id', 'ikepolicy_id', 'ipsecpolicy_id', 'local_ep_group_id', 'peer_ep_group_id']) {
    await db.schema.createIndex(`vpn_conns_${col}`).on('vpn_ipsec_site_connections').column(col).execute();
  }
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const t of ['vpn_ipsec_site_connections', 'vpn_endpoint_groups', 'vpn_services', 'vpn_ipsecpolicies', 'vpn_ikepolicies']) {
    await db.schema.dropTable(t).execute();
  }
}
